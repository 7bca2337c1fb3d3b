"""The layers import one way, as the README states: the import-linter contracts in pyproject.toml hold, they say
what the README says, and they do catch an import that runs against the order."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from devtools.testing.fixtures import ROOT

APPS = ("fleet", "ops", "geo", "state", "events", "domain", "slo", "devtools")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def readme_layers() -> list[set[str]]:
    """`fleet → ops, geo → state → events → domain, slo` from the README, top first."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"Layers import one way only \(`([^`]+)`\)", text)
    assert match, "the README must state the layer order as: Layers import one way only (`fleet → … → …`)"
    return [{name.strip() for name in layer.split(",")} for layer in match.group(1).split("→")]


def contract_layers(config: Path = ROOT / "pyproject.toml") -> list[set[str]]:
    contracts = tomllib.loads(config.read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in contracts if c["type"] == "layers"]
    return [{name.strip() for name in layer.split("|")} for layer in layers]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
    )  # fmt: skip


def test_it_checks_the_layer_order_the_readme_states():
    assert contract_layers() == readme_layers()


def test_it_keeps_every_import_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]


def test_it_fails_on_an_import_against_the_layers(tmp_path):
    for app in APPS:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "events" / "upward.py").write_text("from state.models import Trip  # noqa: F401\n")
    (tmp_path / "state" / "tooling.py").write_text("import devtools.bench  # noqa: F401\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "events is not allowed to import state" in result.stdout
    assert "state.tooling -> devtools.bench" in result.stdout
