"""Tool calling for models without a native tool API: GitLab's ReAct text format (SPEC §13.3).

`ReactClient` wraps a provider client. A completion offering tools is sent without them: the tools and the
format (`Thought:` / `Action:` / `Action Input:` / `Observation:` … `Final Answer:`) are described at the
end of the system prompt, past calls and results become text turns, and `Observation:` stops the model.
Its answer is parsed as it streams:

- the text after `Final Answer:` is streamed as deltas (the Thought before it never is);
- otherwise an `Action` with its `Action Input` (a JSON object; for a tool taking one property, a bare
  value is that property) becomes one ToolCall, `Action: DirectAnswer` being no call;
- text with neither is the answer, without a leading `Thought:` (nor an `Action: DirectAnswer` line).

A completion without tools goes to the inner client unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Mapping
from dataclasses import replace

from core.errors import ProviderError
from worker.llm.base import Completion, LLMClient, Message, ToolCall, ToolSpec, Usage

__all__ = ["ReactClient", "parse_action", "render"]

FINAL_ANSWER = "Final Answer:"
OBSERVATION = "Observation:"
DIRECT_ANSWER = "DirectAnswer"

_ACTION = re.compile(r"^[ \t]*Action:[ \t]*(?P<tool>[^\n]*?)[ \t]*$", re.M)
_INPUT = re.compile(r"^[ \t]*Action Input:[ \t]*(?P<input>.*?)(?=^[ \t]*Observation:|\Z)", re.M | re.S)
_FENCE = re.compile(r"^```[a-z]*\s*(.*?)\s*```$", re.S)
_THOUGHT = re.compile(r"^\s*Thought:\s*")
_DIRECT = re.compile(rf"^[ \t]*Action:[ \t]*{DIRECT_ANSWER}[ \t]*$\n?", re.M)
_JSON = json.JSONDecoder()

_FORMAT = """You can use these tools:

{tools}

Answer in this format:

Thought: think about what to do next
Action: the tool to use, one of [{names}]
Action Input: the tool's input, a JSON object matching its input schema
Observation: the tool's result (given to you; never write it yourself)
... (Thought / Action / Action Input / Observation can repeat N times)
Thought: I know the final answer.
Final Answer: the answer to the user's question

When you can answer without a tool:

Thought: think about the question
Action: {direct}
Final Answer: the answer to the user's question

Begin!"""


class ReactClient:
    """Gives `inner` tools through the ReAct text format. Built once per provider client."""

    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner
        self.name = inner.name

    async def stream(self, completion: Completion) -> AsyncGenerator[str | ToolCall | Usage, None]:
        if not completion.tools:
            async for event in self.inner.stream(completion):
                yield event
            return
        said = ""
        answering = leading = False
        usage: Usage | None = None  # the contract has it last: after the call parsed at the end
        async for event in self.inner.stream(render(completion)):
            if isinstance(event, Usage):
                usage = event
                continue
            if not isinstance(event, str):
                continue  # the inner call offers no tools: no native calls can come
            if not answering:
                searched_from = max(0, len(said) - len(FINAL_ANSWER))
                said += event
                marker = said.find(FINAL_ANSWER, searched_from)
                if marker < 0:
                    continue
                answering = leading = True
                event = said[marker + len(FINAL_ANSWER):]
            if leading:
                event = event.lstrip()
                if not event:
                    continue
                leading = False
            yield event
        if not answering:
            call = parse_action(said, completion.tools, f"react_{completion.turn}_0", self.name)
            if call is not None:
                yield call
            elif answer := _DIRECT.sub("", _THOUGHT.sub("", said, count=1)).strip():
                yield answer
        if usage is not None:
            yield usage


def parse_action(text: str, tools: tuple[ToolSpec, ...], call_id: str, provider: str) -> ToolCall | None:
    """The call an answer without `Final Answer:` asks for, if any. Its `Action Input` is a JSON object, or a
    bare value for a tool with a single input property; anything else is a ProviderError."""
    action = _ACTION.search(text)
    if action is None:
        return None
    tool = action["tool"].strip(" `'\"[]")
    if not tool or tool == DIRECT_ANSWER:
        return None
    given = _INPUT.search(text, action.end())
    raw = _FENCE.sub(r"\1", given["input"].strip()) if given else ""
    if not raw:
        return ToolCall(call_id, tool, {})
    try:
        value: object = _JSON.raw_decode(raw)[0]  # the object, whatever follows it
    except ValueError:
        value = raw.strip("'\"")
    if isinstance(value, dict):
        return ToolCall(call_id, tool, value)
    spec = next((t for t in tools if t.name == tool), None)
    properties = spec.input_schema.get("properties") if spec is not None else None
    if isinstance(properties, Mapping) and len(properties) == 1 and not isinstance(value, list):
        return ToolCall(call_id, tool, {next(iter(properties)): value if isinstance(value, str) else raw})
    raise ProviderError(provider, None, "malformed ReAct action: its Action Input is not a JSON object")


def render(completion: Completion) -> Completion:
    """`completion` for a model without tools: the tools and the ReAct format in the system prompt, past
    calls as `Action` turns and their results as `Observation` turns, stopped at `Observation:`."""
    tools = "\n".join(f"- {t.name}: {t.description}\n  Input schema: {json.dumps(t.input_schema, sort_keys=True)}"
                      for t in completion.tools)
    names = ", ".join(t.name for t in completion.tools)
    instructions = _FORMAT.format(tools=tools, names=names, direct=DIRECT_ANSWER)
    system = f"{completion.system}\n\n{instructions}" if completion.system else instructions
    messages = [Message("system", system)]
    for m in completion.conversation:
        if m.role == "tool":
            observation = f"{OBSERVATION} {m.content}"
            if messages[-1].role == "user" and messages[-1].content.startswith(OBSERVATION):
                messages[-1] = Message("user", f"{messages[-1].content}\n\n{observation}")
            else:
                messages.append(Message("user", observation))
        elif m.role == "assistant" and m.tool_calls:
            thought = [f"Thought: {m.content.strip()}"] if m.content.strip() else []
            actions = [f"Action: {c.name}\nAction Input: {json.dumps(dict(c.arguments))}" for c in m.tool_calls]
            messages.append(Message("assistant", "\n".join([*thought, *actions])))
        elif m.role == "assistant":
            messages.append(Message("assistant", f"{FINAL_ANSWER} {m.content}"))
        else:
            messages.append(Message(m.role, m.content))
    stop = completion.stop if OBSERVATION in completion.stop else (*completion.stop, OBSERVATION)
    return replace(completion, messages=tuple(messages), tools=(), stop=stop)
