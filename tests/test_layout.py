"""The package layout of SPEC §1: imports flow core <- catalogue <- subscriptions <- worker, api."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "catalogue", "subscriptions", "worker", "api")
ALLOWED = {
    "core": {"core"},
    "catalogue": {"core", "catalogue"},
    "subscriptions": {"core", "catalogue", "subscriptions"},
    "worker": {"core", "catalogue", "subscriptions", "worker"},
    "api": {"core", "catalogue", "subscriptions", "api"},
}


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(PACKAGES)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package])
        for path in (ROOT / package).rglob("*.py")
        if imported_packages(path) - ALLOWED[package]
    }
    assert offenders == {}


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import worker.jobs\nfrom api.app import create_app\nfrom . import sibling\n")
    assert imported_packages(module) == {"worker", "api"}


def test_no_utils_modules() -> None:
    names = {path.stem for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    assert not names & {"utils", "helpers", "common", "misc"}
    assert not [name for name in names if name.endswith("_utils")]


@pytest.mark.parametrize("name", ["pyproject.toml", "Procfile", "Makefile", "README.md", ".ci/run"])
def test_top_level_files_exist(name: str) -> None:
    assert (ROOT / name).is_file()


def test_procfile_runs_web_and_worker_with_port() -> None:
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert "switchboard web" in lines["web"] and "${PORT:-8080}" in lines["web"]
    assert lines["worker"].strip() == "switchboard worker"
