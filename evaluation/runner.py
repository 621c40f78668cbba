"""Running a dataset (SPEC §15): every item through the worker's own pipeline code, for a candidate and an
optional baseline, each `--repeat` times, then judged.

An item is answered as the worker answers an action: an `ActionRecord` for the item's feature, asked by the
seed user `alice` about the item's seed resource (`evaluation.world`), its prompt variables
(`worker.prompt_variables`), the prompt of the answering model's family at the arm's prompt version
(applied as the worker applies a prompt migration: `feature.model_copy(update={"prompt_version": v})`), and
`worker.agent.answer` streaming from the model's client. Authorization is skipped and nothing is published
(`Answer(publish=False)`). A chat item is a single-turn question without a stored thread, answered by the
agent with the tools alice's seat allows (`worker.conversation.chat_turn`, slash commands included).

The arm's model answers alone (no fallback: a fallback would hide the candidate's failures); in mock mode
the mock model answers every call, as in the worker (`catalogue.selection.models_to_call`). A retryable
provider error (429, 529, 5xx) is retried with the worker's backoff (`worker.jobs.retry_delay`, at most
`MAX_TRIES` calls); the last error becomes the answer's `error`, never the run's. Model calls run at most
`concurrency` at a time per provider. Answers and judgements come from the cache when present
(`evaluation.cache`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass, replace
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from catalogue import Catalogue, Feature, ModelDefinition, get_catalogue, get_feature
from catalogue.evals import Dataset, EvalItem
from catalogue.selection import (
    SELF_HOSTED_PREFIX,
    Choice,
    Selection,
    model_definition,
    models_to_call,
    resolve_prompt_version,
)
from catalogue.selection_store import load_selection
from core.actions import ActionRecord
from core.errors import AGENT_STEP_LIMIT, ProviderError
from core.secrets import SecretBox
from core.settings import Settings
from evaluation.cache import EvalCache, cache_key
from evaluation.comparison import ItemResult, RunInfo, RunReport, build_report, gate
from evaluation.judges import Grade, Judge, MockJudge, ModelJudge, Preference
from evaluation.scorers import Output, score_checks
from evaluation.store import Answered, GateStatus, create_run, fail_run, finish_run, info_of, load_run
from evaluation.world import World, open_world
from worker.agent import Answer, Toolbox, answer
from worker.conversation import chat_turn
from worker.jobs import MAX_TRIES, retry_delay
from worker.llm import Completion, Message, Providers, ToolCall, Usage
from worker.prompt_variables import prompt_variables

__all__ = ["MOCK_JUDGE", "Arm", "PlanError", "Progress", "RunOutcome", "RunPlan", "Runner", "evaluate", "report_of",
           "served_prompt_version"]

log = logging.getLogger(__name__)

MOCK_JUDGE = "mock"
_JUDGE_TIMEOUT_S = 120.0

Progress = Callable[[int, int], None]  # (units done, units in all): a unit is one item in one epoch


class PlanError(ValueError):
    """A run that cannot start: an unknown model, feature or prompt version."""


@dataclass(frozen=True)
class Arm:
    name: Literal["candidate", "baseline"]
    model: str  # a catalogue identifier or self_hosted_<id>
    prompt_version: str | None = None  # a version or constraint (`1.0.0`, `^1.0.0`); None: what production serves


@dataclass(frozen=True)
class RunPlan:
    dataset: Dataset
    candidate: Arm
    baseline: Arm | None = None
    judge: str | None = None  # MOCK_JUDGE, a model reference, or None (deterministic checks only)
    repeat: int = 1
    concurrency: int = 8  # model calls at once per provider


def _model(catalogue: Catalogue, selection: Selection, secrets: SecretBox, ref: str) -> ModelDefinition:
    """The callable model for `ref` (a registered self-hosted model with its decrypted token)."""
    registered = selection.self_hosted.get(ref)
    if registered is None and (ref not in catalogue.models or ref.startswith(SELF_HOSTED_PREFIX)):
        known = sorted([*catalogue.models, *selection.self_hosted])
        raise PlanError(f"unknown model {ref!r}; valid: {', '.join(known)}")
    token = secrets.decrypt(registered.encrypted_api_token) if registered and registered.encrypted_api_token else None
    return model_definition(catalogue, selection, ref, token)


class Runner:
    """One run's answering and judging over a `World`; `check()` before `run()`."""

    def __init__(self, world: World, selection: Selection, cache: EvalCache, plan: RunPlan) -> None:
        self.world, self.plan, self.cache = world, plan, cache
        deps = world.deps
        self._feature = get_feature(plan.dataset.feature) if plan.dataset.feature in deps.catalogue.features else None
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._models: dict[str, ModelDefinition] = {}
        self._arms = [arm for arm in (plan.candidate, plan.baseline) if arm is not None]
        for arm in self._arms:
            self._models[arm.name] = self._answering(_model(deps.catalogue, selection, deps.secrets, arm.model))
        self._judge: Judge | None = None
        self._judge_model: ModelDefinition | None = None
        if plan.judge == MOCK_JUDGE:
            self._judge = MockJudge()
        elif plan.judge is not None:
            self._judge_model = self._answering(_model(deps.catalogue, selection, deps.secrets, plan.judge))
            self._judge = ModelJudge(self._judge_call, name=self._judge_model.identifier,
                                     families=self._judge_model.family)

    def _answering(self, chosen: ModelDefinition) -> ModelDefinition:
        """The model that answers for `chosen`: itself, or the mock in mock mode (as the worker decides)."""
        feature = self._feature or get_feature("chat")
        deps = self.world.deps
        return models_to_call(deps.catalogue, feature, Choice(chosen, "evaluation"), mock=deps.settings.use_mock_model)[0]

    def check(self) -> None:
        """Refuse a plan that cannot run: an unknown feature, or an arm's prompt version that has no prompt
        file for its model."""
        if self._feature is None:
            raise PlanError(f"the dataset's feature {self.plan.dataset.feature!r} is not in the catalogue")
        for arm in self._arms:
            model = self._models[arm.name]
            try:
                self.world.deps.catalogue.prompts.get(self._feature.prompt, model.family, _version(arm))
            except (LookupError, ValueError) as exc:
                raise PlanError(f"{arm.name} {arm.model}: {exc}") from None

    @property
    def answering_models(self) -> dict[str, str]:
        return {arm: model.identifier for arm, model in self._models.items()}

    @property
    def judge_name(self) -> str | None:
        return self._judge.name if self._judge is not None else None

    async def run(self, progress: Progress | None = None) -> list[Answered]:
        units = [(item, epoch) for epoch in range(self.plan.repeat) for item in self.plan.dataset.items]
        results: list[list[Answered]] = [[] for _ in units]
        done = 0

        async def unit(index: int, item: EvalItem, epoch: int) -> None:
            nonlocal done
            results[index] = await self._unit(item, epoch)
            done += 1
            if progress is not None:
                progress(done, len(units))

        async with asyncio.TaskGroup() as group:
            for index, (item, epoch) in enumerate(units):
                group.create_task(unit(index, item, epoch))
        return [result for found in results for result in found]

    async def _unit(self, item: EvalItem, epoch: int) -> list[Answered]:
        answers = await asyncio.gather(*(self._answer(item, arm, epoch) for arm in self._arms))
        outputs = {arm.name: found for arm, found in zip(self._arms, answers, strict=True)}
        judged: dict[str, tuple[Grade | None, str | None]] = {name: (None, None) for name in outputs}
        preference: tuple[Preference | None, str | None] = (None, None)
        if self._judge is not None:
            grades = await asyncio.gather(*(self._grade(item, arm, outputs[arm.name][0], epoch) for arm in self._arms))
            judged = dict(zip(outputs, grades, strict=True))
            if "baseline" in outputs:
                preference = await self._compare(item, outputs["candidate"][0], outputs["baseline"][0], epoch)
        found = []
        for arm in self._arms:
            output, prompt, answered_by, cached = outputs[arm.name]
            grade, grade_error = judged[arm.name]
            mine = arm.name == "candidate"
            result = ItemResult(item=item, epoch=epoch, output=output, scores=score_checks(item, output), grade=grade,
                                preference=preference[0] if mine else None,
                                judge_error=grade_error or (preference[1] if mine else None))
            found.append(Answered(arm.name, result, prompt, answered_by, cached))
        return found

    async def _answer(self, item: EvalItem, arm: Arm, epoch: int) -> tuple[Output, str | None, str | None, bool]:
        """(output, prompt file, answering model, from the cache) for one item, arm and epoch."""
        deps, model = self.world.deps, self._models[arm.name]
        feature = get_feature(item.feature).model_copy(update={"prompt_version": _version(arm)})
        started = time.perf_counter()
        try:
            record = ActionRecord(
                request_id=f"eval-{uuid.uuid4().hex}", feature=feature.key, user_id=self.world.principal.user_id,
                resource=self.world.resource_gid(item.resource) if item.resource else None, inputs=dict(item.input))
            toolbox: Toolbox | None = None
            async with deps.sessions() as session:
                variables = await prompt_variables(session, feature, record)
                turn = await chat_turn(deps, session, feature, record, self.world.principal, [model], variables) if feature.agent else None
            if turn is not None:
                if turn.reply is not None:  # a slash command answered without the model
                    return _elapsed(started, text=turn.reply), None, None, False
                variables, toolbox = turn.variables, turn.toolbox
            prompt = deps.catalogue.prompts.get(feature.prompt, model.family, feature.prompt_version)
            key = cache_key("answer", {
                "model": arm.model, "answered_by": model.identifier, "epoch": epoch, "prompt": prompt.location,
                "params": model.params.merged(prompt.definition.model.params).model_dump(mode="json"),
                "messages": prompt.render(variables), "tools": [tool.name for tool in toolbox.offered] if toolbox else [],
                "user_text": str(record.inputs.get(feature.user_text_field, "")) if feature.user_text_field else "",
            })
        except Exception as exc:  # a broken item (unknown resource, a template error) is that item's error
            return _elapsed(started, error=f"{type(exc).__name__}: {exc}"), None, None, False
        if (hit := await self.cache.get(key)) is not None:
            return Output(**hit["output"]), prompt.location, model.identifier, True
        output = await self._call(feature, record, model, variables, toolbox)
        if output.error is None:
            await self.cache.put(key, "answer", {"output": asdict(output)})
        return output, prompt.location, model.identifier, False

    def _semaphore(self, provider: str) -> asyncio.Semaphore:
        return self._semaphores.setdefault(provider, asyncio.Semaphore(self.plan.concurrency))

    async def _call(
        self, feature: Feature, record: ActionRecord, model: ModelDefinition, variables: dict[str, object],
        toolbox: Toolbox | None,
    ) -> Output:
        """The model's answer, with the worker's retries of retryable provider errors."""
        deps = self.world.deps
        for attempt in range(MAX_TRIES):
            state = Answer(publish=False)
            try:
                async with self._semaphore(model.provider):
                    await answer(deps, feature, record, [model], variables, state, attempt=attempt, toolbox=toolbox)
            except ProviderError as exc:
                if exc.retryable and attempt + 1 < MAX_TRIES:
                    await asyncio.sleep(retry_delay(attempt + 1, getattr(exc, "retry_after", None),
                                                    deps.settings.retry_base_delay_s))
                    continue
                return _outcome(state, error=f"{type(exc).__name__}: {exc}")
            except Exception as exc:
                log.warning("eval_item_failed", extra={"request_id": record.request_id, "error": type(exc).__name__})
                return _outcome(state, error=f"{type(exc).__name__}: {exc}")
            return _outcome(state, error=AGENT_STEP_LIMIT if state.exhausted else None)
        raise AssertionError("unreachable: the last try returns")

    async def _grade(self, item: EvalItem, arm: Arm, output: Output, epoch: int) -> tuple[Grade | None, str | None]:
        """The judge's grade (from the cache when there), or why there is none; keyed by the arm's model too,
        so that two arms answering alike are judged (and counted) apart."""
        assert self._judge is not None
        key = cache_key("grade", {"judge": self._judge.name, "version": self._judge.version, "epoch": epoch,
                                  "model": arm.model, "prompt_version": arm.prompt_version,
                                  "item": item.model_dump(mode="json"), "output": [output.text, output.error]})
        if (hit := await self.cache.get(key)) is not None:
            return Grade(**hit), None
        try:
            grade = await self._judge.grade(item, output)
        except (ProviderError, ValueError, TimeoutError) as exc:
            log.warning("eval_judge_failed", extra={"item": item.id, "error": type(exc).__name__})
            return None, f"{type(exc).__name__}: {exc}"
        await self.cache.put(key, "grade", asdict(grade))
        return grade, None

    async def _compare(
        self, item: EvalItem, candidate: Output, baseline: Output, epoch: int
    ) -> tuple[Preference | None, str | None]:
        """The pairwise judge's preference, candidate as `a` (from the cache when there), or why there is none."""
        assert self._judge is not None
        key = cache_key("compare", {"judge": self._judge.name, "version": self._judge.version, "epoch": epoch,
                                    "item": item.model_dump(mode="json"),
                                    "outputs": [[candidate.text, candidate.error], [baseline.text, baseline.error]]})
        if (hit := await self.cache.get(key)) is not None:
            return Preference(hit["choice"], tuple(hit["reasons"])), None
        try:
            preference = await self._judge.compare(item, candidate, baseline)
        except (ProviderError, ValueError, TimeoutError) as exc:
            log.warning("eval_judge_failed", extra={"item": item.id, "error": type(exc).__name__})
            return None, f"{type(exc).__name__}: {exc}"
        await self.cache.put(key, "compare", {"choice": preference.choice, "reasons": list(preference.reasons)})
        return preference, None

    async def _judge_call(self, messages: list[tuple[str, str]]) -> str:
        """One call of the judge model (the judges' `call`): its whole text, with the worker's retries."""
        model, deps = self._judge_model, self.world.deps
        assert model is not None
        completion = Completion(
            messages=tuple(Message(role, text) for role, text in messages),  # type: ignore[arg-type]
            model=model.provider_model, max_tokens=model.params.max_tokens or 1024, temperature=0.0,
            timeout_s=_JUDGE_TIMEOUT_S, user_text=messages[-1][1] if messages else "",
            endpoint=getattr(model, "base_url", None), api_key=getattr(model, "api_key", None),
            served_name=getattr(model, "served_name", False),
        )
        for attempt in range(MAX_TRIES):
            try:
                async with self._semaphore(model.provider):
                    return await _complete(deps.providers.client_for(model).stream(completion), completion.timeout_s)
            except ProviderError as exc:
                if not exc.retryable or attempt + 1 == MAX_TRIES:
                    raise
                await asyncio.sleep(retry_delay(attempt + 1, getattr(exc, "retry_after", None), deps.settings.retry_base_delay_s))
        raise AssertionError("unreachable: the last try returns or raises")


