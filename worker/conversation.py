"""Preparing a chat turn (SPEC §13): the slash command it invokes, the thread's history under the prompt's
token budget, and the tools offered to the user; and, after the answer, the question's categorization.

A command that needs no model (`/reset`, `/clear`, `/new`, `/help`, a code command without code, a comments
summary without comments, …) is answered here, with GitLab's texts; the others change the question the
model sees. The user's seats decide both the commands (`/summarize_comments` is Duo Enterprise's) and the
tools (the readers are Duo Enterprise's; a tool the seats do not bundle is not offered, and refused with
M3005 if called anyway).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from access.tokens import Principal
from catalogue import ModelDefinition, get_feature
from catalogue.features import Feature
from chat import commands
from chat.conversations import thread_pk
from chat.history import prompt_history
from chat.tools import ToolContext, available_tools
from core.actions import ActionRecord
from core.errors import NO_COMMENTS, NOT_A_VULNERABILITY_PAGE, TOOL_NOT_IN_SUBSCRIPTION
from core.ids import GlobalID, new_request_id
from core.metrics import CHAT_QUESTION_CATEGORIES
from core.redis import REDIS_UNAVAILABLE, enqueue_action
from worker.agent import PromptRenders, Toolbox, history_budget
from worker.deps import Deps
from worker.llm import estimate_tokens
from worker.prompt_variables import ResourceContext

__all__ = ["ChatTurn", "categorize_later", "categorizer_of", "chat_turn", "record_category"]

log = logging.getLogger(__name__)

_CATEGORIES = frozenset({"Code Explanation", "Code Generation", "Debugging", "Documentation", "GitLab Usage",
                         "Planning", "Security", "Other"})


@dataclass
class ChatTurn:
    variables: dict[str, object]
    history: Sequence[tuple[str, str]] = ()
    toolbox: Toolbox | None = None
    renders: PromptRenders | None = None  # the prompts rendered with `variables` for the history's budget
    reply: str | None = None  # the answer, when the turn needs no model
    save_reply: bool = True  # whether that answer joins the thread (not for /reset, /clear, /new)
    extras: dict[str, object] = field(default_factory=dict)


async def chat_turn(
    deps: Deps, session: AsyncSession, feature: Feature, record: ActionRecord, principal: Principal,
    models: Sequence[ModelDefinition], variables: dict[str, object],
) -> ChatTurn:
    """What the model is asked in this turn: the tools the user's seat allows, a slash command's question
    (or its answer, when no model is needed), the thread's history; read through the caller's `session`."""
    primitives = await deps.gate.unit_primitives(session, principal)
    tools = available_tools(deps.catalogue, primitives)
    resource = variables.get("resource")
    resource_type = resource.type if isinstance(resource, ResourceContext) else None
    invocation = commands.parse(str(variables.get("content") or ""))
    if invocation is not None:
        command = invocation.command
        if command.unit_primitive is not None and command.unit_primitive not in primitives:
            return ChatTurn(variables, reply=TOOL_NOT_IN_SUBSCRIPTION)
        match command.kind:
            case "reset" | "new":
                return ChatTurn(variables, reply="", save_reply=False)
            case "help":
                return ChatTurn(variables, reply=commands.help_text(commands.offered(resource_type, primitives),
                                                                    [tool.name for tool in tools]))
            case "code":
                current_file = variables.get("current_file")
                selected = current_file.get("selected_text") if isinstance(current_file, dict) else None
                question, refusal = commands.code_request(command, invocation.input, selected)
                if question is None:
                    return ChatTurn(variables, reply=refusal)
                variables = {**variables, "content": question}
            case "comments":
                if not isinstance(resource, ResourceContext) or resource.type not in command.resource_types or not resource.notes:
                    return ChatTurn(variables, reply=NO_COMMENTS)
                notes = "\n".join(f'<note author="{n.author}">{n.body}</note>' for n in resource.notes)
                variables = {**variables, "content": f"{command.instruction}\n\n<comments>\n{notes}\n</comments>"}
            case "vulnerability":
                if not isinstance(resource, ResourceContext) or resource.type not in command.resource_types:
                    return ChatTurn(variables, reply=NOT_A_VULNERABILITY_PAGE)
                details = (f"<vulnerability severity=\"{resource.severity}\" report=\"{resource.report_type}\" "
                           f"file=\"{resource.file}\" line=\"{resource.start_line}\">\n<title>{resource.title}</title>\n"
                           f"<description>{resource.description}</description>\n<code>{resource.code}</code>\n</vulnerability>")
                variables = {**variables, "content": f"{command.instruction}\n\n{details}"}
    toolbox = Toolbox(
        ToolContext(
            sessions=deps.sessions, principal=principal, gate=deps.gate,
            resource=GlobalID.parse(record.resource, argument="resourceId") if record.resource else None,
            project=GlobalID.parse(record.project_id, argument="projectId") if record.project_id else None,
            docs=await deps.documentation(),
        ),
        tools,
        deps.catalogue.tools,
    ) if tools else None
    history: Sequence[tuple[str, str]] = ()
    renders = None
    if record.thread_id is not None:
        renders = PromptRenders(variables)  # rendered once, for the budget and the answer's calls
        budget = history_budget(deps, feature, models, renders, toolbox)
        history = await prompt_history(session, thread_pk(record.thread_id) or 0, before_request_id=record.request_id,
                                       budget_tokens=budget, count_tokens=estimate_tokens)
    return ChatTurn(variables, history=history, toolbox=toolbox, renders=renders)


async def categorize_later(deps: Deps, record: ActionRecord, categorizer: Feature) -> None:
    """Enqueue the question's categorization (GitLab does it on SaaS only, for its metrics); it never delays
    or fails the answer."""
    if not categorizer.self_managed and deps.settings.mode != "saas":
        return
    job = ActionRecord(request_id=new_request_id(), feature=categorizer.key, user_id=record.user_id,
                       inputs={"question": str(record.inputs.get("content", ""))}, flags=record.flags)
    try:
        await enqueue_action(deps.redis, job)
    except REDIS_UNAVAILABLE as exc:
        log.warning("categorization_not_enqueued", extra={"request_id": record.request_id, "error": type(exc).__name__})


def record_category(content: str) -> None:
    """Count a categorization's answer (`{"category": …}`) by category; anything else counts as Other."""
    try:
        category = orjson.loads(content).get("category")
    except (orjson.JSONDecodeError, AttributeError):
        category = None
    CHAT_QUESTION_CATEGORIES.labels(category if category in _CATEGORIES else "Other").inc()


def categorizer_of(feature: Feature) -> Feature | None:
    return get_feature(feature.categorized_by) if feature.categorized_by else None
