"""What a source-change tick decides, as a pure function of the cursor, the readings and the clock.

The sensor (``sensors.source_change``) does the I/O: it reads each watched table's fingerprint,
hands the readings here, and turns the decisions into observations and run requests. Keeping the
decision pure makes its promises testable on plain values: a model is retrained once for each
new state of its sources (never twice: the run key names that state), a change is never lost (a
change below the threshold or inside the cool-down waits in the cursor), and a silo that cannot
be read leaves its tables' entries where they were.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# Bumped when the cursor's JSON layout changes; an older cursor is read as a fresh start.
CURSOR_FORMAT = 1
# Hex digits of the state digest in a run key: 80 bits, no collision in any realistic history.
RUN_KEY_DIGITS = 20


@dataclass(frozen=True)
class Reading:
    """One watched table's fingerprint this tick.

    Attributes:
        version: the silo's ``version(table).fingerprint``.
        changes: a cumulative count of rows inserted, updated or deleted, where the silo keeps
            one (PostgreSQL's ``n_tup_ins + n_tup_upd + n_tup_del``); ``None`` elsewhere.
        live_rows: the rows the table holds now, where the silo says so cheaply.
    """

    version: str
    changes: int | None = None
    live_rows: int | None = None


@dataclass(frozen=True)
class Unreadable:
    """A watched table whose fingerprint could not be read this tick, and why."""

    reason: str


@dataclass(frozen=True)
class TableEntry:
    """What the cursor remembers of one table: its last fingerprint and how often it changed."""

    version: str
    seq: int = 0
    changes: int | None = None


@dataclass(frozen=True)
class ModelEntry:
    """What the cursor remembers of one model: when it was last requested and the state of each
    source it was requested for (``table → (seq, change counter)``)."""

    requested_at: float | None = None
    seen: Mapping[str, tuple[int, int | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class Cursor:
    """The sensor's memory between ticks (stored by Dagster as JSON, survives restarts)."""

    tables: Mapping[str, TableEntry] = field(default_factory=dict)
    models: Mapping[str, ModelEntry] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": CURSOR_FORMAT,
                "tables": {
                    t: [e.version, e.seq, e.changes] for t, e in sorted(self.tables.items())
                },
                "models": {
                    m: {
                        "at": e.requested_at,
                        "seen": {t: list(s) for t, s in sorted(e.seen.items())},
                    }
                    for m, e in sorted(self.models.items())
                },
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | None) -> Cursor:
        """The cursor ``to_json`` wrote; an empty or older-format cursor starts afresh."""
        if not text:
            return cls()
        data = json.loads(text)
        if data.get("format") != CURSOR_FORMAT:
            return cls()
        return cls(
            tables={t: TableEntry(v, s, c) for t, (v, s, c) in data["tables"].items()},
            models={
                m: ModelEntry(e["at"], {t: (s, c) for t, (s, c) in e["seen"].items()})
                for m, e in data["models"].items()
            },
        )


@dataclass(frozen=True)
class Rules:
    """When a change is worth a retrain.

    Attributes:
        threshold: the smallest changed fraction of a table (rows changed since the model's last
            request / rows now) that requests a retrain, where the silo counts changes; a silo
            that cannot count is taken to have changed wholly.
        cooldown_s: the least time between two requests for the same model; a change inside it
            waits and is requested when it ends.
    """

    threshold: float = 0.0
    cooldown_s: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], not {self.threshold}")
        if self.cooldown_s < 0:
            raise ValueError(f"cooldown_s must not be negative, not {self.cooldown_s}")


@dataclass(frozen=True)
class Retrain:
    """A decision to request a run of ``model`` because ``changed`` moved.

    Attributes:
        changed: table → the changed fraction since the model's last request (``None``: the
            silo cannot count, so the whole table counts as changed).
        run_key: names the state of every source of the model; the same state gives the same
            key, so a tick evaluated twice (a restart) asks Dagster for the run only once.
    """

    model: str
    changed: Mapping[str, float | None]
    run_key: str


@dataclass(frozen=True)
class Wait:
    """A model whose sources changed but that is not requested this tick, and why."""

    model: str
    reason: str