async def _complete(events: AsyncGenerator[str | ToolCall | Usage, None], timeout_s: float) -> str:
    """The text deltas of one streamed call, joined (usage and tool calls are not the judge's answer)."""
    async with asyncio.timeout(timeout_s), aclosing(events):
        return "".join([event async for event in events if isinstance(event, str)])


def _elapsed(started: float, *, text: str = "", error: str | None = None) -> Output:
    return Output(text=text, error=error, latency_ms=round((time.perf_counter() - started) * 1000, 3), ttfc_ms=None,
                  input_tokens=0, output_tokens=0)


def _outcome(state: Answer, *, error: str | None) -> Output:
    return Output(
        text=state.content, error=error, latency_ms=round((time.perf_counter() - state.started) * 1000, 3),
        ttfc_ms=round(state.first_chunk_s * 1000, 3) if state.first_chunk_s is not None else None,
        input_tokens=state.input_tokens, output_tokens=state.output_tokens,
    )



@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    report: RunReport
    gate: GateStatus
    reasons: tuple[str, ...]
    cache_hits: int
    results: list[Answered]


def report_of(info: RunInfo, results: Sequence[Answered], *, compared: bool, margin: float = 0.0) -> RunReport:
    """The comparison of the candidate's results with the baseline's (`compared`: the run has a baseline)."""
    mine = [found.result for found in results if found.arm == "candidate"]
    theirs = [found.result for found in results if found.arm == "baseline"]
    return build_report(info, mine, theirs if compared else None, margin=margin)


