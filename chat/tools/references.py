"""How the model names an item for a reader tool (SPEC §13.3), parsed without touching the database.

Accepted, for a reader of `expected` type:
- `current`: the resource the user is on;
- a bare number: an iid in the current project (or group, for epics); a vulnerability's ID;
- `#12` (issue), `!3` (merge request), `&4` (epic): relative to the current project or group;
- `group/project#12`, `group/sub/project!3`, `group&4`: GitLab's full references;
- URLs, with or without scheme and host: `https://host/group/project/-/issues/12` (also `/-/work_items/12`),
  `…/-/merge_requests/3` (trailing `/diffs`, a query or a fragment are ignored), `https://host/groups/group/-/epics/4`
  (and `…/group/-/epics/4`), `…/group/project/-/security/vulnerabilities/5`.

A reference to another type of item than the reader's, or anything else, is a `BadReference` whose text tells
the model what to send instead (it names nothing from the database).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from core.ids import MAX_ID

__all__ = ["MAX_REFERENCE_CHARS", "NOUNS", "with_article", "BadReference", "ItemType", "Reference", "page_type", "parse_reference"]

ItemType = Literal["Issue", "MergeRequest", "Epic", "Vulnerability"]
NOUNS: dict[str, str] = {
    "Issue": "issue",
    "MergeRequest": "merge request",
    "Epic": "epic",
    "Vulnerability": "vulnerability",
}
_SIGILS: dict[str, ItemType] = {"#": "Issue", "!": "MergeRequest", "&": "Epic"}
_EXAMPLES: dict[str, str] = {
    "Issue": "'current', '#12', 'group/project#12' or an issue URL",
    "MergeRequest": "'current', '!3', 'group/project!3' or a merge request URL",
    "Epic": "'current', '&4', 'group&4' or an epic URL",
    "Vulnerability": "'current', the vulnerability's numeric ID or its URL",
}
MAX_REFERENCE_CHARS = 2_000

_SEGMENT = r"[A-Za-z0-9_][A-Za-z0-9_.\-]*"
_PATH = rf"{_SEGMENT}(?:/{_SEGMENT})*"
_NUMBER = r"[0-9]{1,30}"
_SHORT = re.compile(rf"(?P<path>{_PATH})?(?P<sigil>[#!&])(?P<number>{_NUMBER})")
_URL = re.compile(
    rf"(?:(?:https?://)?[^/\s?#]+)?/(?P<groups>groups/)?(?P<path>{_PATH})/-/"
    rf"(?P<kind>issues|work_items|merge_requests|epics|security/vulnerabilities)/(?P<number>{_NUMBER})"
    r"(?:/[^\s?#]*)?(?:[?#]\S*)?",
    re.IGNORECASE,
)
_QUOTES = " \t\r\n`'\"<>"


class BadReference(ValueError):
    """The reference cannot name an item of the reader's type; the text says what to send instead."""


@dataclass(frozen=True, slots=True)
class Reference:
    """An item as the model named it: `number` is an iid (a vulnerability's ID), None for the current
    resource; `namespace` is the project's full path (the group's, for epics), None when relative to
    where the user is."""

    type: ItemType
    number: int | None = None
    namespace: str | None = None

    @property
    def current(self) -> bool:
        return self.number is None


def parse_reference(text: str, expected: ItemType) -> Reference:
    """The item of type `expected` that `text` names; BadReference otherwise."""
    value = text.strip(_QUOTES)
    noun = NOUNS[expected]
    if not value or len(value) > MAX_REFERENCE_CHARS:
        raise BadReference(f"Give the {noun} as {_EXAMPLES[expected]}.")
    if value.lower() == "current":
        return Reference(expected)
    if value.isascii() and value.isdigit():
        return Reference(expected, _number(value, expected))
    if match := _SHORT.fullmatch(value):
        return _short(match, value, expected)
    if match := _URL.fullmatch(value):
        return _url(match, value, expected)
    raise BadReference(f"{_shown(value)} is not a reference this tool understands: give the {noun} as {_EXAMPLES[expected]}.")


def page_type(url: str) -> ItemType | None:
    """The kind of item a page's URL shows (an issue, a merge request, …); None for any other page."""
    match = _URL.fullmatch(url.strip(_QUOTES)[:MAX_REFERENCE_CHARS])
    if match is None:
        return None
    kind = match["kind"].lower()
    if kind == "epics" or (kind == "work_items" and match["groups"] is not None):
        return "Epic"
    return {"merge_requests": "MergeRequest", "security/vulnerabilities": "Vulnerability"}.get(kind, "Issue")  # type: ignore[return-value]


def _short(match: re.Match[str], value: str, expected: ItemType) -> Reference:
    found = _SIGILS[match["sigil"]]
    _require(found, value, expected)
    path = match["path"]
    if path is not None and found != "Epic" and "/" not in path:
        raise BadReference(f"{_shown(value)} lacks the project: write it as group/project{match['sigil']}{match['number']}.")
    return Reference(found, _number(match["number"], expected), path)


def _url(match: re.Match[str], value: str, expected: ItemType) -> Reference:
    in_group = match["groups"] is not None
    found = page_type(match[0]) or "Issue"
    _require(found, value, expected)
    path = match["path"]
    if found != "Epic" and (in_group or "/" not in path):
        raise BadReference(f"{_shown(value)} is not the URL of a project's {NOUNS[found]}.")
    return Reference(found, _number(match["number"], expected), path)


def _require(found: ItemType, value: str, expected: ItemType) -> None:
    if found != expected:
        raise BadReference(
            f"{_shown(value)} refers to {with_article(NOUNS[found])}, not {with_article(NOUNS[expected])}: "
            f"use the {NOUNS[found]} reader for it, or give the {NOUNS[expected]} as {_EXAMPLES[expected]}."
        )


def _number(digits: str, expected: ItemType) -> int:
    number = int(digits)
    if not 0 < number <= MAX_ID:
        raise BadReference(f"{digits} is not a valid {NOUNS[expected]} number.")
    return number


def with_article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _shown(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:77] + "...")
