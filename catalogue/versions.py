"""Prompt versions: semantic versions and Poetry-style constraints, as the AI gateway resolves them.

- a bare version (`1.0.0`, `1.1.0-dev`) matches that file exactly, pre-releases included;
- `^1.2.3` means `>=1.2.3,<2.0.0` (`^0.2.3`: `<0.3.0`), `~1.2.3` means `>=1.2.3,<1.3.0`, `*` anything;
- comparisons (`>=1.0.0, <2`, `==1.2.0`, `!=1.0.1`) combine with commas;
- every range (everything but an exact version) considers stable versions only, so a `-dev` file is
  served on an exact request alone. The highest compatible version wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

__all__ = ["DEFAULT_CONSTRAINT", "is_version", "parse_constraint", "resolve_version"]

DEFAULT_CONSTRAINT = "^1.0.0"

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$")
_PARTIAL = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


def is_version(text: str) -> bool:
    """True for a semantic version a prompt file may be named after (`1.0.0`, `2.1.0-dev`)."""
    if _SEMVER.match(text) is None:
        return False
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def _parts(text: str, constraint: str) -> tuple[int, int, int, int]:
    match = _PARTIAL.match(text.strip())
    if match is None:
        raise ValueError(f"invalid version constraint {constraint!r}")
    given = sum(group is not None for group in match.groups())
    major, minor, patch = (int(group or 0) for group in match.groups())
    return major, minor, patch, given


def _caret(text: str, constraint: str) -> str:
    major, minor, patch, given = _parts(text, constraint)
    if major > 0 or given == 1:
        upper = f"{major + 1}.0.0"
    elif minor > 0 or given == 2:
        upper = f"0.{minor + 1}.0"
    else:
        upper = f"0.0.{patch + 1}"
    return f">={major}.{minor}.{patch},<{upper}"


def _tilde(text: str, constraint: str) -> str:
    major, minor, patch, given = _parts(text, constraint)
    upper = f"{major + 1}.0.0" if given == 1 else f"{major}.{minor + 1}.0"
    return f">={major}.{minor}.{patch},<{upper}"


def parse_constraint(constraint: str) -> SpecifierSet | str:
    """A SpecifierSet for a range, or the version itself for an exact request; ValueError if invalid."""
    text = constraint.strip()
    if is_version(text):
        return text
    if text == "*":
        return SpecifierSet()
    specifiers = []
    for part in (piece.strip() for piece in text.split(",")):
        if part.startswith("^"):
            specifiers.append(_caret(part[1:], constraint))
        elif part.startswith("~") and not part.startswith("~="):
            specifiers.append(_tilde(part[1:], constraint))
        else:
            specifiers.append(part.replace(" ", ""))
    try:
        return SpecifierSet(",".join(specifiers))
    except InvalidSpecifier:
        raise ValueError(f"invalid version constraint {constraint!r}") from None


def resolve_version(constraint: str, available: Iterable[str]) -> str | None:
    """The highest of `available` satisfying `constraint`; None when none does. ValueError if invalid."""
    parsed = parse_constraint(constraint)
    versions = [version for version in available if is_version(version)]
    if isinstance(parsed, str):
        return parsed if parsed in versions else None
    stable = [version for version in versions if not Version(version).is_prerelease]
    matching = [version for version in stable if parsed.contains(Version(version), prereleases=False)]
    return max(matching, key=Version, default=None)