async def evaluate(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], plan: RunPlan, *, use_cache: bool = True,
    progress: Progress | None = None, providers: Providers | None = None,
) -> RunOutcome:
    """Run `plan` and store it in the database of `sessions`: the run is created `running`, then finished
    with its results, summary and gate, or marked `failed` (and the error raised). PlanError before any
    run is created."""
    async with sessions() as session:
        selection = await load_selection(session)
    plan = _served(plan, selection)
    world = await open_world(settings, providers=providers)
    try:
        runner = Runner(world, selection, EvalCache(sessions, enabled=use_cache), plan)
        runner.check()
        async with sessions() as session, session.begin():
            run_id = await create_run(
                session, dataset=plan.dataset.name, dataset_sha256=plan.dataset.sha256, feature=plan.dataset.feature,
                model=plan.candidate.model, baseline=plan.baseline.model if plan.baseline else None,
                prompt_version=_version(plan.candidate),
                baseline_prompt_version=plan.baseline.prompt_version if plan.baseline else None,
                judge=runner.judge_name, repeat=plan.repeat, mock=settings.use_mock_model)
            info = info_of(await load_run(session, run_id))
        try:
            results = await runner.run(progress)
            report = report_of(info, results, compared=plan.baseline is not None)
            status, reasons = gate(report)
            async with sessions() as session, session.begin():
                await finish_run(session, run_id, results, report.summary(), gate=status, cache_hits=runner.cache.hits)
        except BaseException as exc:
            await asyncio.shield(_failed(sessions, run_id, f"{type(exc).__name__}: {exc}"))
            raise
    finally:
        await world.close()
    return RunOutcome(run_id, report, status, reasons, runner.cache.hits, results)


def _version(arm: Arm) -> str:
    if arm.prompt_version is None:
        raise ValueError(f"the {arm.name}'s prompt version is not resolved")
    return arm.prompt_version


def served_prompt_version(feature: Feature, selection: Selection) -> str:
    """The prompt version (constraint) production answers `feature` with, for actors in no rollout."""
    return resolve_prompt_version(feature, selection)


def _served(plan: RunPlan, selection: Selection) -> RunPlan:
    """`plan` with every arm's missing prompt version set to the one production serves."""
    if plan.dataset.feature not in get_catalogue().features:
        return plan  # Runner.check refuses it
    served = served_prompt_version(get_feature(plan.dataset.feature), selection)
    arms = [replace(arm, prompt_version=arm.prompt_version or served) if arm else None
            for arm in (plan.candidate, plan.baseline)]
    assert arms[0] is not None
    return replace(plan, candidate=arms[0], baseline=arms[1])


async def _failed(sessions: async_sessionmaker[AsyncSession], run_id: str, error: str) -> None:
    async with sessions() as session, session.begin():
        await fail_run(session, run_id, error)
