"""What each Duo add-on bundles: the unit primitives a seat of it unlocks.

From GitLab's Cloud Connector access data (`ee/config/cloud_connector/access_data.yml`): Duo Pro has code
suggestions and the basic chat primitives; Duo Enterprise has all of those plus the resource-aware chat
primitives and every other AI feature's primitive. A feature is available to a user iff a seat they hold
bundles the feature's `unit_primitive` (SPEC §6).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from catalogue.features import Feature

__all__ = ["ADD_ONS", "Requirement", "add_ons_bundling", "bundles", "requirement", "unit_primitives"]

@dataclass(frozen=True, slots=True)
class Requirement:
    """What a feature needs, as the catalogue declares it."""

    add_ons: frozenset[str]
    maturity: Literal["ga", "beta", "experimental"] = "ga"
    self_managed: bool = True



_CODE_SUGGESTIONS = frozenset({"complete_code", "generate_code"})
_DUO_PRO_CHAT = frozenset({
    "documentation_search", "duo_chat", "explain_code", "fix_code", "include_file_context",
    "include_snippet_context", "refactor_code", "write_tests",
})
_DUO_ENTERPRISE_CHAT = frozenset({
    "ask_build", "ask_commit", "ask_epic", "ask_issue", "ask_merge_request", "include_dependency_context",
    "include_issue_context", "include_local_git_context", "include_merge_request_context",
})
_DUO_ENTERPRISE_ONLY = frozenset({
    "categorize_duo_chat_question", "explain_vulnerability", "generate_commit_message", "generate_cube_query",
    "generate_issue_description", "glab_ask_git_command", "resolve_vulnerability",
    "review_merge_request", "semantic_search_issue", "summarize_comments", "summarize_issue_discussions",
    "summarize_merge_request", "summarize_review", "troubleshoot_job",
})

_DUO_PRO = _CODE_SUGGESTIONS | _DUO_PRO_CHAT

ADD_ONS: MappingProxyType[str, frozenset[str]] = MappingProxyType({
    "duo_pro": _DUO_PRO,
    "duo_enterprise": _DUO_PRO | _DUO_ENTERPRISE_CHAT | _DUO_ENTERPRISE_ONLY,
})


def bundles(add_on: str, unit_primitive: str) -> bool:
    """Whether a seat of `add_on` unlocks `unit_primitive` (False for an unknown add-on)."""
    return unit_primitive in ADD_ONS.get(add_on, frozenset())


def add_ons_bundling(unit_primitive: str) -> tuple[str, ...]:
    """The add-ons whose seats unlock `unit_primitive`, cheapest first."""
    return tuple(name for name, primitives in ADD_ONS.items() if unit_primitive in primitives)


def unit_primitives(add_ons: Iterable[str]) -> frozenset[str]:
    """Everything the given add-ons unlock together."""
    found: frozenset[str] = frozenset()
    for name in add_ons:
        found |= ADD_ONS.get(name, frozenset())
    return found


def requirement(feature: Feature) -> Requirement:
    """What `access.entitlement` needs to know of a feature."""
    return Requirement(frozenset(add_ons_bundling(feature.unit_primitive)), feature.maturity, feature.self_managed)
