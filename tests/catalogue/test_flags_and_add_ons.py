"""Flag definitions and add-on bundles agree with the features of the catalogue."""

from __future__ import annotations

import pytest

from catalogue import FEATURES, Feature, external_features
from catalogue.add_ons import (
    ADD_ONS,
    add_ons_bundling,
    bundles,
    requirement,
    unit_primitives,
)
from catalogue.flags import (
    FLAGS,
    GLOBAL_SWITCH,
    PUSHED_FLAGS,
    default_enabled,
    required_flags,
)


def _feature(**overrides: object) -> Feature:
    values = {"key": "probe", "title": "t", "description": "d", "unit_primitive": "duo_chat", "prompt": "chat",
              "feature_setting": "duo_chat", **overrides}
    return Feature(**values)  # type: ignore[arg-type]


def test_every_flag_a_feature_names_is_defined() -> None:
    assert {f.flag for f in FEATURES.values() if f.flag} <= set(FLAGS)


def test_every_external_feature_is_bundled_by_duo_enterprise() -> None:
    missing = [f.key for f in external_features() if not bundles("duo_enterprise", f.unit_primitive)]
    assert missing == []


@pytest.mark.parametrize(("key", "add_ons"), [
    ("chat", ("duo_pro", "duo_enterprise")),
    ("explain_code", ("duo_pro", "duo_enterprise")),
    ("summarize_comments", ("duo_enterprise",)),
])
def test_duo_pro_has_chat_and_code_explanation_duo_enterprise_everything(key: str, add_ons: tuple[str, ...]) -> None:
    assert add_ons_bundling(FEATURES[key].unit_primitive) == add_ons
    assert requirement(FEATURES[key]).add_ons == frozenset(add_ons)


def test_duo_enterprise_bundles_all_of_duo_pro() -> None:
    assert ADD_ONS["duo_pro"] < ADD_ONS["duo_enterprise"]
    assert unit_primitives(["duo_pro", "unknown"]) == ADD_ONS["duo_pro"]


def test_chat_needs_its_own_switch_and_every_other_feature_the_global_one() -> None:
    assert required_flags(FEATURES["chat"]) == ("ai_duo_chat_switch",)
    assert required_flags(FEATURES["explain_code"]) == (GLOBAL_SWITCH,)
    assert required_flags(_feature(flag="summarize_notes_v2")) == (GLOBAL_SWITCH, "summarize_notes_v2")


def test_defaults_come_from_the_definitions() -> None:
    assert default_enabled("ai_global_switch") and default_enabled("ai_duo_chat_switch")
    assert not default_enabled("expanded_ai_logging") and not default_enabled("never_defined")
    assert "expanded_ai_logging" in PUSHED_FLAGS and "ai_global_switch" not in PUSHED_FLAGS
