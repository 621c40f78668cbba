"""Evaluation datasets (SPEC §15): the items `switchboard eval run` sends through the pipeline, and their
loader and validator.

A dataset is a JSONL file `catalogue/evals/<feature>/<name>.jsonl` (named `<feature>/<name>`), one item a
line:

    {"id": "ec-007", "feature": "explain_code", "input": {"code": "..."}, "resource": "project",
     "reference": "...", "checks": [{"contains": "def "}, {"max_chars": 4000}], "rubric": "...", "cluster": "..."}

`input` holds the feature's input fields (as the job carries them: snake_case), `resource` a key of the seed
document's `resources` (SPEC §11, listed in `SEED_RESOURCES`), and each check is a one-key object whose
key is one of `CHECK_KINDS`. Loading checks every line against the catalogue and raises one `DatasetError`
naming every broken line (`path:line: problem`). `import_records` turns GitLab's and LangSmith's
`{"inputs": ..., "outputs": ...}` lines into items.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict

from catalogue.contents import CATALOGUE_DIR
from catalogue.eval_checks import CHECK_KINDS, Check, parse_check
from catalogue.features import FEATURE_LIST, Feature, InputField
from core.errors import DatasetError

__all__ = [
    "CHECK_KINDS",
    "Check",
    "Dataset",
    "DatasetError",
    "EVALS_DIR",
    "EvalItem",
    "MAX_ITEMS",
    "MAX_LINE_CHARS",
    "SEED_RESOURCES",
    "all_datasets",
    "dataset_path",
    "dataset_problems",
    "import_records",
    "load_dataset",
]

EVALS_DIR = CATALOGUE_DIR / "evals"
MAX_LINE_CHARS = 1_000_000
MAX_ITEMS = 10_000
MAX_CONTEXT_ITEMS = 100  # additional_context entries, as the GraphQL input allows

# The seed document's `resources` (access.admin.seed builds them; a test keeps the two in step): key → type.
SEED_RESOURCES: Mapping[str, str] = MappingProxyType({
    "issue": "Issue",
    "confidential_issue": "Issue",
    "merge_request": "MergeRequest",
    "epic": "Epic",
    "vulnerability": "Vulnerability",
    "project": "Project",
    "issue_stack_trace": "Issue",
    "issue_feature_debate": "Issue",
    "issue_performance_regression": "Issue",
    "issue_flaky_test": "Issue",
    "issue_security_question": "Issue",
    "issue_dependency_upgrade": "Issue",
    "issue_docs_self_hosted": "Issue",
    "issue_memory_leak": "Issue",
    "issue_ux_feedback": "Issue",
    "issue_migration_failure": "Issue",
    "issue_without_comments": "Issue",
    "mr_memory_leak_fix": "MergeRequest",
    "mr_request_metrics": "MergeRequest",
    "mr_partial_indexes": "MergeRequest",
    "mr_chat_copy_button": "MergeRequest",
})

_KEYS = ("id", "feature", "input", "resource", "reference", "checks", "rubric", "cluster")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}\Z")
_CURRENT_FILE = {"file_name": True, "selected_text": True, "content_above_cursor": False, "content_below_cursor": False}


class EvalItem(BaseModel):
    """One case of a dataset: the action's inputs, the seed resource it is about, and how to score it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    feature: str
    input: dict[str, Any]
    resource: str | None = None
    reference: str | None = None
    checks: tuple[Check, ...] = ()
    rubric: str | None = None
    cluster: str | None = None

    def to_line(self) -> str:
        """The item as one dataset line (keys in the documented order, absent ones left out)."""
        data = self.model_dump(exclude_none=True, exclude_defaults=True)
        data["input"] = self.input
        if self.checks:
            data["checks"] = [check.as_json() for check in self.checks]
        return json.dumps({key: data[key] for key in _KEYS if key in data}, ensure_ascii=False)


@dataclass(frozen=True)
class Dataset:
    name: str  # "explain_code/basic" for a shipped dataset, else the file's path
    path: Path
    feature: str
    items: tuple[EvalItem, ...]
    sha256: str  # of the file's bytes: a run records which version of the dataset it used


