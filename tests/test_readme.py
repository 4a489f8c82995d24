"""Every shell command and Python snippet in README.md runs as written.

The snippets are read from the README each time, so a section someone adds is tested without
touching this file. They run against the demo silos seeded in a temporary folder, as a newcomer's
checkout has them under ``./data/demo``:

- a ```` ```python ```` block runs as a script in a fresh interpreter, in that folder;
- a ```` ```sh ```` (or ``bash``/``shell``) block runs in bash there (``set -e``), with ``.venv``
  linked to the project's; two kinds of line are checked rather than run, and only those: ``make``
  runs as ``make -n`` in the project (set-up, servers, the UI: checked as a dry run), and a
  ``benchmarks`` module is asked for its ``--help`` (benchmarks are run by hand, for minutes);
- a ```` ```yaml ```` block with ``silos:`` is loaded as a silo configuration.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fed_assets.config import silos_from_yaml
from fed_assets.demo.generate import generate
from tests.servers import ROOT

README = ROOT / "README.md"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL = {"sh", "bash", "shell", "console"}
PYTHON = {"python", "py"}
# A snippet may take this long: the README's examples are small, on the small demo.
SNIPPET_TIMEOUT_S = 300
# A benchmark line in the README: run by hand, so only its options are checked here.
_BENCHMARK = re.compile(r"^(\s*\S*python\S*\s+-m\s+benchmarks\.\S+)(.*?)(\s+#.*)?$")


def snippets(language: set[str]) -> list[tuple[int, str]]:
    """(line number, code) of every fenced block of ``language`` in the README."""
    text = README.read_text()
    return [
        (text[: m.start()].count("\n") + 1, m.group(2))
        for m in _FENCE.finditer(text)
        if m.group(1).lower() in language
    ]


def ids(blocks):
    return [f"README.md:{line}" for line, _ in blocks]


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory) -> Path:
    """A folder like a fresh checkout's working directory: demo silos under ./data/demo, and
    the project's .venv."""
    work = tmp_path_factory.mktemp("readme")
    generate(work / "data" / "demo", scale=0.25, seed=7)
    (work / ".venv").symlink_to(ROOT / ".venv")
    return work


def environment(work: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("FED_ASSETS_DATA", "FED_ASSETS_SILOS", "FED_ASSETS_CATALOG"):
        env.pop(name, None)  # the README's defaults: ./data/demo
    env["DAGSTER_HOME"] = str(work / "dagster_home")
    return env


def as_checked(line: str) -> str:
    """The line as this test runs it: benchmarks asked for --help (see module docstring)."""
    match = _BENCHMARK.match(line)
    if match:
        return f"{match.group(1)}{match.group(2)} --help"
    return line


def test_the_readme_has_snippets_of_each_kind():
    assert len(snippets(PYTHON)) >= 2 and len(snippets(SHELL)) >= 3


@pytest.mark.parametrize(("line", "code"), snippets(PYTHON), ids=ids(snippets(PYTHON)))
def test_python_snippet_runs(newcomer, line, code):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=newcomer,
        env=environment(newcomer),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S,
    )
    assert done.returncode == 0, f"README.md:{line}\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize(("line", "code"), snippets(SHELL), ids=ids(snippets(SHELL)))
def test_shell_snippet_runs(newcomer, line, code):
    script = "\n".join(
        [
            "set -euo pipefail",
            # make: a dry run in the project (see module docstring)
            f'make() {{ command make -n -C "{ROOT}" "$@"; }}',
            *(as_checked(code_line) for code_line in code.splitlines()),
        ]
    )
    done = subprocess.run(
        ["bash", "-c", script],
        cwd=newcomer,
        env=environment(newcomer),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S,
    )
    assert done.returncode == 0, f"README.md:{line}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("line", "code"),
    [(n, c) for n, c in snippets({"yaml", "yml"}) if "silos:" in c],
    ids=ids([(n, c) for n, c in snippets({"yaml", "yml"}) if "silos:" in c]),
)
def test_yaml_silo_configuration_loads(tmp_path, line, code):
    path = tmp_path / "silos.yaml"
    path.write_text(code)
    silos = silos_from_yaml(path)
    assert silos, f"README.md:{line}: no silos"


def test_the_readme_query_example_prints_a_result(newcomer):
    """The first shell example's output, as a newcomer reads it: a table with the segments."""
    (line, code), *_ = [(n, c) for n, c in snippets(SHELL) if "fed-assets query" in c]
    command = next(c for c in code.splitlines() if "fed-assets query" in c)
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=newcomer,
        env=environment(newcomer),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    assert "retail" in done.stdout and " rows in " in done.stderr, f"README.md:{line}"


def test_make_test_installs_missing_system_packages_and_nothing_else(tmp_path):
    """`make test` installs PostgreSQL 15's server and Chromium only when they are missing."""

    def dry(*args: str) -> str:
        done = subprocess.run(
            ["make", "-n", "-C", str(ROOT), "system", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout

    missing = dry("PGBIN=/nonexistent", "CHROMIUM=no-such-browser")
    assert "apt-get update" in missing
    assert re.search(r"apt-get install .*postgresql-15 chromium", missing)
    only_pg = dry("PGBIN=/nonexistent", f"CHROMIUM={sys.executable}")
    assert re.search(r"install .*postgresql-15$", only_pg, re.MULTILINE)
    assert "chromium" not in only_pg
    (tmp_path / "initdb").touch()
    present = dry(f"PGBIN={tmp_path}", f"CHROMIUM={sys.executable}")
    assert "apt-get" not in present
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.rstrip().endswith("make test") and "apt-get" not in ci
