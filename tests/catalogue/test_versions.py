"""Prompt version constraints, as the AI gateway resolves them (Poetry syntax, stable versions for ranges)."""

from __future__ import annotations

import pytest

from catalogue.versions import is_version, resolve_version

AVAILABLE = ["0.9.0", "1.0.0", "1.0.1", "1.1.0", "1.2.0-dev", "2.0.0", "2.1.0-alpha", "10.0.0"]


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        pytest.param("^1.0.0", "1.1.0", id="caret-takes-highest-stable-minor"),
        pytest.param("^1", "1.1.0", id="caret-major-only"),
        pytest.param("^0.9.0", "0.9.0", id="caret-zero-major-pins-minor"),
        pytest.param("~1.0.0", "1.0.1", id="tilde-pins-minor"),
        pytest.param("~1", "1.1.0", id="tilde-major-only"),
        pytest.param(">=1.0.0, <2.0.0", "1.1.0", id="range"),
        pytest.param(">=2", "10.0.0", id="open-range-compares-numerically"),
        pytest.param("*", "10.0.0", id="anything"),
        pytest.param("1.0.1", "1.0.1", id="exact"),
        pytest.param("1.2.0-dev", "1.2.0-dev", id="exact-pre-release"),
        pytest.param("^1.2.0", None, id="ranges-skip-pre-releases"),
        pytest.param("^3.0.0", None, id="nothing-compatible"),
        pytest.param("1.0.2", None, id="exact-missing"),
        pytest.param("!=1.1.0, ^1.0.0", "1.0.1", id="exclusion"),
    ],
)
def test_resolution(constraint: str, expected: str | None) -> None:
    assert resolve_version(constraint, AVAILABLE) == expected


@pytest.mark.parametrize("constraint", ["^x", "~", ">=>1", "latest"])
def test_invalid_constraints_raise(constraint: str) -> None:
    with pytest.raises(ValueError, match="invalid version constraint"):
        resolve_version(constraint, AVAILABLE)


@pytest.mark.parametrize(("name", "valid"), [("1.0.0", True), ("1.1.0-dev", True), ("1.0", False), ("v1.0.0", False), ("01.0.0", False)])
def test_file_names_must_be_semantic_versions(name: str, valid: bool) -> None:
    assert is_version(name) is valid
