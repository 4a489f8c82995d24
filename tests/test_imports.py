"""Every module of the four packages imports on its own, first, in a fresh interpreter.

A test process imports ``fed_assets`` early, which hides import cycles: a module that works only
once another has initialised breaks in a worker, a script or ``python -c``. Here each module is
the first thing a new interpreter imports.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import yaml

from tests.servers import ROOT

PACKAGES = ("fed_assets", "resources", "io_managers", "sensors")
# Modules run as programs rather than imported (`python -m fed_assets.cli` is covered by
# tests/test_cli.py; __main__ modules would run their command).
SKIP_SUFFIXES = (".__main__",)


def modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join(parts)
            if not name.endswith(SKIP_SUFFIXES):
                found.append(name)
    return found


# Runs in a new interpreter: loads the third-party libraries the project builds on (none of the
# project's own modules), then forks one child per module, which imports that module first and
# reports. A fork costs milliseconds where a new interpreter re-imports Dagster (1-2 s): the
# children are fresh as far as the project is concerned, which is where import cycles live.
RUNNER = """
import importlib, json, os, sys, traceback
for lib in ("dagster", "pyarrow", "pyarrow.dataset", "pyarrow.parquet", "duckdb", "sqlglot",
            "sqlglot.optimizer", "pydantic", "yaml"):
    importlib.import_module(lib)
assert not [m for m in sys.modules if m.split(".")[0] in PACKAGES], "project module preloaded"
results = {}
for module in MODULES:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            message = ""
        except BaseException:
            message = traceback.format_exc().strip().splitlines()[-1]
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    if message:
        results[module] = message
print(json.dumps(results))
"""


def import_each_first(names: list[str]) -> dict[str, str]:
    """module → the error importing it first raised (only the modules that failed)."""
    code = f"PACKAGES = {PACKAGES!r}\nMODULES = {names!r}\n{RUNNER}"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_four_packages_have_modules_to_check():
    names = modules()
    assert {"fed_assets.query.model", "io_managers.silo", "resources.silos._files"} <= set(names)
    assert any(n.startswith("sensors") for n in names)


def test_every_module_imports_first_in_a_fresh_interpreter():
    assert import_each_first(modules()) == {}


def test_a_cycle_is_caught(tmp_path, monkeypatch):
    """The runner sees the failure a cycle causes (two throwaway modules importing each other)."""
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyc.b import B\nA = 1\n")
    (pkg / "b.py").write_text("from cyc.a import A\nB = 2\n")
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{ROOT}")
    code = f"PACKAGES = ('cyc',)\nMODULES = ['cyc.a']\n{RUNNER}"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "partially initialized module" in json.loads(done.stdout.splitlines()[-1])["cyc.a"]


def module_level_imports(module: str) -> set[str]:
    """The project modules ``module`` imports when it loads (not under ``TYPE_CHECKING``, not
    inside functions). Packages count only when imported themselves: their __init__ runs first
    whenever a module below them is imported, so an edge to one is no cycle."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in tree.body:  # top level only: functions and `if TYPE_CHECKING:` are not run
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            names |= {base} | {f"{base}.{a.name}" for a in node.names}
    known = set(modules())
    out = {n if n in known else n.rpartition(".")[0] for n in names} & known
    return out - {module} - {module.rsplit(".", i)[0] for i in range(1, module.count(".") + 1)}


