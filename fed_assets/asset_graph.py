"""Lineage questions sensors, schedules and checks ask of the asset graph (never a hand-kept list)."""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

# The tag every model asset carries (set by ``fed_assets`` model factories).
MODEL_ROLE_TAG = "fed_assets/role"
MODEL_ROLE = "model"
# Which assets are models: selected by their tag, so a new model is watched without any list.
MODELS = dg.AssetSelection.tag(MODEL_ROLE_TAG, MODEL_ROLE)


def upstream(graph, keys: Iterable[dg.AssetKey]) -> set[dg.AssetKey]:
    """Every asset ``keys`` read from, directly or not, source assets included."""
    return _closure(graph, keys, lambda node: node.parent_keys)


def downstream(graph, keys: Iterable[dg.AssetKey]) -> set[dg.AssetKey]:
    """Every asset that reads from ``keys``, directly or not."""
    return _closure(graph, keys, lambda node: node.child_keys)


def _closure(graph, keys, neighbours) -> set[dg.AssetKey]:
    seen: set[dg.AssetKey] = set()
    todo = [k for k in keys if graph.has(k)]
    while todo:
        key = todo.pop()
        for nxt in neighbours(graph.get(key)):
            if nxt not in seen and graph.has(nxt):
                seen.add(nxt)
                todo.append(nxt)
    return seen


def model_keys(graph, models: dg.AssetSelection = MODELS) -> list[dg.AssetKey]:
    """The model assets of ``graph``, sorted."""
    return sorted(models.resolve(graph, allow_missing=True))


def model_sources(graph, models: dg.AssetSelection, watched: set[str]) -> dict[str, frozenset[str]]:
    """Model (as ``"a/b"``) → the watched tables (``"silo/table"``) upstream of it."""
    return {
        key.to_user_string(): frozenset(
            k.to_user_string() for k in upstream(graph, [key]) if k.to_user_string() in watched
        )
        for key in model_keys(graph, models)
    }


def run_selection(graph, model: dg.AssetKey, changed: Iterable[dg.AssetKey]) -> list[dg.AssetKey]:
    """What a retrain of ``model`` after ``changed`` tables moved must materialise: the
    materialisable assets downstream of those tables and upstream of the model, and the model."""
    between = (downstream(graph, changed) & upstream(graph, [model])) | {model}
    return sorted(k for k in between if graph.get(k).is_materializable)


def datasets_feeding(graph, models: dg.AssetSelection = MODELS) -> list[dg.AssetKey]:
    """Materialisable assets upstream of any model that are not models themselves."""
    found = set(model_keys(graph, models))
    return sorted(
        k for k in upstream(graph, found) if k not in found and graph.get(k).is_materializable
    )
