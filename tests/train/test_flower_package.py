"""The Flower app ships in the wheel: a non-editable install finds it through importlib.resources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.servers import ROOT

# Building the wheel and installing it into a folder: a few seconds alone, more under load.
pytestmark = pytest.mark.timeout(600)
APP_FILES = {
    "pyproject.toml",
    "fed_flower_app/__init__.py",
    "fed_flower_app/client_app.py",
    "fed_flower_app/server_app.py",
}
FIND = """
import json
from fed_assets.train.flower import app_folder
import fed_assets
app = app_folder()
print(json.dumps({
    "package": fed_assets.__file__,
    "app": str(app),
    "files": sorted(
        str(p.relative_to(app)) for p in app.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ),
}))
"""


def test_a_non_editable_install_holds_the_flower_app(tmp_path):
    source = tmp_path / "src"  # a clean copy: building in place would write into the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("fed_assets", "resources", "io_managers", "sensors"):
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("fed_assets-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"fed_assets/train/flower/app/{f}" for f in APP_FILES} <= names
    target = tmp_path / "installed"
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    found = subprocess.run(
        [sys.executable, "-c", FIND],
        cwd=tmp_path,  # not the checkout, whose folder would shadow the installed package
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    shown = json.loads(found.stdout.strip().splitlines()[-1])
    assert shown["package"].startswith(str(target)), shown
    assert shown["app"].startswith(str(target)), shown
    assert set(shown["files"]) == APP_FILES