def dataset_path(ref: str | Path) -> Path:
    """The file of a dataset named `<feature>/<name>` (under catalogue/evals), or `ref` itself when it is
    a path to a file (`.jsonl`, or anything that exists)."""
    path = Path(ref)
    if isinstance(ref, Path) or path.suffix == ".jsonl" or path.is_file():
        return path
    return EVALS_DIR / f"{ref}.jsonl"


def all_datasets(root: Path = EVALS_DIR) -> list[Path]:
    """Every dataset file under `root` (catalogue/evals/**/*.jsonl), sorted."""
    return sorted(root.glob("**/*.jsonl")) if root.is_dir() else []


def load_dataset(ref_or_path: str | Path, *, features: Iterable[Feature] = FEATURE_LIST) -> Dataset:
    """The dataset named or found at `ref_or_path`, every line checked; DatasetError lists each broken one."""
    path = dataset_path(ref_or_path)
    if not path.is_file():
        raise DatasetError([f"{path}: no such dataset (give <feature>/<name> under {EVALS_DIR} or a .jsonl file)"])
    dataset, problems = _read(path, str(path), {feature.key: feature for feature in features})
    if dataset is None:
        raise DatasetError(problems)
    return dataset


def dataset_problems(root: Path, features: Iterable[Feature] = FEATURE_LIST) -> list[str]:
    """Every problem of every dataset under `root` (catalogue validation), named relative to `root`'s parent."""
    by_key: dict[str, Feature] = {}
    for feature in features:
        by_key.setdefault(feature.key, feature)  # a key declared twice is reported by the catalogue's checks
    problems: list[str] = []
    for path in all_datasets(root):
        problems += _read(path, str(path.relative_to(root.parent)), by_key)[1]
    return problems


def _read(path: Path, shown: str, features: Mapping[str, Feature]) -> tuple[Dataset | None, list[str]]:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"{shown}: not UTF-8 text ({exc.reason} at byte {exc.start})"]
    folder = path.parent.name if path.parent.name in features else None
    items: list[EvalItem] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): JSON strings may hold U+2028
        if not line.strip():
            continue
        item, found = _parse_line(line, features)
        if item is not None:
            feature = folder or (items[0].feature if items else item.feature)
            if item.feature != feature:
                where = f"the folder {folder!r}" if folder else f"the dataset's first item ({feature!r})"
                found.append(f"feature {item.feature!r} does not match {where}")
            if item.id in first_line:
                found.append(f"id {item.id!r} is already used on line {first_line[item.id]}")
            first_line.setdefault(item.id, number)
            items.append(item)
        problems += [f"{shown}:{number}: {problem}" for problem in found]
    if not items and not problems:
        problems.append(f"{shown}: the dataset has no items")
    if len(items) > MAX_ITEMS:
        problems.append(f"{shown}: {len(items)} items; a dataset holds at most {MAX_ITEMS}")
    if problems:
        return None, problems
    shipped = path.resolve().is_relative_to(EVALS_DIR)
    name = str(path.resolve().relative_to(EVALS_DIR).with_suffix("")) if shipped else str(path)
    return Dataset(name, path, items[0].feature, tuple(items), hashlib.sha256(data).hexdigest()), []


def _parse_line(line: str, features: Mapping[str, Feature]) -> tuple[EvalItem | None, list[str]]:
    """The item of one line, or None, and the line's problems (an item may come with problems too)."""
    if len(line) > MAX_LINE_CHARS:
        return None, [f"the line has {len(line)} characters; at most {MAX_LINE_CHARS}"]
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, [f"not valid JSON: {exc.msg} (column {exc.colno})"]
    if not isinstance(raw, dict):
        return None, ["an item must be a JSON object"]
    return _parse_item(raw, features)


