"""A function a silo lacks is evaluated in the embedded engine, not failed."""

from __future__ import annotations

import pytest

from fed_assets.query import plan, query
from resources.silos.sqlite import SQLiteSilo
from tests.query.compare import assert_same
from tests.query.conftest import build_shop

# DuckDB functions that sqlglot passes to SQLite by name, and SQLite does not have.
CASES = [
    "SELECT code, md5(country_name) AS h FROM ref.countries",
    "SELECT risk, stddev_samp(length(country_name)) AS s FROM ref.countries GROUP BY risk",
    "SELECT code, regexp_matches(country_name, 'an') AS m FROM ref.countries WHERE risk = 'high'",
    "SELECT code, levenshtein(code, risk) AS d FROM ref.countries",
    "SELECT c.segment, r.code FROM crm.customers AS c JOIN ref.countries AS r "
    "ON c.country = r.code WHERE md5(r.country_name) LIKE '%a%'",
]


@pytest.fixture(scope="module")
def fresh_shop(tmp_path_factory):
    """A shop whose SQLite silo no earlier test has taught anything (its own path)."""
    return build_shop(tmp_path_factory.mktemp("functions"))


@pytest.mark.parametrize("sql", CASES)
def test_missing_function_runs_above_the_silo(fresh_shop, sql):
    silos, colocated = fresh_shop
    result = query(sql, silos)
    assert_same(result.table, colocated.sql(sql).to_arrow_table(), sql)
    (ref,) = [f for f in result.fragments if f.silo == "ref"]
    function = sql.split("(")[0].split()[-1]  # md5, stddev_samp, ...
    assert function.lower() not in ref.sql.lower()


def test_a_learnt_function_is_kept_out_of_later_plans(fresh_shop):
    silos, _ = fresh_shop
    sql = "SELECT code, md5(code) AS h2 FROM ref.countries"
    query(CASES[0], silos)  # learns md5
    (fragment,) = plan(sql, silos).fragments
    assert "md5" not in fragment.sql.lower()
    assert "md5" in plan(sql, silos).residual.lower()


@pytest.mark.parametrize(
    ("message", "function"),
    [
        ("no such function: MD5", "md5"),
        (
            "function levenshtein(text, text) does not exist LINE 1: SELECT levenshtein(",
            "levenshtein",
        ),
        ('Catalog Error: Scalar Function with name "foo_bar" does not exist!', "foo_bar"),
    ],
)
def test_driver_messages_name_the_missing_function(tmp_path, message, function):
    silo = SQLiteSilo(name="s", path=str(tmp_path / "x.sqlite"))
    err = silo.unsupported_function(message)
    assert err is not None and err.function == function and err.silo == "s"
    assert f"no function {function}()" in str(err)
    assert silo.unsupported_function("no such table: people") is None
