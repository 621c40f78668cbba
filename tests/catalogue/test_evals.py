"""Evaluation datasets (SPEC §15): the shipped ones, the loader's checks of every line, GitLab/LangSmith
imports, and `catalogue.validate` reporting broken datasets."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import catalogue
from catalogue import CATALOGUE_DIR, FEATURES
from catalogue.eval_checks import CHECK_KINDS, Check, parse_check
from catalogue.evals import (
    EVALS_DIR,
    MAX_LINE_CHARS,
    SEED_RESOURCES,
    DatasetError,
    EvalItem,
    all_datasets,
    dataset_path,
    import_records,
    load_dataset,
)
from core.errors import CatalogueError

DATA = Path(__file__).parent / "data"
SHIPPED = ["chat/basic", "explain_code/basic", "summarize_comments/basic"]


def write_lines(path: Path, *items: dict[str, Any] | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items))
    return path


def item(**fields: Any) -> dict[str, Any]:
    return {"id": "ec-1", "feature": "explain_code", "input": {"code": "x = 1"}, "resource": "project", **fields}


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_datasets_load_with_at_least_30_scorable_items(name: str) -> None:
    dataset = load_dataset(name)
    feature = FEATURES[name.split("/")[0]]
    assert dataset.name == name and dataset.feature == feature.key and dataset.path == EVALS_DIR / f"{name}.jsonl"
    assert dataset.sha256 == hashlib.sha256(dataset.path.read_bytes()).hexdigest()
    assert len(dataset.items) >= 30
    assert len({item.id for item in dataset.items}) == len(dataset.items)
    fields = {field.name for field in feature.fields}
    required = {field.name for field in feature.fields if field.required}
    for entry in dataset.items:
        assert required <= set(entry.input) <= fields, entry.id
        assert entry.reference or entry.rubric, entry.id
        assert Check(kind="error", value=False) in entry.checks, entry.id  # what the mock model passes too
        assert (entry.resource is not None) or not feature.resource_required, entry.id
    assert {Path(path) for path in all_datasets()} >= {EVALS_DIR / f"{name}.jsonl" for name in SHIPPED}


def test_a_dataset_loads_from_a_path_with_every_check_kind(tmp_path: Path) -> None:
    checks = [{"equals": "x"}, {"contains": "def "}, {"not_contains": "I don't know"}, {"regex": r"(?i)\bassign"},
              {"json_schema": {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}}}},
              {"max_chars": 4000}, {"code_block": "python"}, {"refusal": False}, {"error": False}]
    path = write_lines(tmp_path / "anything" / "mine.jsonl",
                       item(checks=checks, reference="Assigns 1 to x.", rubric="says it assigns", cluster="c1"),
                       "",
                       item(id="ec-2", resource="mr_partial_indexes"))
    dataset = load_dataset(path)
    assert dataset.name == str(path) and dataset.feature == "explain_code" and len(dataset.items) == 2
    first = dataset.items[0]
    assert [check.kind for check in first.checks] == list(CHECK_KINDS)
    assert (first.reference, first.rubric, first.cluster, first.resource) == ("Assigns 1 to x.", "says it assigns", "c1", "project")
    assert json.loads(first.to_line()) == json.loads(path.read_text().splitlines()[0])
    assert load_dataset(str(path)).items == dataset.items
    separated = write_lines(tmp_path / "explain_code" / "separator.jsonl", item(reference="one\u2028two", id="ec-3"))
    separated.write_text(separated.read_text().replace("\\u2028", "\u2028") + "\r\n")
    assert load_dataset(separated).items[0].reference == "one\u2028two"


def test_dataset_path_names_a_shipped_dataset_or_a_file(tmp_path: Path) -> None:
    assert dataset_path("explain_code/basic") == EVALS_DIR / "explain_code" / "basic.jsonl"
    relative = Path(os.path.relpath(EVALS_DIR / "chat" / "basic.jsonl"))
    assert load_dataset(relative).name == "chat/basic"
    assert dataset_path(str(tmp_path / "x.jsonl")) == tmp_path / "x.jsonl"
    with pytest.raises(DatasetError, match="no such dataset"):
        load_dataset("explain_code/missing")


def test_every_broken_line_is_reported_at_once_with_its_file_and_line(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "explain_code" / "broken.jsonl",
        item(),                                                             # 1 fine
        "{not json",                                                        # 2
        item(id="ec-3", feature="make_coffee"),                             # 3
        item(id="ec-4", input={"code": "x", "language": "python"}),         # 4
        item(id="ec-5", input={}),                                          # 5
        item(id="ec-6", resource="staging_server"),                         # 6
        item(id="ec-7", resource="epic"),                                   # 7
        item(),                                                             # 8 duplicate id
        item(id="ec-9", checks=[{"regex": "(unclosed"}, {"max_chars": 0}]),  # 9
        item(id="ec-10", checks=[{"smells_good": True}, {"a": 1, "b": 2}]),  # 10
        {"id": "ec-11", "feature": "chat", "input": {"content": "hi"}},     # 11 not the folder's feature
        item(id="ec-12", resource=None),                                    # 12 explain_code needs one
        item(id="ec 13", colour="blue"),                                    # 13
        "[1, 2]",                                                           # 14
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    problems = caught.value.problems
    expected = {
        2: "not valid JSON",
        3: "unknown feature 'make_coffee'",
        4: "input has unknown field 'language' (explain_code takes code)",
        5: "input lacks the required field 'code'",
        6: "unknown resource 'staging_server'",
        7: "resource 'epic' is of type Epic; explain_code takes Issue, MergeRequest, Project",
        8: "id 'ec-1' is already used on line 1",
        9: "checks[0]: regex '(unclosed' does not compile",
        10: "checks[0]: unknown check 'smells_good'",
        11: "feature 'chat' does not match the folder 'explain_code'",
        12: "explain_code needs a resource",
        13: "unknown key 'colour'",
        14: "an item must be a JSON object",
    }
    for line, text in expected.items():
        assert any(p.startswith(f"{path}:{line}: ") and text in p for p in problems), (line, problems)
    assert not any(p.startswith(f"{path}:1: ") for p in problems)
    assert any(p.startswith(f"{path}:9: checks[1]: max_chars") for p in problems)
    assert any(p.startswith(f"{path}:10: checks[1]: a check is a one-key object") for p in problems)
    assert any(p.startswith(f"{path}:13: id must be") for p in problems)
    assert str(caught.value) == "\n".join(problems)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        pytest.param({"contains": ""}, "contains takes a non-empty string", id="empty-contains"),
        pytest.param({"equals": 3}, "equals takes a string", id="equals-number"),
        pytest.param({"max_chars": True}, "max_chars takes a positive integer", id="max-chars-bool"),
        pytest.param({"code_block": "no spaces please"}, "code_block takes true", id="code-block-language"),
        pytest.param({"refusal": "no"}, "refusal takes true or false", id="refusal-string"),
        pytest.param({"json_schema": {"type": "thing"}}, "unknown type 'thing'", id="schema-type"),
        pytest.param({"json_schema": {"properties": {"a": 1}}}, "json_schema.properties.a must be", id="schema-property"),
        pytest.param({"json_schema": {"required": "a"}}, "json_schema.required must be a list", id="schema-required"),
        pytest.param(["contains", "x"], "a check is a one-key object", id="not-an-object"),
    ],
)
def test_a_broken_check_says_what_is_wrong(spec: object, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_check(spec)


def test_size_limits_and_empty_datasets_are_reported(tmp_path: Path) -> None:
    huge = item(input={"code": "x" * MAX_LINE_CHARS})
    path = write_lines(tmp_path / "explain_code" / "big.jsonl", huge, item(id="ec-2", input={"code": " "}))
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert caught.value.problems == [
        f"{path}:1: the line has {len(json.dumps(huge))} characters; at most {MAX_LINE_CHARS}",
        f"{path}:2: input 'code' is empty",
    ]
    empty = write_lines(tmp_path / "chat" / "empty.jsonl", "", "  ")
    with pytest.raises(DatasetError, match="the dataset has no items"):
        load_dataset(empty)
    (tmp_path / "latin1.jsonl").write_bytes(b'{"id": "\xe9"}\n')
    with pytest.raises(DatasetError, match="not UTF-8 text"):
        load_dataset(tmp_path / "latin1.jsonl")


def test_input_fields_are_checked_by_kind(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "chat" / "kinds.jsonl",
        {"id": "c1", "feature": "chat", "input": {"content": "hi", "current_file": {"file_name": "a.py", "selected_text": "x"},
                                                  "additional_context": [{"category": "snippet", "id": "s", "content": "y"}]}},
        {"id": "c2", "feature": "chat", "input": {"content": 3, "current_file": {"file_name": "a.py"}}},
        {"id": "c3", "feature": "chat", "input": {"content": "hi", "additional_context": [{"id": "s"}]}},
    )
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    text = str(caught.value)
    assert f"{path}:2: input 'content' must be a string" in text
    assert f"{path}:2: input 'current_file' must have the strings file_name and selected_text" in text
    assert f"{path}:3: input 'additional_context' [0] must be an object with the strings category, id, content" in text
    assert f"{path}:1:" not in text


def test_a_langsmith_export_imports_as_items_of_the_feature() -> None:
    lines = (DATA / "langsmith_chat.jsonl").read_text().splitlines()
    items = import_records(lines, "chat", source="langsmith")
    assert [entry.id for entry in items] == ["langsmith-001", "langsmith-002", "langsmith-003", "langsmith-004"]
    assert items[0] == EvalItem(id="langsmith-001", feature="chat", input={"content": "How do I run a CI job only for tags?"},
                                reference="Use `rules: - if: $CI_COMMIT_TAG`.")
    assert (items[1].input, items[1].resource, items[1].reference) == (
        {"content": "What is a merge train?"}, "project",
        "A queue of merge requests whose pipelines run on the combined result.",
    )
    assert items[2].resource == "issue_flaky_test" and items[2].reference and items[2].reference.startswith("The reconnect")
    assert items[3].input == {"content": "Explain git rebase.", "current_file": {"file_name": "README.md", "selected_text": "git rebase main"}}
    assert items[3].reference is None
    # what the importer writes back is a dataset the loader accepts
    assert [entry.to_line() for entry in items] == [EvalItem.model_validate(entry.model_dump()).to_line() for entry in items]


def test_an_import_reports_every_record_that_does_not_map(tmp_path: Path) -> None:
    lines = (DATA / "langsmith_broken.jsonl").read_text().splitlines()
    with pytest.raises(DatasetError) as caught:
        import_records(lines, "explain_code", source="gitlab", resource="project")
    problems = caught.value.problems
    assert problems == [
        "gitlab:2: inputs key 'language' maps to nothing of explain_code (its fields: code; or a seed resource)",
        'gitlab:3: a record must be a JSON object with an "inputs" object',
        "gitlab:4: inputs key 'snippet' maps to 'code', which another key already gave",
        "gitlab:5: outputs must be a string or an object with 'output' or 'reference'",
        "gitlab:6: resource 'epic' is of type Epic; explain_code takes Issue, MergeRequest, Project",
        "gitlab:7: not valid JSON: Expecting value (column 1)",
    ]
    good = import_records(lines[:1], "explain_code", source="gitlab", resource="project")
    assert good[0].input == {"code": "print('hi')"} and good[0].resource == "project"
    with pytest.raises(DatasetError, match="explain_code needs a resource"):
        import_records(lines[:1], "explain_code", source="gitlab")
    with pytest.raises(DatasetError, match="unknown feature 'nope'"):
        import_records(lines, "nope", source="gitlab")
    with pytest.raises(DatasetError, match="no records"):
        import_records([], "chat", source="gitlab")


def test_seed_resources_name_only_types_some_feature_accepts() -> None:
    accepted = set().union(*(feature.resource_types for feature in FEATURES.values()))
    assert set(SEED_RESOURCES.values()) <= accepted


@pytest.fixture
def catalogue_copy(tmp_path: Path) -> Path:
    root = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root


def test_catalogue_validation_reports_broken_datasets_with_the_others(catalogue_copy: Path) -> None:
    shipped = catalogue_copy / "evals" / "chat" / "basic.jsonl"
    count = len(shipped.read_text().splitlines())
    with shipped.open("a") as out:
        out.write(json.dumps({"id": "chat-001", "feature": "chat", "input": {"question": "?"}}) + "\n")
    write_lines(catalogue_copy / "evals" / "summarize_comments" / "extra.jsonl",
                {"id": "s1", "feature": "summarize_comments", "resource": "vulnerability"})
    (catalogue_copy / "prompts" / "chat" / "base" / "9.0.0.yml").write_text("name: x\nprompt_template:\n  user: '{% if %}'\n")
    with pytest.raises(CatalogueError) as caught:
        catalogue.validate(root=catalogue_copy)
    line = f"evals/chat/basic.jsonl:{count + 1}"
    assert [p for p in caught.value.problems if p.startswith("evals/")] == [
        f"{line}: input has unknown field 'question' (chat takes content, current_file, additional_context)",
        f"{line}: input lacks the required field 'content'",
        f"{line}: id 'chat-001' is already used on line 1",
        "evals/summarize_comments/extra.jsonl:1: resource 'vulnerability' is of type Vulnerability; summarize_comments takes Epic, Issue, MergeRequest",
    ]
    assert any(p.startswith("prompts/chat/base/9.0.0.yml") for p in caught.value.problems)
    with pytest.raises(CatalogueError) as without:
        catalogue.validate(root=catalogue_copy, datasets=False)  # what servers load: datasets are not theirs
    assert not any(p.startswith("evals/") for p in without.value.problems)


def test_the_shipped_catalogue_validates_its_datasets(catalogue_copy: Path) -> None:
    assert catalogue.validate(root=catalogue_copy) is not None
    shutil.rmtree(catalogue_copy / "evals")
    assert catalogue.validate(root=catalogue_copy) is not None  # no datasets is no problem
