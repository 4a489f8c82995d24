"""Residency: whether data of a silo table may move to a region, and the route that records it.

One function decides every movement, whoever makes it: the federated planner for fragment
results, semi-join keys and tables shipped into another silo; the training engineer for training
rows and model weights. It is pure: it reads only the silo's settings (name, region, policy) and
what the caller says moves, and it returns a ``Route`` naming the rule that allowed the movement,
or raises ``PolicyViolation`` naming the table, column, rule and fix.

What moves is described by its ``kind``:

- ``"rows"``: values of single rows (a scan, a fragment that does not aggregate);
- ``"aggregates"``: one row per group, ``columns`` being the group labels and ``aggregated`` the
  columns read only inside aggregates that do not return a member's value (count, sum, avg,
  stddev, variance, ...: see ``fed_assets.query.lineage``);
- ``"keys"``: distinct values of a column sent into another silo as a semi-join filter;
- ``"shipped"``: a fragment's result registered as a table inside another silo;
- ``"weights"``: model weights trained on the table; they carry no rows, so they may leave any
  silo, ``export: none`` included.

Rules, in order: data staying in its region always may; weights always may; ``export: none``
refuses; ``allowed_regions``, when set, must hold the destination; PII columns never leave as
values (as rows, group labels, keys or shipped columns), and leave inside aggregates only in
groups of at least ``group_floor`` rows; ``export: aggregates_only`` lets only ``"aggregates"``
leave, in groups of at least ``group_floor`` rows (``min_group_size``, and never single rows). The
planner adds the ``HAVING COUNT(*) >= k``; a caller moving aggregates itself must group so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Protocol

from fed_assets.errors import PolicyViolation

# What can move out of a silo (see the module docstring).
KINDS = ("rows", "aggregates", "keys", "shipped", "weights")
# How a route names a destination when no region is set: the embedded engine, anywhere.
UNSET_REGION = "engine"
# Fewest rows an aggregate that leaves may describe, whatever min_group_size says: a group of
# one row is that row (an avg over a GROUP BY on a unique key returns each row's value).
MIN_GROUP_ROWS = 2


def group_floor(policy: object) -> int:
    """Rows each exported group must have under ``policy`` (an ``EffectivePolicy``)."""
    return max(MIN_GROUP_ROWS, policy.min_group_size)


class PolicyHolder(Protocol):
    """What the check reads of a silo: a ``SiloResource`` has all three."""

    name: str
    region: str
    policy: object  # fed_assets.silo.SiloPolicy


@dataclass(frozen=True)
class Route:
    """One movement of data: what, from which silo and region to which region, and why allowed.

    Attributes:
        kind: one of ``KINDS``.
        silo: the silo the data comes from.
        tables: the silo tables it is computed from.
        source_region: the silo's region.
        destination_region: where it goes (``"engine"``: no region set).
        rule: the rule that allowed it, for the audit.
        rows: rows moved, once known (``None`` while only planned).
        bytes: bytes moved, once known.
        via: what carried it (a fragment id, ``"__f0 → __f1"`` for keys, a training job, ...).
    """

    kind: str
    silo: str
    tables: tuple[str, ...]
    source_region: str
    destination_region: str
    rule: str
    rows: int | None = None
    bytes: int | None = None
    via: str = ""

    def moved(self, rows: int, nbytes: int, *, via: str | None = None) -> Route:
        """This route with what actually moved."""
        return replace(self, rows=rows, bytes=nbytes, via=self.via if via is None else via)


def check_movement(
    silo: PolicyHolder,
    table: str,
    columns: Iterable[str] = (),
    *,
    kind: str,
    destination_region: str | None,
    aggregated: Iterable[str] = (),
) -> Route:
    """The route by which ``columns`` of ``silo``'s ``table`` may move to ``destination_region``.

    Args:
        silo: the silo the data lives in (anything with ``name``, ``region`` and ``policy``).
        table: the table, as the silo spells it.
        columns: columns whose values move as they are (for ``"aggregates"``: the group labels).
        kind: what moves, one of ``KINDS``.
        destination_region: where it goes; ``None`` counts as outside every region.
        aggregated: columns moving only inside value-hiding aggregates (``"aggregates"`` only).

    Raises:
        PolicyViolation: the policy keeps it in place; the message names the rule and the fix.
        ValueError: ``kind`` is not one of ``KINDS`` (a programming error, not a user's).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    destination = destination_region or UNSET_REGION
    route = Route(kind, silo.name, (table,), silo.region, destination, "")
    if destination_region is not None and destination_region == silo.region:
        return replace(route, rule=f"same region ({silo.region})")
    if kind == "weights":
        return replace(route, rule="model weights carry no rows")
    policy = silo.policy.for_table(table)
    where = f"silo '{silo.name}' (region {silo.region}), table '{table}'"
    shown = destination_region or "the embedded engine (no region set)"
    what = _WHAT[kind]
    if policy.export == "none":
        raise PolicyViolation(
            where,
            f"rule export=none: nothing may leave the silo, but {what} would go to {shown}",
            f"run the work in region {silo.region} (engine_region='{silo.region}') or leave the "
            "table out",
        )
    if policy.allowed_regions and destination_region not in policy.allowed_regions:
        raise PolicyViolation(
            where,
            f"rule allowed_regions={list(policy.allowed_regions)}: {what} would go to {shown}",
            f"run the work in one of {list(policy.allowed_regions)} "
            f"(engine_region='{policy.allowed_regions[0]}')",
        )
    raw = [c for c in columns if c.lower() in policy.pii_columns]
    if raw:
        raise PolicyViolation(
            f"{where}, column '{raw[0]}'",
            f"rule pii: personal data never leaves region {silo.region}, but {what} would carry "
            f"the column's values to {shown}",
            _PII_FIX[kind].format(silo=silo.name, region=silo.region),
        )
    if policy.export == "aggregates_only":
        if kind != "aggregates":
            raise PolicyViolation(
                where,
                f"rule export=aggregates_only: only aggregates may leave the silo, but {what} "
                f"would go to {shown}",
                f"aggregate the table in a subquery that reads only silo '{silo.name}' "
                f"(GROUP BY ...) with count/sum/avg-like aggregates, in groups of at least "
                f"{policy.min_group_size} rows",
            )
        return replace(route, rule=f"{table}: aggregates only, groups ≥ {group_floor(policy)}")
    if {c.lower() for c in aggregated} & policy.pii_columns:
        return replace(
            route, rule=f"{table}: PII only inside aggregates, groups ≥ {group_floor(policy)}"
        )
    return replace(route, rule="export allowed")


# How each kind is named in a refusal.
_WHAT = {
    "rows": "rows",
    "aggregates": "aggregates",
    "keys": "semi-join keys",
    "shipped": "a table shipped into another silo",
    "weights": "model weights",
}

# What to do about a PII column, by kind.
_PII_FIX = {
    "rows": "drop the column, use it only inside count/sum/avg-like aggregates over groups that "
    "are not single rows, or join and filter on it within silo '{silo}'",
    "aggregates": "group by a column that is not personal data; aggregate the PII column with "
    "count/sum/avg-like aggregates only",
    "keys": "join on a column that is not personal data, or run the query in region {region} "
    "(engine_region='{region}') so the join happens there",
    "shipped": "drop the column from the shipped side, or run the query in region {region} "
    "(engine_region='{region}')",
    "weights": "",
}
