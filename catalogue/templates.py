"""The sandboxed Jinja environment prompt templates render in.

Templates are data written by prompt engineers, and what they render is user-controlled text, so the
environment is Jinja's immutable sandbox with three more refusals (as the AI gateway's): no calls except
to macros of the template itself, no `*` or `**` operators (no `'a' * 10**9`), and no undefined variables.
`unsafe_constructs` finds the same things statically, so `catalogue validate` refuses a template before it
is ever rendered; the sandbox refuses them again at render time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["PromptEnvironment", "SecurityError", "unsafe_constructs"]

_REFUSED_OPERATORS = frozenset({"*", "**"})
_OPERATOR_NODES: dict[type[nodes.Node], str] = {nodes.Mul: "*", nodes.Pow: "**"}


class PromptEnvironment(ImmutableSandboxedEnvironment):
    """Immutable sandbox; `{% include %}` resolves partials (`*.jinja`) under `root` only."""

    intercepted_binops = _REFUSED_OPERATORS

    def __init__(self, root: Path) -> None:
        super().__init__(
            loader=FileSystemLoader(root),
            undefined=StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def is_safe_callable(self, obj: Any) -> bool:
        return isinstance(obj, Macro)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator in _REFUSED_OPERATORS:
            raise SecurityError(f"the {operator!r} operator is not allowed in prompt templates")
        return super().call_binop(context, operator, left, right)


def unsafe_constructs(environment: PromptEnvironment, source: str) -> list[str]:
    """What the sandbox would refuse in `source`: calls to anything but the template's own macros,
    attributes starting with `_`, and the `*`/`**` operators. Raises TemplateSyntaxError."""
    tree = environment.parse(source)
    macros = {macro.name for macro in tree.find_all(nodes.Macro)} | {"caller"}
    found: list[str] = []
    for call in tree.find_all(nodes.Call):
        target = call.node
        if not (isinstance(target, nodes.Name) and target.name in macros):
            found.append(f"line {call.lineno}: calls are not allowed (only the template's own macros)")
    for attribute in tree.find_all(nodes.Getattr):
        if attribute.attr.startswith("_"):
            found.append(f"line {attribute.lineno}: private attribute {attribute.attr!r}")
    for item in tree.find_all(nodes.Getitem):
        key = item.arg
        if isinstance(key, nodes.Const) and isinstance(key.value, str) and key.value.startswith("_"):
            found.append(f"line {item.lineno}: private attribute {key.value!r}")
    for kind, operator in _OPERATOR_NODES.items():
        for node in tree.find_all(kind):
            found.append(f"line {node.lineno}: the {operator!r} operator is not allowed")
    return found