def _parse_item(raw: dict[str, Any], features: Mapping[str, Feature]) -> tuple[EvalItem | None, list[str]]:
    problems = [f"unknown key {key!r} (an item has {', '.join(_KEYS)})" for key in raw if key not in _KEYS]
    item_id, key = raw.get("id"), raw.get("feature")
    if not isinstance(item_id, str) or not _ID.match(item_id):
        problems.append(f"id must be a string of letters, digits and . _ : - (at most 128), not {item_id!r}")
    feature = features.get(key) if isinstance(key, str) else None
    if feature is None:
        problems.append(f"unknown feature {key!r} (known: {', '.join(features)})")
    inputs = raw.get("input", {})
    if not isinstance(inputs, dict):
        problems.append("input must be a JSON object of the feature's fields")
    elif feature is not None:
        problems += _input_problems(feature, inputs)
    resource = raw.get("resource")
    if feature is not None:
        problems += _resource_problems(feature, resource)
    for name in ("reference", "rubric", "cluster"):
        value = raw.get(name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            problems.append(f"{name} must be a non-empty string")
    checks: list[Check] = []
    raw_checks = raw.get("checks", [])
    if not isinstance(raw_checks, list):
        problems.append('checks must be a list of one-key objects such as {"contains": "def "}')
        raw_checks = []
    for index, spec in enumerate(raw_checks):
        try:
            checks.append(parse_check(spec))
        except ValueError as exc:
            problems.append(f"checks[{index}]: {exc}")
    if feature is None or not isinstance(item_id, str) or not isinstance(inputs, dict) or len(checks) < len(raw_checks):
        return None, problems
    item = EvalItem(
        id=item_id, feature=feature.key, input=inputs, resource=resource if isinstance(resource, str) else None,
        reference=raw.get("reference"), checks=tuple(checks), rubric=raw.get("rubric"), cluster=raw.get("cluster"),
    )
    return item, problems


def _input_problems(feature: Feature, inputs: dict[str, Any]) -> list[str]:
    fields = {field.name: field for field in feature.fields}
    takes = ", ".join(fields) or "no input fields"
    problems = [f"input has unknown field {name!r} ({feature.key} takes {takes})" for name in inputs if name not in fields]
    for field in feature.fields:
        value = inputs.get(field.name)
        if value is None:
            if field.required:
                problems.append(f"input lacks the required field {field.name!r}")
            continue
        problem = _value_problem(field, value)
        if problem:
            problems.append(f"input {field.name!r} {problem}")
    return problems


def _value_problem(field: InputField, value: object) -> str | None:
    match field.kind:
        case "string":
            if not isinstance(value, str):
                return "must be a string"
            if field.required and not value.strip():
                return "is empty"
            return f"has {len(value)} characters; at most {field.max_length}" if len(value) > field.max_length else None
        case "boolean":
            return None if isinstance(value, bool) else "must be true or false"
        case "current_file":
            if not isinstance(value, dict):
                return "must be an object with " + ", ".join(_CURRENT_FILE)
            unknown = [key for key in value if key not in _CURRENT_FILE]
            missing = [key for key, needed in _CURRENT_FILE.items() if needed and not isinstance(value.get(key), str)]
            wrong = [key for key in value if key in _CURRENT_FILE and value[key] is not None and not isinstance(value[key], str)]
            if unknown or missing or wrong:
                return f"must have the strings file_name and selected_text (optional: content_above_cursor, content_below_cursor); unknown {unknown}, missing {missing}, not strings {wrong}"
            return None
        case _:  # additional_context
            if not isinstance(value, list) or len(value) > MAX_CONTEXT_ITEMS:
                return f"must be a list of at most {MAX_CONTEXT_ITEMS} objects"
            for index, entry in enumerate(value):
                fine = isinstance(entry, dict) and all(isinstance(entry.get(key), str) for key in ("category", "id", "content"))
                if not fine or not isinstance(entry.get("metadata", {}), dict | None):
                    return f"[{index}] must be an object with the strings category, id, content (and an object metadata)"
            return None


def _resource_problems(feature: Feature, resource: object) -> list[str]:
    accepted = ", ".join(sorted(feature.resource_types))
    if resource is None:
        return [f"{feature.key} needs a resource (a seed key of type {accepted})"] if feature.resource_required else []
    if not isinstance(resource, str) or resource not in SEED_RESOURCES:
        return [f"unknown resource {resource!r}: not a key of the seed's resources ({', '.join(SEED_RESOURCES)})"]
    if SEED_RESOURCES[resource] not in feature.resource_types:
        return [f"resource {resource!r} is of type {SEED_RESOURCES[resource]}; {feature.key} takes {accepted}"]
    return []


# What GitLab's and LangSmith's datasets call an input, besides its own name (snake_case or camelCase).
_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "content": ("question", "input", "query", "prompt", "message", "text", "user_input"),
    "code": ("selected_text", "snippet", "source_code", "input"),
    "question": ("content", "input", "query", "prompt", "text"),
})
_RESOURCE_KEYS = ("resource", "resource_id")
_OUTPUT_KEYS = ("output", "reference", "answer", "expected_output", "expected")


