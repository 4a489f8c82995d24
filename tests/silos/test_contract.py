"""One contract suite, run against every silo kind (real files and real servers)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from fed_assets.errors import (
    FedAssetsError,
    QuerySyntaxError,
    ReadOnlyViolation,
    SiloQueryError,
    UnknownColumnError,
    UnknownTableError,
)
from fed_assets.query import plan
from fed_assets.silo import Capabilities, SiloResource
from resources.silos.duckdb import DuckDBSilo
from tests.silos.contract import NEW_ROW, PEOPLE, SiloCase

KINDS = [
    "duckdb",
    "sqlite",
    "parquet_local",
    "parquet_s3",
    "delta_local",
    "delta_s3",
    "postgres",
    "snowflake",
    "bigquery",
]


@pytest.fixture(params=KINDS)
def case(request) -> SiloCase:
    return request.getfixturevalue(f"{request.param}_case")


def rows(table: pa.Table) -> list[dict]:
    """Rows sorted by id with lower-case column names and naive UTC timestamps."""
    table = table.rename_columns([c.lower() for c in table.column_names])
    out = []
    for row in table.to_pylist():
        for key, value in row.items():
            if isinstance(value, dt.datetime) and value.tzinfo is not None:
                row[key] = value.astimezone(dt.UTC).replace(tzinfo=None)
        out.append(row)
    return sorted(out, key=lambda r: r["id"])


# What the base class leaves to each kind (its stubs raise NotImplementedError).
OWN_MEMBERS = ("dialect", "capabilities", "tables", "schema", "stats", "version", "_scan")


def test_implements_the_protocol(case):
    kind = type(case.silo)
    inherited = [m for m in OWN_MEMBERS if getattr(kind, m) is getattr(SiloResource, m)]
    assert not inherited, f"{kind.__name__} leaves {inherited} to the base class"
    sqlglot.Dialect.get_or_raise(case.silo.dialect)  # a dialect sqlglot can write
    assert {"people", "nobody"} <= {t.lower() for t in case.silo.tables()}


# One query per pushdown ability of ``Capabilities``, over ``people``, and what it must return.
ABILITY_QUERIES = {
    "projection": ("SELECT name FROM people", lambda t: t.column_names == ["name"]),
    "filter": (
        "SELECT id FROM people WHERE amount > 15",
        lambda t: sorted(t.column("id").to_pylist()) == [2, 4, 5],
    ),
    "limit": ("SELECT id FROM people LIMIT 2", lambda t: t.num_rows == 2),
    "order_by": (
        "SELECT id FROM people ORDER BY id DESC",
        lambda t: t.column("id").to_pylist() == [5, 4, 3, 2, 1],
    ),
    "aggregate": (
        "SELECT active, COUNT(*) AS n FROM people GROUP BY active",
        lambda t: (
            sorted(
                zip(t.column("active").to_pylist(), t.column("n").to_pylist(), strict=True), key=str
            )
            == [(False, 1), (None, 1), (True, 3)]
        ),
    ),
    "join": (
        "SELECT a.id FROM people AS a JOIN people AS b ON a.id = b.id + 1",
        lambda t: sorted(t.column("id").to_pylist()) == [2, 3, 4, 5],
    ),
}


# The clause a fragment must not hold when the silo lacks the ability.
LACKING_CLAUSE = {
    "filter": "where",
    "limit": "limit",
    "order_by": "order by",
    "aggregate": "group by",
    "join": " join ",
}


def in_silo(silo: SiloResource, sql: str, *, tables: tuple[str, ...] = ("people",)) -> str:
    """``sql`` (DuckDB, over the contract tables) as the silo writes it: its table names,
    identifiers quoted (Snowflake keeps the contract's lower-case names only when quoted)."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    for table in list(tree.find_all(exp.Table)):
        if table.name in tables:
            real = silo.table_expression(silo.require_table(table.name))
            real.set("alias", table.args.get("alias"))
            table.replace(real)
    for identifier in tree.find_all(exp.Identifier):
        identifier.set("quoted", True)
    return tree.sql(silo.dialect)


def lower(table: pa.Table) -> pa.Table:
    return table.rename_columns([c.lower() for c in table.column_names])


@pytest.mark.parametrize("ability", sorted(ABILITY_QUERIES))
def test_declared_pushdowns_hold(case, ability):
    """A kind that declares an ability runs it in the silo; one that lacks it is planned around
    (the clause stays in the embedded engine's residual query, never sent to the silo)."""
    check_ability(case.silo, ability)


class PlainDuckDB(DuckDBSilo):
    """A DuckDB silo that declares none of the pushdowns: the lacking branch of the suite."""

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            projection=False,
            filter=False,
            limit=False,
            order_by=False,
            aggregate=False,
            join=False,
            temp_tables=False,
        )


