"""Slash commands (SPEC §13.2): a chat `content` matching `^/\\w+` is a command and the rest of the text its
input; an unknown command is an ordinary question, as in GitLab.

Each command is data: what it does (`kind`), what it is offered for (resource types, the unit primitive a seat
must bundle) and, for the commands that ask the model, the instruction that replaces the user's text in the
prompt. `worker.agent` runs them; `aiSlashCommands` lists `offered(...)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from core.errors import NO_CODE_FOR_COMMAND

__all__ = ["COMMANDS", "Invocation", "SlashCommand", "help_text", "offered", "parse", "code_request"]

# reset: a marker in the thread; new: a new thread (the web process made it); help: a static answer;
# code: acts on selected code or the code after the command; comments: the resource's human notes;
# vulnerability: the current vulnerability.
CommandKind = Literal["reset", "new", "help", "code", "comments", "vulnerability"]

_COMMAND = re.compile(r"\A/(\w+)(?:\s+|\Z)", re.S)


@dataclass(frozen=True, slots=True)
class SlashCommand:
    name: str  # with the slash: "/explain"
    description: str
    kind: CommandKind
    # Offered (and run) only when a seat bundles this unit primitive; None: whoever may chat.
    unit_primitive: str | None = None
    # Offered only on these resources' pages; empty: anywhere.
    resource_types: frozenset[str] = frozenset()
    should_submit: bool = True  # the UI sends it at once (no further input expected)
    # code commands: GitLab's verb for the error text ("explain") and the human task ("explain the code").
    action: str = ""
    human_name: str = ""
    instruction: str = ""


COMMANDS: tuple[SlashCommand, ...] = (
    SlashCommand("/reset", "Reset conversation and ignore previous messages.", "reset"),
    SlashCommand("/clear", "Delete all messages in the current conversation.", "new"),
    SlashCommand("/new", "Start a new conversation; the current one stays in the list.", "new"),
    SlashCommand("/help", "Learn what Duo Chat can do.", "help"),
    SlashCommand(
        "/explain", "Explain the selected code.", "code", unit_primitive="explain_code", should_submit=False,
        action="explain", human_name="explain the code",
        instruction="Explain the code below enclosed in <selected_code></selected_code> tags.",
    ),
    SlashCommand(
        "/refactor", "Refactor the selected code.", "code", unit_primitive="refactor_code", should_submit=False,
        action="refactor", human_name="refactor the code",
        instruction="Refactor the code below enclosed in <selected_code></selected_code> tags. Keep its behaviour.",
    ),
    SlashCommand(
        "/tests", "Write tests for the selected code.", "code", unit_primitive="write_tests", should_submit=False,
        action="generate tests for", human_name="generate tests for the code",
        instruction="Write tests for the code below enclosed in <selected_code></selected_code> tags.",
    ),
    SlashCommand(
        "/fix", "Fix the selected code.", "code", unit_primitive="fix_code", should_submit=False,
        action="fix", human_name="fix the code",
        instruction="Fix any errors in the code below enclosed in <selected_code></selected_code> tags.",
    ),
    SlashCommand(
        "/summarize_comments", "Summarize the comments of the current issue, merge request or epic.", "comments",
        unit_primitive="summarize_comments", resource_types=frozenset({"Issue", "MergeRequest", "Epic"}),
        instruction="Summarize the comments below in at most 10 bullet points.",
    ),
    SlashCommand(
        "/vulnerability_explain", "Explain the current vulnerability.", "vulnerability",
        unit_primitive="explain_vulnerability", resource_types=frozenset({"Vulnerability"}),
        instruction="Explain the vulnerability below, how it could be exploited, and how to fix it.",
    ),
)
_BY_NAME = {command.name: command for command in COMMANDS}


@dataclass(frozen=True, slots=True)
class Invocation:
    command: SlashCommand
    input: str  # the text after the command, stripped


def parse(content: str) -> Invocation | None:
    """The command `content` invokes; None for an ordinary question (including an unknown command)."""
    match = _COMMAND.match(content.strip())
    if match is None:
        return None
    command = _BY_NAME.get(f"/{match[1]}")
    return Invocation(command, content.strip()[match.end():].strip()) if command else None


def offered(resource_type: str | None, primitives: Iterable[str]) -> tuple[SlashCommand, ...]:
    """The commands for a page showing `resource_type` (None: no resource) and a user whose seats bundle
    `primitives`."""
    unlocked = frozenset(primitives)
    return tuple(
        command for command in COMMANDS
        if (command.unit_primitive is None or command.unit_primitive in unlocked)
        and (not command.resource_types or resource_type in command.resource_types)
    )


def help_text(commands: Iterable[SlashCommand], tools: Iterable[str]) -> str:
    """`/help`'s answer: what chat can do here, the commands and the tools offered to this user."""
    lines = [
        "GitLab Duo Chat answers questions about your code, your projects and GitLab, in a conversation that "
        "remembers what was said before.",
        "",
        "Ask about an issue, merge request, epic or vulnerability by reference (`#12`, `!3`, `&4`, "
        "`group/project#12`) or by URL, or about the page you are on, and chat reads it for you.",
    ]
    tool_names = sorted(tools)
    if tool_names:
        lines += ["", "Tools chat may use for you: " + ", ".join(f"`{name}`" for name in tool_names) + "."]
    lines += ["", "Commands:"]
    lines += [f"- `{command.name}`: {command.description}" for command in commands]
    return "\n".join(lines)


def code_request(command: SlashCommand, user_input: str, selected_text: str | None) -> tuple[str | None, str]:
    """A code command's question for the model, or None and GitLab's text when there is no code to act on.

    The code is the editor's selection when there is one (the input is then extra instructions), else the
    text after the command."""
    if selected_text:
        question = f"{command.instruction}\n\n<selected_code>\n{selected_text}\n</selected_code>"
        return question + (f"\n\n{user_input}" if user_input else ""), ""
    if user_input:
        return f"{command.instruction}\n\n<selected_code>\n{user_input}\n</selected_code>", ""
    return None, NO_CODE_FOR_COMMAND.format(action=command.action, human_name=command.human_name, command=command.name)
