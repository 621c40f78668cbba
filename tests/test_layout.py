"""The package layout of SPEC §1: imports flow core <- catalogue <- access <- subscriptions <- chat <- worker <-
evaluation; api below worker; cli on top. String imports (`importlib.import_module`, `__import__`) count."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ORDER = ("core", "catalogue", "access", "subscriptions", "chat", "worker", "evaluation")
PACKAGES = (*ORDER, "api", "cli")
ALLOWED = {name: set(ORDER[: index + 1]) for index, name in enumerate(ORDER)}
ALLOWED["api"] = {*ORDER[: ORDER.index("worker")], "api"}
ALLOWED["cli"] = set(PACKAGES)


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and _is_string_import(node.func) and node.args:
            name = node.args[0]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                found.add(name.value.split(".")[0])
            else:  # a computed module name cannot be checked: not allowed in the product
                found.add("<computed>")
    return found & {*PACKAGES, "<computed>"}


def _is_string_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"import_module", "__import__"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


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
    module.write_text(
        "import worker.jobs\nfrom api.app import create_app\nfrom . import sibling\n"
        "import importlib\nimportlib.import_module('evaluation.runs')\n__import__('cli.main')\n"
        "from importlib import import_module\nimport_module(name)\n"
    )
    assert imported_packages(module) == {"worker", "api", "evaluation", "cli", "<computed>"}


def test_no_utils_modules() -> None:
    names = {path.stem for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    assert not names & {"utils", "helpers", "common", "misc"}
    assert not [name for name in names if name.endswith("_utils")]


@pytest.mark.parametrize("name", ["pyproject.toml", "Procfile", "Makefile", "README.md", ".ci/run"])
def test_top_level_files_exist(name: str) -> None:
    assert (ROOT / name).is_file()


def test_procfile_runs_web_and_worker_with_port() -> None:
    lines = dict(line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines()
                 if line.strip() and not line.startswith("#"))
    assert "switchboard web" in lines["web"] and "${PORT:-8080}" in lines["web"]
    assert lines["worker"].strip() == "exec switchboard worker"  # exec: see tests/e2e/test_procfile.py


@pytest.mark.parametrize("package", PACKAGES)
def test_every_package_declares_its_public_names(package: str) -> None:
    missing = [
        str(init.relative_to(ROOT))
        for init in (ROOT / package).rglob("__init__.py")
        if "migrations" not in init.parts and "__all__" not in init.read_text()
    ]
    assert missing == []
