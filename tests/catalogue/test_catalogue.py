from __future__ import annotations

import pytest

import catalogue
from catalogue import Feature, InputField
from core.errors import CatalogueError, FeatureNotFound


def test_the_shipped_catalogue_is_valid() -> None:
    catalogue.validate()


def test_the_spine_features_are_external() -> None:
    names = [feature.graphql_name for feature in catalogue.external_features()]
    assert {"chat", "explainCode", "summarizeComments"} <= set(names)


def test_unknown_feature() -> None:
    with pytest.raises(FeatureNotFound):
        catalogue.get_feature("make_coffee")


def test_validate_reports_every_problem_at_once() -> None:
    base = dict(title="t", description="d", unit_primitive="u", prompt="p", feature_setting="s")
    broken = (
        Feature(key="a", **base),
        Feature(key="a", **base),
        Feature(key="b", fields=(InputField(name="x"), InputField(name="x")), user_text_field="y", **base),
    )
    with pytest.raises(CatalogueError) as caught:
        catalogue.validate(broken)
    assert len(caught.value.problems) == 3
    assert any("declared twice" in p for p in caught.value.problems)
    assert any("user_text_field 'y'" in p for p in caught.value.problems)
