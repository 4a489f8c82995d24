"""Semi-join filters go where the column is read, and never change which rows a fragment keeps."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from fed_assets.keyed import keyed_sql

KEYS = {"cid": pa.array([1, 3], pa.int64())}


@pytest.fixture(scope="module")
def con():
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE c AS SELECT * FROM (VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd')) t(id, n)"
    )
    con.execute(
        "CREATE TABLE o AS SELECT * FROM (VALUES (10, 1, 5.0), (11, 1, 7.0), (12, 2, 1.0), "
        "(13, 3, 2.0), (14, 4, 9.0), (15, NULL, 3.0)) t(oid, cid, total)"
    )
    return con


CASES = [
    (
        "into a derived table and down to the scan",
        'SELECT "x"."cid" AS "cid", "x"."total" AS "total" FROM '
        '(SELECT "o"."cid" AS "cid", "o"."total" AS "total" FROM "o" AS "o") AS "x"',
        'SELECT "x"."cid" AS "cid", "x"."total" AS "total" FROM (SELECT "o"."cid" AS "cid", '
        '"o"."total" AS "total" FROM "o" AS "o" WHERE "o"."cid" IN (1, 3)) AS "x"',
    ),
    (
        "below a GROUP BY on its key",
        'SELECT "o"."cid" AS "cid", SUM("o"."total") AS "s" FROM "o" AS "o" GROUP BY "o"."cid"',
        'SELECT "o"."cid" AS "cid", SUM("o"."total") AS "s" FROM "o" AS "o" '
        'WHERE "o"."cid" IN (1, 3) GROUP BY "o"."cid"',
    ),
    (
        "not below a LIMIT",
        'SELECT "o"."cid" AS "cid" FROM "o" AS "o" ORDER BY "o"."oid" LIMIT 3',
        'SELECT * FROM (SELECT "o"."cid" AS "cid" FROM "o" AS "o" ORDER BY "o"."oid" LIMIT 3) '
        'AS "_sj" WHERE "_sj"."cid" IN (1, 3)',
    ),
    (
        "not into the null-supplying side of a LEFT JOIN",
        'SELECT "c"."n" AS "n", "x"."cid" AS "cid" FROM "c" AS "c" LEFT JOIN '
        '(SELECT "o"."cid" AS "cid" FROM "o" AS "o") AS "x" ON "x"."cid" = "c"."id"',
        'SELECT "c"."n" AS "n", "x"."cid" AS "cid" FROM "c" AS "c" LEFT JOIN '
        '(SELECT "o"."cid" AS "cid" FROM "o" AS "o") AS "x" ON "x"."cid" = "c"."id" '
        'WHERE "x"."cid" IN (1, 3)',
    ),
    (
        "not below a window function",
        'SELECT "o"."cid" AS "cid", ROW_NUMBER() OVER (ORDER BY "o"."oid") AS "r" FROM "o" AS "o"',
        'SELECT * FROM (SELECT "o"."cid" AS "cid", ROW_NUMBER() OVER (ORDER BY "o"."oid") AS "r" '
        'FROM "o" AS "o") AS "_sj" WHERE "_sj"."cid" IN (1, 3)',
    ),
]


@pytest.mark.parametrize(("name", "sql", "expected"), CASES, ids=[c[0] for c in CASES])
def test_filter_placement_and_rows(con, name, sql, expected):
    got = keyed_sql(sql, "duckdb", KEYS)
    assert got == expected
    outside = f'SELECT * FROM ({sql}) AS "_sj" WHERE "_sj"."cid" IN (1, 3)'
    assert sorted(con.sql(got).fetchall(), key=repr) == sorted(
        con.sql(outside).fetchall(), key=repr
    )


def test_keys_from_a_table_and_a_filter_on_an_aggregate(con):
    con.register("__keys", pa.table({"k": pa.array([1, 3], pa.int64())}))
    sql = 'SELECT "o"."cid" AS "cid", SUM("o"."total") AS "s" FROM "o" AS "o" GROUP BY "o"."cid"'
    got = keyed_sql(sql, "duckdb", {"cid": "__keys", "s": pa.array([12.0])})
    assert '"o"."cid" IN (SELECT "k" FROM "__keys")' in got
    assert got.endswith('WHERE "_sj"."s" IN (12.0)')
    assert con.sql(got).fetchall() == [(1, 12.0)]