@dataclass(frozen=True)
class Tick:
    """The outcome of one tick: the next cursor and what was decided."""

    cursor: Cursor
    changed: tuple[str, ...]
    first_seen: tuple[str, ...]
    retrains: tuple[Retrain, ...]
    waits: tuple[Wait, ...]
    errors: Mapping[str, str]


def advance(
    cursor: Cursor,
    readings: Mapping[str, Reading | Unreadable],
    sources: Mapping[str, frozenset[str]],
    rules: Rules,
    now: float,
) -> Tick:
    """Fold one tick's readings into the cursor and decide which models to request.

    Args:
        readings: watched table → its reading (or why it could not be read).
        sources: model → the watched tables upstream of it in the asset graph.
        now: seconds since the epoch.

    A table seen for the first time is a baseline, not a change. A model seen for the first time
    takes its sources' current state as what it was trained on.
    """
    # Tables no longer watched and models no longer in the graph are forgotten.
    tables = {t: e for t, e in cursor.tables.items() if t in readings}
    changed, first_seen, errors = [], [], {}
    for table, reading in sorted(readings.items()):
        if isinstance(reading, Unreadable):
            errors[table] = reading.reason
            continue
        old = tables.get(table)
        if old is None:
            tables[table] = TableEntry(reading.version, 0, reading.changes)
            first_seen.append(table)
        elif old.version != reading.version:
            tables[table] = TableEntry(reading.version, old.seq + 1, reading.changes)
            changed.append(table)
    models = {m: e for m, e in cursor.models.items() if m in sources}
    retrains, waits = [], []
    for model, upstream in sorted(sources.items()):
        known = sorted(t for t in upstream if t in tables)
        entry = models.get(model) or ModelEntry()
        seen = dict(entry.seen)
        for table in known:
            seen.setdefault(table, (tables[table].seq, tables[table].changes))
        pending = [t for t in known if tables[t].seq > seen[t][0]]
        models[model] = replace(entry, seen=seen)
        if not pending:
            continue
        fractions = {t: changed_fraction(seen[t][1], tables[t], readings.get(t)) for t in pending}
        if all(f is not None and f < rules.threshold for f in fractions.values()):
            shown = ", ".join(f"{t} {f:.2%}" for t, f in fractions.items())
            waits.append(Wait(model, f"changed fraction below {rules.threshold:.2%}: {shown}"))
            continue
        if entry.requested_at is not None and now - entry.requested_at < rules.cooldown_s:
            left = rules.cooldown_s - (now - entry.requested_at)
            waits.append(Wait(model, f"in cool-down for {left:.0f} s more"))
            continue
        state = {t: (tables[t].seq, tables[t].version) for t in known}
        retrains.append(Retrain(model, fractions, run_key(model, state)))
        models[model] = ModelEntry(now, {t: (tables[t].seq, tables[t].changes) for t in known})
    return Tick(
        cursor=Cursor(tables, models),
        changed=tuple(changed),
        first_seen=tuple(first_seen),
        retrains=tuple(retrains),
        waits=tuple(waits),
        errors=errors,
    )


def changed_fraction(
    counted_then: int | None, entry: TableEntry, reading: Reading | Unreadable | None
) -> float | None:
    """Rows changed since ``counted_then`` as a fraction of the rows now; ``None`` when the silo
    does not count. A counter that went backwards (statistics reset) counts as a whole change."""
    if counted_then is None or entry.changes is None:
        return None
    if entry.changes < counted_then:
        return 1.0
    live = reading.live_rows if isinstance(reading, Reading) else None
    if not live:
        return None if live is None else 1.0
    return min((entry.changes - counted_then) / live, 1.0)


def run_key(model: str, state: Mapping[str, tuple[int, str]]) -> str:
    """``model@<digest>`` of every source's (change number, fingerprint)."""
    text = json.dumps(sorted((t, list(s)) for t, s in state.items()))
    return f"{model}@{hashlib.sha256(text.encode()).hexdigest()[:RUN_KEY_DIGITS]}"


def describe(tick: Tick) -> dict[str, Any]:
    """A summary of the tick for logs and skip messages."""
    return {
        "changed": list(tick.changed),
        "first seen": len(tick.first_seen),
        "retrain": [r.model for r in tick.retrains],
        "waiting": {w.model: w.reason for w in tick.waits},
        "errors": dict(tick.errors),
    }
