"""ClientApp: a silo site. Reads only its own silo (named by its SuperNode's node config)."""

from __future__ import annotations

import json
from pathlib import Path

from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fed_assets.config import silo_from_config
from fed_assets.train.site import FederationSpec, Site, read_site_table

app = ClientApp()
# One site per process: read the silo once, keep the encoded split between rounds.
_SITES: dict[str, Site] = {}


def _site(context: Context) -> Site:
    path = str(context.node_config["site-file"])
    if path not in _SITES:
        site = json.loads(Path(path).read_text())
        spec = FederationSpec.from_json(Path(str(context.run_config["spec"])).read_text())
        silo = silo_from_config(site["name"], site["settings"])
        rows, _ = read_site_table(silo, site["table"], spec.columns)
        _SITES[path] = Site(spec, rows)
    return _SITES[path]


def _arrays(site: Site, record: ArrayRecord) -> dict:
    names = sorted(site.model.trainable_arrays())
    return dict(zip(names, record.to_numpy_ndarrays(), strict=True))


@app.train()
def train(msg: Message, context: Context) -> Message:
    site = _site(context)
    round_number = (
        int(msg.content["config"].get("server-round", 1)) if "config" in msg.content else 1
    )
    update = site.train_round(_arrays(site, msg.content["arrays"]), round_number)
    content = RecordDict(
        {
            "arrays": ArrayRecord([update[n] for n in sorted(update)]),
            "metrics": MetricRecord({"num-examples": site.examples}),
        }
    )
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    site = _site(context)
    metrics = site.evaluate(_arrays(site, msg.content["arrays"]))
    flat = {
        f"{who}.{name}": float(v) for who, values in metrics.items() for name, v in values.items()
    }
    flat["num-examples"] = len(site.prepared.held_out)
    return Message(content=RecordDict({"metrics": MetricRecord(flat)}), reply_to=msg)
