"""Prompt definitions: `prompts/<prompt_id>/<family|base>/<semver>.yml`, rendered in the Jinja sandbox.

A definition holds the templates of its messages by role (a list makes several messages of that role),
model parameters that override the model's, and call parameters (timeout, stop sequences). Lookup tries the
model's families in order, then `base`, and takes the highest version satisfying the constraint (see
`catalogue.versions`); a family folder without a compatible version falls through to the next one.

Variables a template may use: the feature's input fields by name, `resource` (the resource the action is
about, or None) and `current_date` (`CONTEXT_VARIABLES`). Partials (`*.jinja` under `prompts/`) can be
included with `{% include 'chat/partials/resource.jinja' %}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from jinja2 import Template, TemplateSyntaxError, meta
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from catalogue.models import ModelParams, describe, read_yaml
from catalogue.templates import PromptEnvironment, unsafe_constructs
from catalogue.versions import DEFAULT_CONSTRAINT, is_version, resolve_version

__all__ = ["CHECK_PROMPT", "CONTEXT_VARIABLES", "Prompt", "PromptDefinition", "PromptParams", "PromptRegistry", "Role"]

Role = Literal["system", "user", "assistant"]
CONTEXT_VARIABLES = frozenset({"resource", "current_date"})
# What `switchboard check` asks every configured model (no variables).
CHECK_PROMPT = "model_configuration/check"


class PromptParams(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: float | None = Field(None, gt=0)  # seconds; overrides the feature's
    stop: tuple[str, ...] | None = None


class _PromptModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    params: ModelParams = ModelParams()


class PromptDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    model: _PromptModel = _PromptModel()
    unit_primitive: str | None = None
    prompt_template: dict[Role, str | list[str]] = Field(min_length=1)
    params: PromptParams = PromptParams()


@dataclass(frozen=True)
class Prompt:
    """One loaded, compiled definition."""

    prompt_id: str
    family: str
    version: str
    definition: PromptDefinition
    templates: tuple[tuple[Role, Template], ...]
    variables: frozenset[str]  # the free variables its templates use

    @property
    def location(self) -> str:
        return f"{self.prompt_id}/{self.family}/{self.version}.yml"

    def render(self, variables: Mapping[str, object]) -> list[tuple[Role, str]]:
        """The messages, in template order; empty ones are dropped. Raises on an undefined variable and
        on anything the sandbox refuses."""
        messages = []
        for role, template in self.templates:
            text = template.render(variables).strip()
            if text:
                messages.append((role, text))
        return messages


class PromptRegistry:
    """Every definition under `root`, compiled once. Problems are appended to `problems`, never raised."""

    def __init__(self, root: Path, problems: list[str]) -> None:
        self.root = root
        self.environment = PromptEnvironment(root)
        self._prompts: dict[str, dict[str, dict[str, Prompt]]] = {}
        self._found: dict[tuple[str, tuple[str, ...], str], Prompt] = {}  # lookups, once per process
        for path in sorted(root.rglob("*.yml")):
            self._load(path, problems)
        for path in sorted(root.rglob("*.jinja")):
            self._check_partial(path, problems)

    def ids(self) -> list[str]:
        return sorted(self._prompts)

    def folders(self, prompt_id: str) -> dict[str, list[str]]:
        """Family folder → versions present, for one prompt id."""
        return {family: sorted(versions) for family, versions in self._prompts.get(prompt_id, {}).items()}

    def __iter__(self) -> Iterator[Prompt]:
        for families in self._prompts.values():
            for versions in families.values():
                yield from versions.values()

    def get(self, prompt_id: str, families: Sequence[str], constraint: str = DEFAULT_CONSTRAINT) -> Prompt:
        """The definition for a model of `families`; LookupError when none fits, ValueError for a bad
        constraint."""
        key = (prompt_id, tuple(families), constraint)
        found = self._found.get(key)
        if found is None:
            found = self._found[key] = self._lookup(prompt_id, tuple(families), constraint)
        return found

    def _lookup(self, prompt_id: str, families: tuple[str, ...], constraint: str) -> Prompt:
        folders = self._prompts.get(prompt_id)
        if folders is None:
            raise LookupError(f"unknown prompt {prompt_id!r}")
        for family in (*families, "base"):
            versions = folders.get(family)
            if versions:
                version = resolve_version(constraint, versions)
                if version is not None:
                    return versions[version]
        tried = ", ".join((*families, "base"))
        raise LookupError(f"prompt {prompt_id!r} has no version matching {constraint!r} for families {tried}")

    def _load(self, path: Path, problems: list[str]) -> None:
        relative = path.relative_to(self.root)
        where = f"prompts/{relative}"
        *id_parts, family = relative.parent.parts
        if not id_parts:
            problems.append(f"{where}: expected prompts/<prompt_id>/<family|base>/<version>.yml")
            return
        if not is_version(path.stem):
            problems.append(f"{where}: {path.stem!r} is not a semantic version")
            return
        data = read_yaml(path, problems)
        if data is None:
            return
        try:
            definition = PromptDefinition.model_validate(data)
        except ValidationError as exc:
            problems.extend(describe(exc, where))
            return
        compiled = self._compile(definition, where, problems)
        if compiled is None:
            return
        templates, variables = compiled
        prompt = Prompt("/".join(id_parts), family, path.stem, definition, templates, variables)
        self._prompts.setdefault(prompt.prompt_id, {}).setdefault(family, {})[path.stem] = prompt

    def _check_partial(self, path: Path, problems: list[str]) -> None:
        where = f"prompts/{path.relative_to(self.root)}"
        try:
            unsafe = unsafe_constructs(self.environment, path.read_text())
        except TemplateSyntaxError as exc:
            problems.append(f"{where}: line {exc.lineno}: {exc.message}")
            return
        problems.extend(f"{where}: {reason}" for reason in unsafe)

    def _compile(
        self, definition: PromptDefinition, where: str, problems: list[str]
    ) -> tuple[tuple[tuple[Role, Template], ...], frozenset[str]] | None:
        templates: list[tuple[Role, Template]] = []
        variables: set[str] = set()
        failed = False
        for role, sources in definition.prompt_template.items():
            for source in [sources] if isinstance(sources, str) else sources:
                try:
                    unsafe = unsafe_constructs(self.environment, source)
                    variables |= meta.find_undeclared_variables(self.environment.parse(source))
                    template = self.environment.from_string(source)
                except TemplateSyntaxError as exc:
                    problems.append(f"{where}: {role} template, line {exc.lineno}: {exc.message}")
                    failed = True
                    continue
                problems.extend(f"{where}: {role} template, {reason}" for reason in unsafe)
                failed = failed or bool(unsafe)
                templates.append((role, template))
        return None if failed else (tuple(templates), frozenset(variables))
