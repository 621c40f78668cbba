from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import catalogue
from catalogue import CATALOGUE_DIR, Feature, InputField
from core.errors import CatalogueError, FeatureNotFound


def test_the_shipped_catalogue_is_valid() -> None:
    shipped = catalogue.validate()
    assert shipped is not None and "mock" in shipped.models


def test_every_external_feature_of_the_spec_is_served_and_categorize_question_is_internal() -> None:
    names = {feature.graphql_name for feature in catalogue.external_features()}
    assert names >= {
        "chat", "explainCode", "summarizeComments", "generateDescription", "generateCommitMessage",
        "summarizeNewMergeRequest", "summarizeReview", "explainVulnerability", "resolveVulnerability",
    }
    assert catalogue.get_feature("categorize_question").internal


def test_unknown_feature() -> None:
    with pytest.raises(FeatureNotFound):
        catalogue.get_feature("make_coffee")


def test_models_and_feature_settings_load_into_strict_models() -> None:
    shipped = catalogue.get_catalogue()
    assert {model.provider for model in shipped.models.values()} == {"anthropic", "vertex", "google", "openai_compatible", "mock"}
    chat = shipped.feature_settings["duo_chat"]
    assert chat.default_model in chat.selectable_models and "duo_chat" in chat.unit_primitives
    assert shipped.models_of(catalogue.get_feature("chat"))[0] == chat.default_model


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of the shipped catalogue with one of each kind of broken reference."""
    root = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    models = (root / "models.yml").read_text()
    write(root, "models.yml", models + """
  - {identifier: mock, name: Again, provider: mock, provider_model: m, family: [mock], max_context_tokens: 1}
  - {identifier: odd, name: Odd, provider: bedrock, provider_model: m, family: [x], max_context_tokens: 1}
""")
    settings = (root / "feature_settings.yml").read_text()
    write(root, "feature_settings.yml", settings + """
  - feature_setting: extra
    title: Extra
    default_model: gpt_9
    selectable_models: [mock]
    migrations: [{flag: try_it, model: nowhere}]
""")
    write(root, "prompts/explain_code/base/1.1.0.yml", "name: x\nprompt_template:\n  user: '{{ code }} {{ secret }}'\n")
    write(root, "prompts/explain_code/claude/1.0.0.yml", "name: x\nprompt_template:\n  user: '{{ code.upper() }}'\n")
    write(root, "prompts/summarize_comments/base/1.0.1.yml", "name: x\nprompt_template:\n  user: '{% if %}'\n")
    write(root, "prompts/summarize_comments/base/latest.yml", "name: x\nprompt_template: {user: hi}\n")
    write(root, "prompts/chat/llama/1.0.0.yml", "name: x\nprompt_template: {user: '{{ content }}'}\n")
    write(root, "prompts/chat/base/1.0.1.yml", "name: x\nmodel: {params: {temprature: 1}}\nprompt_template: {user: hi}\n")
    return root


def test_validate_reports_every_broken_reference_at_once(broken: Path) -> None:
    base = dict(title="t", description="d", unit_primitive="u", feature_setting="duo_chat")
    features = (
        *catalogue.FEATURES.values(),
        Feature(key="chat", prompt="chat", **base),
        Feature(key="b", prompt="nowhere", fields=(InputField(name="x"), InputField(name="x")), user_text_field="y", **base),
        Feature(key="c", prompt="chat", fallback_model="claude_haiku_4_5_20251001", **{**base, "feature_setting": "missing"}),
        Feature(key="d", prompt="chat", fallback_model="claude_haiku_4_5_20251001", **base),
        Feature(key="e", prompt="chat", prompt_version="^7.0.0", **base),
    )
    with pytest.raises(CatalogueError) as caught:
        catalogue.validate(features, broken)
    problems = caught.value.problems
    expected = [
        "models.yml: model 'mock' is declared twice",
        "Input tag 'bedrock' found using 'provider'",
        "feature setting 'extra': default model 'gpt_9' is not in models.yml",
        "feature setting 'extra': migration 'try_it' model 'nowhere' is not in models.yml",
        "feature setting 'extra': default model 'gpt_9' is not one of its selectable models",
        "prompts/explain_code/claude/1.0.0.yml: user template, line 1: calls are not allowed",
        "prompts/summarize_comments/base/1.0.1.yml: user template, line 1:",
        "prompts/summarize_comments/base/latest.yml: 'latest' is not a semantic version",
        "prompts/chat/llama: 'llama' is neither 'base' nor a model family",
        "prompts/chat/base/1.0.1.yml: model.params.temprature: Extra inputs are not permitted",
        "feature 'chat' is declared twice",
        "feature 'b' declares a field twice",
        "feature 'b': user_text_field 'y' is not one of its fields",
        "feature 'b': prompt 'nowhere' has no definition under prompts/",
        "feature 'c': feature setting 'missing' is not in feature_settings.yml",
        "feature 'd': fallback model 'claude_haiku_4_5_20251001' uses the default model's provider 'anthropic'",
        "feature 'e': model 'claude_sonnet_4_6': prompt 'chat' has no version matching '^7.0.0'",
        "feature 'explain_code': prompts/explain_code/base/1.1.0.yml uses variables it is not given: secret",
    ]
    missing = [line for line in expected if not any(line in problem for problem in problems)]
    assert missing == [], problems


def test_the_command_line_validator_prints_every_problem(broken: Path) -> None:
    with pytest.raises(CatalogueError) as caught:
        catalogue.validate(root=broken)
    text = str(caught.value)
    assert text.startswith("catalogue is invalid:\n- ") and text.count("\n- ") == len(caught.value.problems)