def test_no_import_cycles_between_modules():
    """Module-level imports form no cycle (a cycle is what breaks 'import X' done first)."""
    graph = {m: module_level_imports(m) for m in modules()}
    cycles = []

    def visit(node: str, path: list[str], seen: set[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append(" → ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in seen:
                seen.add(nxt)
                visit(nxt, [*path, nxt], seen)

    done: set[str] = set()
    for start in graph:
        if start not in done:
            done.add(start)
            visit(start, [start], done)
    assert cycles == []


def test_report_renders_plans_without_importing_them_back():
    """``model.py``'s values render through ``report.py``; report imports model only for types."""
    assert "fed_assets.query.model" not in module_level_imports("fed_assets.query.report")


# The client libraries of the server silos: a step imports one only when it reads that silo.
DRIVERS = ("adbc_driver_manager", "snowflake.connector", "dagster_snowflake", "google.cloud")


def test_loading_definitions_over_server_silos_imports_no_driver(tmp_path):
    """The demo pointed at PostgreSQL, S3, Snowflake and BigQuery by the README's YAML loads
    (from a catalog snapshot) without importing any of their drivers."""
    from fed_assets.catalog import Catalog
    from fed_assets.demo.generate import DemoPaths, generate
    from fed_assets.demo.silos import embedded_silos
    from tests.test_readme import snippets

    paths = DemoPaths(tmp_path / "demo")
    generate(paths.root, scale=0.05)
    snapshot = tmp_path / "catalog.json"
    assert set(Catalog(embedded_silos(paths), snapshot).refresh().values()) == {"ok"}
    (config,) = [c for _, c in snippets({"yaml"}) if "kind: snowflake" in c]
    servers = yaml.safe_load(config)["silos"]
    # the demo's other silos (regional loan books) stay on local disk, as configured
    local = {
        name: {"kind": silo.kind, **silo.model_dump(exclude={"name"}, exclude_defaults=True)}
        for name, silo in embedded_silos(paths).items()
        if name not in servers
    }
    (tmp_path / "silos.yaml").write_text(yaml.safe_dump({"silos": {**servers, **local}}))
    probe = (
        "import sys\n"
        "from fed_assets.demo.definitions import defs\n"
        "defs.resolve_asset_graph()\n"
        f"print('DRIVERS', sorted(m for m in sys.modules if m.startswith({DRIVERS!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FED_ASSETS_SILOS": str(tmp_path / "silos.yaml"),
            "FED_ASSETS_CATALOG": str(snapshot),
            "FED_ASSETS_DATA": str(paths.root),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "DRIVERS []" in done.stdout, done.stdout


def test_a_step_requires_only_the_silos_it_reads(tmp_path):
    """Each demo step starts the resources of the silos it reads, and no other silo."""
    from dagster._core.execution.api import create_execution_plan
    from dagster._core.execution.resources_init import get_required_resource_keys_for_step

    from fed_assets.catalog import Catalog
    from fed_assets.definitions import build_definitions
    from fed_assets.demo.assets import DEMO_ASSETS
    from fed_assets.demo.federated import federated_demo_assets
    from fed_assets.demo.generate import DemoPaths, generate
    from fed_assets.demo.silos import embedded_silos

    paths = DemoPaths(tmp_path / "demo")
    generate(paths.root, scale=0.05)
    catalog = Catalog(embedded_silos(paths), paths.catalog)
    defs = build_definitions(
        catalog,
        results_base_path=str(paths.results),
        assets=[*DEMO_ASSETS, *federated_demo_assets(catalog)],
    )
    job = defs.resolve_implicit_global_asset_job_def()
    plan = create_execution_plan(job)
    silos = set(catalog.silos)

    def with_dependencies(keys: set[str]) -> set[str]:  # resources the resources require
        found, todo = set(), list(keys)
        while todo:
            key = todo.pop()
            if key not in found:
                found.add(key)
                todo += job.resource_defs[key].required_resource_keys
        return found

    needs = {
        step.key: with_dependencies(set(get_required_resource_keys_for_step(job, step, plan)))
        & silos
        for step in plan.steps
        if step.key in ("credit_features", "default_rate_by_segment", "aml_training_set")
    }
    assert needs == {
        "credit_features": {"eu_core_banking", "us_payments", "loans_warehouse"},
        "default_rate_by_segment": {"eu_core_banking", "loans_warehouse"},
        "aml_training_set": {"compliance_store", "us_payments"},
    }


def test_fed_assets_query_stays_callable_after_its_modules_are_imported():
    """Importing any ``fed_assets.query.*`` module binds the package to ``fed_assets.query``;
    the README's ``fed_assets.query(sql, silos)`` must still run the query."""
    code = (
        "import fed_assets, fed_assets.query.tree\n"
        "from fed_assets import DuckDBSilo\n"
        "import duckdb, tempfile, os\n"
        "path = os.path.join(tempfile.mkdtemp(), 'a.duckdb')\n"
        "duckdb.connect(path).execute('CREATE TABLE t AS SELECT 1 AS x').close()\n"
        "r = fed_assets.query('SELECT x FROM a.t', [DuckDBSilo(name='a', path=path)])\n"
        "assert r.table.to_pylist() == [{'x': 1}], r.table\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
