"""Golden plans per planner rule: SQL in → fragments and residual out, then executed and compared
with the same query on co-located data.

Each ``tests/fixtures/plans/<rule>.sql`` holds cases::

    -- name: what the case shows
    SELECT ... ;
    >> <silo>: <fragment SQL in the silo's dialect>
    >> residual: <SQL the embedded engine runs>

``FED_UPDATE_GOLDEN=1 pytest tests/query/test_rules.py`` rewrites the expectations (review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fed_assets.query import plan, query
from tests.query.compare import assert_same

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "plans"


def load_cases() -> list[tuple[str, str, str, list[str]]]:
    cases = []
    for path in sorted(GOLDEN.glob("*.sql")):
        for block in path.read_text().split("-- name: ")[1:]:
            name, _, body = block.partition("\n")
            sql_lines, expected = [], []
            for line in body.splitlines():
                if line.startswith(">> "):
                    expected.append(line[3:])
                elif line.strip():
                    sql_lines.append(line)
            cases.append((path.stem, name.strip(), "\n".join(sql_lines).rstrip(";"), expected))
    return cases


def describe(planned) -> list[str]:
    lines = [f"{f.silo}: {f.sql}" for f in planned.fragments]
    lines += [
        f"semi-join: {s.source_column} -> {planned.fragment(s.target).silo}.{s.target_column}"
        for s in planned.semi_joins
    ]
    return [*lines, f"residual: {planned.residual}"]


CASES = load_cases()


@pytest.mark.parametrize(
    ("rule", "name", "sql", "expected"), CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES]
)
def test_golden_plan(shop, rule, name, sql, expected):
    silos, colocated = shop
    planned = plan(sql, silos)
    got = describe(planned)
    if os.environ.get("FED_UPDATE_GOLDEN"):
        _rewrite(rule, name, got)
    else:
        assert got == expected
    result = query(sql, silos)
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)


def _rewrite(rule: str, name: str, got: list[str]) -> None:
    path = GOLDEN / f"{rule}.sql"
    blocks = path.read_text().split("-- name: ")
    out = [blocks[0]]
    for block in blocks[1:]:
        title, _, body = block.partition("\n")
        if title.strip() == name:
            sql = [
                line for line in body.splitlines() if line.strip() and not line.startswith(">> ")
            ]
            body = "\n".join(sql + [f">> {g}" for g in got]) + "\n\n"
        out.append(f"{title}\n{body}")
    path.write_text("-- name: ".join(out))