# Abilities the planner does not yet plan around when a kind lacks them (found by this test).
NOT_PLANNED_AROUND = {
    "projection": "no rule reads the projection flag: fragments always name their columns",
    "join": "with join=False a self-join of one silo is still sent to it as one fragment",
}


@pytest.mark.parametrize(
    "ability",
    [
        pytest.param(a, marks=pytest.mark.xfail(strict=True, reason=NOT_PLANNED_AROUND[a]))
        if a in NOT_PLANNED_AROUND
        else a
        for a in sorted(ABILITY_QUERIES)
    ],
)
def test_a_kind_lacking_a_pushdown_is_planned_around(duckdb_case, ability):
    check_ability(PlainDuckDB(**duckdb_case.silo.model_dump()), ability)


def check_ability(silo: SiloResource, ability: str) -> None:
    """Run ``ability``'s query in ``silo`` if it declares the ability, else plan around it."""
    sql, expected = ABILITY_QUERIES[ability]
    assert ability in Capabilities.__dataclass_fields__
    if silo.supports(ability):
        table = lower(silo.scan(in_silo(silo, sql)).read_all())
        assert expected(table), f"{silo.kind} declares {ability} but {sql!r} gave {table}"
    else:
        federated = sql.replace("people", f"{silo.name}.people")
        planned = plan(federated, [silo])
        sent = [f.sql.lower() for f in planned.fragments]
        if ability == "projection":  # the silo is asked for whole rows
            assert all("*" in f for f in sent)
        else:
            clause = LACKING_CLAUSE[ability]
            assert all(clause not in f for f in sent), f"{ability} was sent to {silo.name}"


def test_temp_tables_as_declared(case):
    """``temp_tables``: a kind that declares it joins tables shipped in through ``scan_with``;
    one that lacks it refuses, as ``SiloResource.scan_with`` documents."""
    silo = case.silo
    shipped = {"shipped": pa.table({"k": pa.array([1, 3], pa.int64())})}
    sql = "SELECT p.id FROM people AS p JOIN shipped AS s ON p.id = s.k"
    if silo.supports("temp_tables"):
        got = lower(silo.scan_with(in_silo(silo, sql), shipped).read_all())
        assert sorted(got.column("id").to_pylist()) == [1, 3]
    else:
        with pytest.raises(SiloQueryError, match="does not accept tables shipped in"):
            silo.scan_with(in_silo(silo, sql), shipped)


def test_schema_types(case):
    schema = case.silo.schema("people")
    types = {f.name.lower(): f.type for f in schema}
    assert list(types) == ["id", "name", "amount", "active", "joined"]
    assert pa.types.is_integer(types["id"])
    assert pa.types.is_string(types["name"]) or pa.types.is_large_string(types["name"])
    assert pa.types.is_floating(types["amount"])
    assert pa.types.is_boolean(types["active"])
    assert pa.types.is_timestamp(types["joined"])


def test_read_everything_round_trips(case):
    reader = case.silo.read("people")
    assert isinstance(reader, pa.RecordBatchReader)
    assert rows(reader.read_all()) == rows(PEOPLE)


def test_read_pushes_columns_and_filter(case):
    table = case.silo.read("people", columns=["id", "name"], where="amount > 15").read_all()
    assert [c.lower() for c in table.column_names] == ["id", "name"]
    assert rows(table) == [
        {"id": 2, "name": "Bülent"},
        {"id": 4, "name": None},
        {"id": 5, "name": "Émile"},
    ]


