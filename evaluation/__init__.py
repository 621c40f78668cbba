"""Evaluation (SPEC §15, `switchboard eval`): datasets run through the worker's pipeline, scored, judged,
compared with paired statistics, stored, reported and gated.

- `world`: the seed data an evaluation answers in, and the worker's deps over it;
- `runner`: answering every item for a candidate and an optional baseline, with cache and concurrency;
- `cache`: cached answers and judgements;
- `store`: runs and their results in the database, `gate_result`;
- `scorers`, `judges`, `statistics`, `comparison`, `reports`: checks, the judges, the statistics, the report
  of a run and its gate, and the renderers.
"""

from evaluation.comparison import RunReport
from evaluation.runner import Arm, PlanError, RunOutcome, RunPlan, evaluate
from evaluation.store import GateResult, gate_result, load_report

__all__ = ["Arm", "GateResult", "PlanError", "RunOutcome", "RunPlan", "RunReport", "evaluate", "gate_result", "load_report"]
