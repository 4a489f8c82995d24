"""Run-time decisions: semi-join keys are sent only when their actual count still pays, and
every decision is reported (QueryResult.decisions, EXPLAIN, asset metadata)."""

from __future__ import annotations

import pyarrow as pa

from fed_assets.query import adaptive, plan, query
from fed_assets.query.adaptive import pass_through, semi_join_keys
from fed_assets.query.model import SemiJoin
from tests.query.compare import assert_same


def test_keys_are_sent_when_few_and_skipped_when_the_source_turned_out_big():
    few = pa.table({"id": [1, 2, 2, 3, None]})
    many = pa.table({"id": list(range(400))})
    planned = SemiJoin("__f0", "id", "__f1", "customer_id", source_rows=5, target_rows=1000)
    keys, decisions = semi_join_keys([planned], {"__f0": few})
    assert keys["customer_id"].to_pylist() == [1, 2, 3]  # distinct, nulls dropped
    assert decisions == ["semi-join __f0.id → __f1.customer_id: sent 3 keys (planned for about 5)"]
    keys, decisions = semi_join_keys([planned], {"__f0": many})
    assert keys == {}
    assert "skipped, 400 distinct keys against about 1,000 target rows" in decisions[0]


def test_keys_that_are_most_of_the_source_table_are_not_sent():
    everyone = pa.table({"id": list(range(95))})
    planned = SemiJoin(
        "__f0", "id", "__f1", "customer_id", source_rows=20, target_rows=10_000, source_domain=100
    )
    keys, decisions = semi_join_keys([planned], {"__f0": everyone})
    assert keys == {}
    assert "95 distinct keys are most of the 100 the source's table holds" in decisions[0]
    keys, _ = semi_join_keys([planned], {"__f0": everyone.slice(0, 30)})
    assert keys["customer_id"].to_pylist() == list(range(30))


def test_an_unfiltered_key_source_is_not_planned_as_a_semi_join(shop):
    silos, colocated = shop
    sql = (
        "SELECT c.segment, SUM(o.total) AS t FROM crm.customers AS c JOIN lake.orders AS o "
        "ON o.customer_id = c.id GROUP BY 1"
    )
    every = plan(sql, silos)
    assert every.semi_joins == ()  # all 200 customers' ids would filter nothing
    few = plan(sql.replace("GROUP BY", "WHERE c.country = 'KY' GROUP BY"), silos)
    assert [(sj.source_column, sj.target_column) for sj in few.semi_joins] == [
        ("id", "customer_id")
    ]
    result = query(sql, silos)
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)


def test_the_result_and_explain_say_what_was_decided(shop):
    silos, colocated = shop
    sql = (
        "SELECT o.order_id, o.total FROM crm.customers AS c JOIN lake.orders AS o "
        "ON o.customer_id = c.id WHERE c.country = 'KY'"
    )
    result = query(sql, silos)
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)
    (decision,) = result.decisions
    kept = next(f for f in result.fragments if f.silo == "crm").rows
    assert decision.endswith(f"sent {kept} keys (planned for about 29)")  # 7 countries, 200 rows
    assert "Decided at run time:" in result.explain()
    assert "q-error" in result.explain()


def test_a_query_one_silo_ran_whole_skips_the_embedded_engine(shop):
    silos, colocated = shop
    sql = "SELECT segment, COUNT(*) AS n FROM crm.customers GROUP BY segment ORDER BY segment"
    planned = plan(sql, silos)
    (fragment,) = planned.fragments
    table = pa.table({"segment": ["premium"], "n": [3]})
    assert pass_through(planned, {fragment.id: table}) is table
    assert_same(query(sql, silos).table, colocated.sql(sql).to_arrow_table(), sql)
    # renamed, filtered or joined above: the embedded engine runs the residual
    across = plan(
        "SELECT c.id FROM crm.customers AS c JOIN lake.orders AS o ON o.customer_id = c.id", silos
    )
    assert pass_through(across, {f.id: table for f in across.fragments}) is None


THREE_SILOS = (
    "SELECT r.country_name, COUNT(*) AS n, SUM(o.total) AS total FROM ref.countries AS r "
    "JOIN crm.customers AS c ON c.country = r.code "
    "JOIN lake.orders AS o ON o.customer_id = c.id GROUP BY r.country_name"
)


def test_a_residual_joining_three_inputs_gets_them_as_tables(shop, monkeypatch):
    """Three fragments' results are copied into DuckDB tables (their statistics then order the
    joins); past the row limit they stay Arrow scans. Both give the co-located answer."""
    silos, colocated = shop
    expected = colocated.sql(THREE_SILOS).to_arrow_table()
    result = query(THREE_SILOS, silos)
    assert_same(result.table, expected, THREE_SILOS)
    rows = sum(f.rows for f in result.fragments)
    assert f"residual: 3 inputs, {rows:,} rows, copied into DuckDB tables" in "\n".join(
        result.decisions
    )
    assert "copied into DuckDB tables" in result.explain()
    monkeypatch.setattr(adaptive, "MATERIALISE_MAX_ROWS", rows - 1)
    scanned = query(THREE_SILOS, silos)
    assert_same(scanned.table, expected, THREE_SILOS)
    assert any("joined as Arrow scans" in d for d in scanned.decisions)


def test_two_inputs_are_not_materialised():
    copy, decided = adaptive.materialise(
        {"__f0": pa.table({"a": [1]}), "__f1": pa.table({"a": [1]})}
    )
    assert (copy, decided) == (False, None)


def test_a_source_filtered_by_having_gets_its_semi_join_and_the_run_decides(shop, monkeypatch):
    """A HAVING's estimate has no statistic behind it (TPC-H Q18: 2 M estimated, 57 actual): its
    fragment is planned as a key source even when the estimate says too many keys."""
    from fed_assets.query.rules import choose_semi_joins

    silos, colocated = shop
    sql = (
        "SELECT o.order_id, o.total FROM lake.orders AS o WHERE o.customer_id IN "
        "(SELECT id FROM crm.customers GROUP BY id HAVING max(country) = 'KY')"
    )
    monkeypatch.setattr(choose_semi_joins, "SEMIJOIN_MAX_KEYS", 5)  # the estimate is above it
    planned = plan(sql, silos)
    (sj,) = planned.semi_joins
    assert planned.fragment(sj.source).silo == "crm" and sj.source_rows == 5
    result = query(sql, silos)
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)
    customers = colocated.sql("SELECT count(*) FROM crm.customers WHERE country = 'KY'").fetchall()[
        0
    ][0]
    assert any(f"sent {customers} keys (planned for about 5)" in d for d in result.decisions)


def test_queries_reuse_the_fragment_threads(shop):
    """Each fragment runs on a thread the process keeps: a second query starts none."""
    import threading

    silos, colocated = shop
    sql = (
        "SELECT c.segment, SUM(o.total) AS t FROM crm.customers AS c JOIN lake.orders AS o "
        "ON o.customer_id = c.id WHERE c.country = 'KY' GROUP BY 1"
    )

    def fragment_threads() -> set[int]:
        return {t.ident for t in threading.enumerate() if t.name.startswith("fed-fragment")}

    query(sql, silos)
    first = fragment_threads()
    result = query(sql, silos)
    assert len(result.fragments) >= 2 and first
    assert fragment_threads() == first
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)