def import_records(
    lines: Iterable[str], feature: str, *, source: str, resource: str | None = None
) -> list[EvalItem]:
    """Items of `feature` from GitLab / LangSmith JSONL records `{"inputs": {...}, "outputs": {"output": ...}}`
    (`outputs` may also hold `reference`, or be a string): `inputs` keys become the feature's input fields
    (by name or a usual alias: `question` → `content`, `selected_text` → `code`, ...) or its seed `resource`
    (else `resource`, when given), the output becomes the `reference`; ids are `<source>-001`, ...
    DatasetError names every record that does not map (`<source>:line: problem`)."""
    target = {f.key: f for f in FEATURE_LIST}.get(feature)
    if target is None:
        raise DatasetError([f"unknown feature {feature!r} (known: {', '.join(f.key for f in FEATURE_LIST)})"])
    if not _ID.match(f"{source}-1"):
        raise DatasetError([f"source {source!r} must be letters, digits and . _ : - (it prefixes the item ids)"])
    items: list[EvalItem] = []
    problems: list[str] = []
    records = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    width = max(3, len(str(len(records))))
    for index, (number, line) in enumerate(records, start=1):
        raw, found = _record(line, target)
        if raw is not None:
            if resource is not None:
                raw.setdefault("resource", resource)
            item, found = _parse_item({"id": f"{source}-{index:0{width}d}", **raw}, {target.key: target})
            if item is not None and not found:
                items.append(item)
        problems += [f"{source}:{number}: {problem}" for problem in found]
    if not records:
        problems.append(f"{source}: no records to import")
    if problems:
        raise DatasetError(problems)
    return items


def _record(line: str, feature: Feature) -> tuple[dict[str, Any] | None, list[str]]:
    """One record as an item's JSON (without its id), or None and why it does not map."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, [f"not valid JSON: {exc.msg} (column {exc.colno})"]
    if not isinstance(record, dict) or not isinstance(record.get("inputs"), dict):
        return None, ['a record must be a JSON object with an "inputs" object']
    names = {field.name for field in feature.fields}
    lookup = {alias: name for name in names for alias in _ALIASES.get(name, ())}
    lookup |= {name: name for name in names} | {_camel(name): name for name in names}
    lookup |= {key: "resource" for key in _RESOURCE_KEYS} | {_camel(key): "resource" for key in _RESOURCE_KEYS}
    raw: dict[str, Any] = {"feature": feature.key, "input": {}}
    problems: list[str] = []
    for key, value in record["inputs"].items():
        target = lookup.get(key)
        if value is None:
            continue
        if target is None:
            fields = ", ".join(sorted(names)) or "none"
            problems.append(f"inputs key {key!r} maps to nothing of {feature.key} (its fields: {fields}; or a seed resource)")
        elif target in raw["input"] or (target == "resource" and "resource" in raw):
            problems.append(f"inputs key {key!r} maps to {target!r}, which another key already gave")
        elif target == "resource":
            raw["resource"] = value
        else:
            raw["input"][target] = value
    reference, problem = _reference(record.get("outputs"))
    if problem:
        problems.append(problem)
    elif reference:
        raw["reference"] = reference
    return (None, problems) if problems else (raw, [])


def _reference(outputs: object) -> tuple[str | None, str | None]:
    """The expected answer of a record's `outputs`, or the problem with it."""
    if outputs is None or isinstance(outputs, str):
        return outputs or None, None
    if isinstance(outputs, dict):
        for key in _OUTPUT_KEYS:
            if isinstance(outputs.get(key), str):
                return outputs[key] or None, None
        texts = [value for value in outputs.values() if isinstance(value, str)]
        if len(texts) == 1 and len(outputs) == 1:
            return texts[0] or None, None
    return None, f"outputs must be a string or an object with {' or '.join(repr(k) for k in _OUTPUT_KEYS[:2])}"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
