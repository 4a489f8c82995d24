"""The ``fed-assets query`` and ``explain`` commands over the demo silos."""

from __future__ import annotations

import json

import pyarrow.csv as pacsv
import pytest

from fed_assets.cli import main
from fed_assets.demo.generate import DemoPaths, generate
from fed_assets.demo.silos import embedded_silos
from fed_assets.query import query

SEGMENTS = (
    "SELECT c.segment, count(*) AS payments, round(sum(t.amount), 2) AS volume "
    "FROM eu_core_banking.customers AS c JOIN us_payments.transactions AS t "
    "ON t.customer_id = c.customer_id GROUP BY c.segment ORDER BY c.segment"
)


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    generate(root, scale=0.1, seed=3)
    return root


@pytest.fixture
def demo(demo_root, monkeypatch):
    monkeypatch.setenv("FED_ASSETS_DATA", str(demo_root))
    return embedded_silos(DemoPaths(demo_root))


def test_query_prints_a_table_and_a_summary(demo, capsys):
    assert main(["query", SEGMENTS, "--engine-region", "uk"]) == 0
    out, err = capsys.readouterr()
    expected = query(SEGMENTS, demo, engine_region="uk").table.to_pylist()
    assert "segment" in out and "volume" in out
    for row in expected:
        assert row["segment"] in out and f"{row['payments']}" in out
    assert f"{len(expected)} rows" in err and "fragment(s)" in err
    assert "eu_core_banking" in err and "us_payments" in err  # the per-fragment progress lines


def test_query_csv_to_a_file_from_an_sql_file(demo, tmp_path, capsys):
    sql_file = tmp_path / "segments.sql"
    sql_file.write_text(SEGMENTS)
    out_file = tmp_path / "out.csv"
    args = ["query", f"@{sql_file}", "--engine-region", "uk", "--format", "csv"]
    assert main([*args, "--output", str(out_file)]) == 0
    written = pacsv.read_csv(out_file)
    expected = query(SEGMENTS, demo, engine_region="uk").table
    assert written.column_names == expected.column_names
    assert written.to_pylist() == expected.to_pylist()
    assert f"written to {out_file}" in capsys.readouterr().err


def test_query_json_on_stdout(demo, capsys):
    sql = "SELECT case_id, sar_filed FROM compliance_store.aml_cases ORDER BY case_id LIMIT 5"
    assert main(["query", sql, "--engine-region", "eu", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["case_id"] for r in rows] == [1, 2, 3, 4, 5]
    assert all(isinstance(r["sar_filed"], bool) for r in rows)


def test_silos_from_a_yaml_file(demo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("FED_ASSETS_DATA", raising=False)
    config = tmp_path / "silos.yaml"
    config.write_text(
        "silos:\n"
        f"  payments:\n    kind: parquet\n    root: {demo_root / 'payments_lake'}\n"
        "    region: us\n"
    )
    sql = "SELECT count(*) AS n FROM payments.transactions WHERE channel = 'cash_deposit'"
    assert main(["query", sql, "--silos", str(config), "--format", "csv"]) == 0
    n = int(capsys.readouterr().out.splitlines()[1])
    assert n > 0


def test_explain_shows_the_plan_without_running_it(demo, capsys, monkeypatch):
    from fed_assets.silo import SiloResource

    def no_scan(self, sql):
        raise AssertionError("explain ran a query in a silo")

    monkeypatch.setattr(SiloResource, "scan", no_scan)
    assert main(["explain", SEGMENTS, "--engine-region", "uk"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Federated plan")
    assert "silo eu_core_banking (region eu)" in out and "silo us_payments (region us)" in out
    assert '"full_name"' not in out  # only the columns the query needs leave a silo


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "SELECT * FROM us_payments.nope"], "table 'nope'"),
        (
            ["query", "SELECT full_name FROM eu_core_banking.customers", "--engine-region", "uk"],
            "column 'full_name': rule pii",
        ),
        (["explain", "SELEC 1"], "does not parse"),
        (["query", "@missing.sql"], "SQL file missing.sql"),
        (["query", "SELECT 1", "--silos", "nowhere.yaml"], "nowhere.yaml: it does not exist"),
    ],
    ids=["unknown-table", "pii", "bad-sql", "missing-sql-file", "missing-silo-file"],
)
def test_errors_exit_1_with_the_message(demo, capsys, args, message):
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err and out == ""


def test_a_residency_refusal_names_the_option_that_fixes_it(demo, capsys):
    assert main(["query", SEGMENTS]) == 1
    err = capsys.readouterr().err
    assert "allowed_regions" in err and "--engine-region eu" in err
    assert "engine_region=" not in err  # the CLI names its option, not the Python argument
    assert main(["query", SEGMENTS, "--engine-region", "eu"]) == 0


def test_the_python_refusal_names_the_argument_that_fixes_it(demo):
    import fed_assets

    with pytest.raises(fed_assets.PolicyViolation) as info:
        fed_assets.explain(SEGMENTS, demo)
    assert "engine_region='eu'" in info.value.fix


def test_help_gives_defaults_and_imports_no_engine():
    """--help is fast because it imports nothing heavy: neither Dagster, pyarrow nor the planner."""
    import subprocess
    import sys

    from tests.servers import ROOT

    probe = (
        "import sys\n"
        "from fed_assets.cli import main\n"
        "try:\n    main(['query', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('dagster', 'pyarrow', 'duckdb', 'sqlglot', 'fed_assets.query')"
        " if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "HEAVY []" in done.stdout
    assert "--engine-region" in done.stdout and "(default: unset" in done.stdout
    assert "(default: table)" in done.stdout and "(default: 50)" in done.stdout


def test_json_writes_whole_decimal_sums_as_numbers(demo, capsys):
    """DuckDB sums integers as HUGEINT (decimal128(38, 0) in Arrow); JSON shows a number."""
    sql = (
        "SELECT segment, sum(CASE WHEN annual_income > 50000 THEN 1 ELSE 0 END) AS rich "
        "FROM eu_core_banking.customers GROUP BY 1 ORDER BY 1"
    )
    assert main(["query", sql, "--engine-region", "eu", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expected = query(sql, demo, engine_region="eu").table
    assert str(expected.schema.field("rich").type) == "decimal128(38, 0)"
    assert [r["rich"] for r in rows] == [int(v) for v in expected["rich"].to_pylist()]
    assert all(isinstance(r["rich"], int) for r in rows)