def test_read_limit(case):
    assert case.silo.read("people", limit=2).read_all().num_rows == 2


def test_scan_runs_an_aggregate_in_the_silo(case):
    silo = case.silo
    sql = (
        exp.select("COUNT(*) AS n", "SUM(amount) AS total")
        .from_(silo.table_expression(silo.require_table("people")))
        .sql(silo.dialect)
    )
    table = silo.scan(sql).read_all()
    (row,) = rows_any(table)
    assert row["n"] == 5
    assert row["total"] == pytest.approx(120.75)


def test_scan_keyed_keeps_rows_matching_every_key_list(case):
    silo = case.silo
    sql = (
        exp.select(
            exp.alias_(exp.column("id"), "key_id", quoted=True),
            exp.alias_(exp.column("name"), "key_name", quoted=True),
        )
        .from_(silo.table_expression(silo.require_table("people")))
        .sql(silo.dialect)
    )
    keys = {
        "key_id": pa.array([1, 2, 3, 99], pa.int64()),
        "key_name": pa.array(["Ada", "Chloé", "Émile"]),
    }
    got = rows_any(silo.scan_keyed(sql, keys).read_all())
    assert sorted(r["key_id"] for r in got) == [1, 3]
    empty = silo.scan_keyed(sql, {"key_id": pa.array([], pa.int64())}).read_all()
    assert empty.num_rows == 0


def rows_any(table: pa.Table) -> list[dict]:
    return table.rename_columns([c.lower() for c in table.column_names]).to_pylist()


def test_empty_table_keeps_its_schema(case):
    table = case.silo.read("nobody").read_all()
    assert table.num_rows == 0
    assert [c.lower() for c in table.column_names] == ["id", "name", "amount", "active", "joined"]


def test_stats_count_rows(case):
    assert case.silo.stats("people").rows == 5


def test_version_is_stable_then_changes_with_the_data(case):
    first = case.silo.version("people")
    case.silo.read("people").read_all()
    assert case.silo.version("people") == first
    assert first.method == case.expected_version_method
    case.append_row()
    second = case.silo.version("people")
    assert second.fingerprint != first.fingerprint
    ids = [r["id"] for r in rows(case.silo.read("people").read_all())]
    assert ids == [1, 2, 3, 4, 5, NEW_ROW["id"]]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM people",
        "DROP TABLE people",
        "INSERT INTO people (id) VALUES (9)",
        "SELECT 1; DROP TABLE people",
    ],
)
def test_writes_are_refused_before_reaching_the_silo(case, statement):
    with pytest.raises(ReadOnlyViolation) as info:
        case.silo.scan(statement)
    assert case.silo.name in str(info.value)
    assert case.silo.read("people").read_all().num_rows == 5


def test_unknown_table(case):
    with pytest.raises(UnknownTableError) as info:
        case.silo.read("no_such_table")
    message = str(info.value).lower()
    assert case.silo.name in message and "no_such_table" in message and "people" in message


def test_unknown_column(case):
    with pytest.raises(UnknownColumnError) as info:
        case.silo.read("people", columns=["id", "salary"])
    message = str(info.value).lower()
    assert "salary" in message and "people" in message and "amount" in message


def test_unknown_column_in_filter(case):
    with pytest.raises(UnknownColumnError, match="salary"):
        case.silo.read("people", where="salary > 3")


def test_syntax_error_names_the_silo_and_position(case):
    with pytest.raises(QuerySyntaxError) as info:
        case.silo.scan("SELECT id FROM people WHERE (")
    assert case.silo.name in str(info.value) and "line 1" in str(info.value)


def test_driver_errors_become_fed_assets_errors(case):
    silo = case.silo
    sql = f"SELECT no_such_column FROM {silo.table_expression('people').sql(silo.dialect)}"
    with pytest.raises(FedAssetsError) as info:
        silo.scan(sql).read_all()
    assert silo.name in str(info.value)
