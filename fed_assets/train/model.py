"""``FineTunedModel``: a trained model with its tokenizer and renderer; predict, score, save, load.

Saved as a folder (written under a temporary name, then renamed into place, so a crash while
saving leaves the previous folder intact):

- ``fed_model.json``: task, method, base, label and classes, renderer, config, metrics;
- ``tokenizer/``: the tokenizer; ``model/`` (full) or ``adapter/`` (LoRA, peft) as safetensors,
  plus ``base/`` when the base was built offline (its initial weights, which LoRA leaves frozen);
- ``metrics.json``, ``curve.png`` and ``README.md`` (the model card).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fed_assets.train.base import BaseSpec, build_model
from fed_assets.train.config import TrainingConfig
from fed_assets.train.data import as_table
from fed_assets.train.errors import ConfigFieldError, MissingColumnError, ModelSaveError
from fed_assets.train.loop import IGNORE, Encoded, batch_tensors
from fed_assets.train.render import Renderer

# Rows per forward pass when predicting: bounded memory, few Python round trips.
PREDICT_BATCH = 256
# Version of the folder layout, so a future reader can refuse or convert an older one.
FORMAT = 1
MANIFEST = "fed_model.json"


class FineTunedModel:
    """A fine-tuned classifier or language model (made by ``fed_assets.fine_tune``).

    Attributes:
        task: ``"sequence_classification"`` or ``"causal_lm"``.
        metrics: held-out figures beside the baselines (see ``fed_assets.train.baselines``).
        training: rows, tokens, parameters, seconds, tokens/s, steps, truncated rows.
        lineage: where the training data came from (filled in by the model IO manager).
    """

    def __init__(
        self,
        *,
        task: str,
        method: str,
        base: BaseSpec,
        model,
        tokenizer,
        config: TrainingConfig,
        renderer: Renderer | None = None,
        label: str | None = None,
        classes: Sequence[Any] = (),
        text: str | None = None,
        metrics: dict[str, Any] | None = None,
        training: dict[str, Any] | None = None,
        history: Sequence[tuple[int, float]] = (),
        base_state: dict | None = None,
    ):
        self.task = task
        self.method = method
        self.base = base
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.renderer = renderer
        self.label = label
        self.classes = tuple(classes)
        self.text = text
        self.metrics = metrics or {}
        self.training = training or {}
        self.history = list(history)
        self.lineage: dict[str, Any] = {}
        self._base_state = base_state

    # ------------------------------------------------------------------ encoding
    def encode(self, texts: Sequence[str]) -> Encoded:
        """Token ids per text, as training saw them (BOS for LMs, EOS last), truncated."""
        tok = self.tokenizer
        raw = tok(list(texts), add_special_tokens=False)["input_ids"]
        causal = self.task == "causal_lm"
        limit = self.config.max_length
        ids, truncated = [], 0
        for seq in raw:
            seq = ([tok.bos_token_id] if causal and tok.bos_token_id is not None else []) + list(
                seq
            )
            seq.append(tok.eos_token_id)
            if len(seq) > limit:
                truncated += 1
                seq = seq[:limit]
            ids.append(seq)
        return Encoded(ids, None, tok.pad_token_id, truncated)

    def texts(self, data: Any) -> list[str]:
        """The texts the model reads from ``data`` (rows rendered, or the text column)."""
        if isinstance(data, str):
            return [data]
        if isinstance(data, list | tuple) and all(isinstance(x, str) for x in data):
            return list(data)
        table = as_table(data)
        if self.renderer is not None:
            return self.renderer.render(table)
        if self.text not in table.column_names:
            raise MissingColumnError(
                f"text column '{self.text}'",
                f"the data has only {', '.join(table.column_names)}",
                "pass a table with the column the model was trained on",
            )
        return [t or "" for t in table.column(self.text).to_pylist()]

    # ------------------------------------------------------------------ classification
    def predict_proba(self, data: Any) -> np.ndarray:
        """Class probabilities, rows × classes (columns in the order of ``classes``)."""
        import torch

        self._require("sequence_classification", "predict_proba")
        out = [
            torch.softmax(logits.float(), dim=-1)[:, : len(self.classes)].numpy()
            for _, logits in self._forward(data)
        ]
        if not out:
            return np.zeros((0, len(self.classes)))
        proba = np.concatenate(out)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, data: Any) -> np.ndarray:
        """The most probable class per row, as label values."""
        proba = self.predict_proba(data)
        return np.array(self.classes, dtype=object)[proba.argmax(axis=1)]

    # ------------------------------------------------------------------ language model
    def loss(self, data: Any) -> float:
        """Mean nats per predicted token over ``data``'s texts."""
        import torch

        self._require("causal_lm", "loss")
        total, count = 0.0, 0
        for batch, logits in self._forward(data):
            targets = batch["labels"][:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                targets.reshape(-1),
                ignore_index=IGNORE,
                reduction="sum",
            )
            total += float(losses)
            count += int((targets != IGNORE).sum())
        return total / max(count, 1)

    def perplexity(self, data: Any) -> float:
        """exp(mean nats per token) of ``data``'s texts (a table, a list of texts or one text)."""
        from fed_assets.train.baselines import perplexity

        return perplexity(self.loss(data))

    def generate(
        self, prompt: str = "", max_new_tokens: int = 32, *, sample: bool = False, seed: int = 0
    ) -> str:
        """``prompt`` continued by up to ``max_new_tokens`` tokens (greedy unless ``sample``)."""
        import torch

        self._require("causal_lm", "generate")
        if not 1 <= max_new_tokens <= 4096:
            raise ConfigFieldError(
                "max_new_tokens",
                f"{max_new_tokens} is outside [1, 4096]",
                "ask for between 1 and 4096 tokens",
            )
        tok = self.tokenizer
        ids = ([tok.bos_token_id] if tok.bos_token_id is not None else []) + tok(
            prompt, add_special_tokens=False
        )["input_ids"]
        room = self.config.max_length - len(ids)
        if room < 1:
            ids, room = ids[-(self.config.max_length - 1) :], 1
        torch.manual_seed(seed)
        self.model.eval()
        with torch.no_grad():
            out = self.model.generate(
                input_ids=torch.tensor([ids]),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
                max_new_tokens=min(max_new_tokens, room),
                do_sample=sample,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        return tok.decode(out[0], skip_special_tokens=True)

    # ------------------------------------------------------------------ facts
    def parameters(self) -> dict[str, int]:
        total = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        return {"total": int(total), "trainable": int(trainable)}

    def trainable_arrays(self) -> dict[str, np.ndarray]:
        """The weights a fine-tune changed (all of them, or the LoRA adapters and head)."""
        return {
            n: p.detach().numpy().copy()
            for n, p in self.model.named_parameters()
            if p.requires_grad
        }

    def set_trainable_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        import torch

        named = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in arrays.items():
                named[name].copy_(torch.as_tensor(value))

    def curve_png(self) -> bytes:
        from fed_assets.train.curve import curve_png

        return curve_png(self.history, title=f"{self.task} ({self.method})")

    def manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "task": self.task,
            "method": self.method,
            "base": self.base.to_dict(),
            "label": self.label,
            "classes": list(self.classes),
            "text": self.text,
            "renderer": self.renderer.to_dict() if self.renderer else None,
            "config": json.loads(self.config.to_json()),
            "metrics": self.metrics,
            "training": self.training,
            "history": self.history,
            "lineage": self.lineage,
        }

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to folder ``path`` atomically (see module docstring).

        Raises:
            ModelSaveError: writing failed (disk full, ...); ``path`` keeps its previous model.
        """
        final = Path(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
        try:
            self.write_folder(tmp)
            if final.exists():
                old = final.parent / f".{final.name}.{uuid.uuid4().hex}.old"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except OSError as err:
            raise ModelSaveError(
                f"model folder {final}",
                f"writing failed ({err.strerror or err}); the previous model there is unchanged",
                "free disk space or choose another folder, then save again",
            ) from err
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def write_folder(self, folder: Path) -> None:
        """Write every artefact into ``folder`` (not atomic: ``save`` and the IO manager wrap it)."""
        from safetensors.torch import save_file

        from fed_assets.train.card import model_card

        folder.mkdir(parents=True)
        self.tokenizer.save_pretrained(folder / "tokenizer")
        if self.method == "lora":
            self.model.save_pretrained(folder / "adapter")
            if self.base.source == "offline":
                (folder / "base").mkdir()
                save_file(self._base_state, folder / "base" / "model.safetensors")
                self.model.get_base_model().config.to_json_file(folder / "base" / "config.json")
        else:
            self.model.save_pretrained(folder / "model")
        (folder / "metrics.json").write_text(json.dumps(self.metrics, indent=2, default=str))
        (folder / "curve.png").write_bytes(self.curve_png())
        (folder / "README.md").write_text(model_card(self))
        (folder / MANIFEST).write_text(json.dumps(self.manifest(), indent=2, default=str))

    @classmethod
    def load(cls, path: str | os.PathLike) -> FineTunedModel:
        """A model saved by ``save`` (or by the model IO manager)."""
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForSequenceClassification,
            PreTrainedTokenizerFast,
        )

        folder = Path(path)
        if not (folder / MANIFEST).is_file():
            raise ModelSaveError(
                f"model folder {folder}",
                f"it holds no {MANIFEST}",
                "point at a folder written by FineTunedModel.save",
            )
        meta = json.loads((folder / MANIFEST).read_text())
        config = TrainingConfig.from_dict(meta["config"])
        base = BaseSpec(**meta["base"])
        tokenizer = PreTrainedTokenizerFast.from_pretrained(folder / "tokenizer")
        classify = meta["task"] == "sequence_classification"
        auto = AutoModelForSequenceClassification if classify else AutoModelForCausalLM
        base_state = None
        if meta["method"] == "full":
            model = auto.from_pretrained(folder / "model", local_files_only=True)
        else:
            from peft import PeftModel

            if base.source == "offline":
                from safetensors.torch import load_file

                model = auto.from_config(AutoConfig.from_pretrained(folder / "base"))
                base_state = load_file(folder / "base" / "model.safetensors")
                model.load_state_dict(base_state)
            else:
                model = build_model(
                    meta["task"], tokenizer, config, base=base, num_labels=len(meta["classes"])
                )
            model = PeftModel.from_pretrained(model, folder / "adapter")
        model.eval()
        renderer = Renderer.from_dict(meta["renderer"]) if meta["renderer"] else None
        loaded = cls(
            task=meta["task"],
            method=meta["method"],
            base=base,
            model=model,
            tokenizer=tokenizer,
            config=config,
            renderer=renderer,
            label=meta["label"],
            classes=meta["classes"],
            text=meta["text"],
            metrics=meta["metrics"],
            training=meta["training"],
            history=[tuple(h) for h in meta["history"]],
            base_state=base_state,
        )
        loaded.lineage = meta.get("lineage") or {}
        return loaded

    def _forward(self, data: Any):
        """(batch, logits) per ``PREDICT_BATCH`` rows of ``data``'s texts, without gradients."""
        import torch

        encoded = self.encode(self.texts(data))
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(encoded.ids), PREDICT_BATCH):
                rows = range(start, min(start + PREDICT_BATCH, len(encoded.ids)))
                batch = batch_tensors(encoded, rows, causal=True)
                inputs = {
                    "input_ids": batch["input_ids"],
                    "attention_mask": batch["attention_mask"],
                }
                yield batch, self.model(**inputs).logits

    def _require(self, task: str, method: str) -> None:
        if self.task != task:
            raise ConfigFieldError(
                "task",
                f"{method}() needs a {task} model, this is {self.task}",
                "use predict/predict_proba for classifiers, perplexity/generate for LMs",
            )

    def __repr__(self) -> str:
        return f"FineTunedModel(task={self.task!r}, method={self.method!r}, classes={list(self.classes)!r})"
