"""Feature flag definitions (GitLab's `config/feature_flags/**/*.yml`), declared once each.

A definition gives a flag its type, its default (used while the flag was never set) and whether it is
*pushed*: resolved for the actor when an action is enqueued and carried in the job, so that the worker reads
it with `access.flags.is_feature_enabled` (GitLab's `x-gitlab-enabled-feature-flags`). Flags that change
prompts or models are pushed.

Which flags an AI feature needs (`required_flags`): its own switch when it declares an `ops` one (chat:
`ai_duo_chat_switch`); otherwise `ai_global_switch`, plus its own flag when it declares one. So turning
`ai_global_switch` off stops every feature but chat, as GitLab's `ai_integration_enabled?` does.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from catalogue.features import FEATURE_LIST, Feature

__all__ = [
    "FLAG_DEFINITIONS",
    "FLAGS",
    "FlagDefinition",
    "GLOBAL_SWITCH",
    "MODEL_SWITCHING",
    "PUSHED_FLAGS",
    "ROLLOUT_FLAGS",
    "default_enabled",
    "model_migration_flag",
    "prompt_migration_flag",
    "required_flags",
]

GLOBAL_SWITCH = "ai_global_switch"
MODEL_SWITCHING = "ai_model_switching"


class FlagDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=255)
    type: Literal["ops", "beta", "development", "experiment"]
    default_enabled: bool
    pushed: bool = False
    description: str


FLAG_DEFINITIONS: tuple[FlagDefinition, ...] = (
    FlagDefinition(
        name=GLOBAL_SWITCH,
        type="ops",
        default_enabled=True,
        description="Kill switch of every AI feature except Duo Chat.",
    ),
    FlagDefinition(
        name="ai_duo_chat_switch",
        type="ops",
        default_enabled=True,
        description="Kill switch of Duo Chat.",
    ),
    FlagDefinition(
        name=MODEL_SWITCHING,
        type="beta",
        default_enabled=True,
        pushed=True,  # off for an actor: groups' model choices are not applied to their requests
        description="Lets group owners choose the model of each feature (namespace model selection).",
    ),
    # Model migrations (feature_settings.yml `migrations`): pushed, so the worker reads them for the actor
    # resolved at enqueue; turning one off sends the next requests back to the old default (SPEC §9).
    FlagDefinition(
        name="duo_chat_claude_sonnet_4_6_vertex",
        type="beta",
        default_enabled=False,
        pushed=True,
        description="Migrates Duo Chat's default model to Claude Sonnet 4.6 on Vertex AI.",
    ),
    FlagDefinition(
        name="expanded_ai_logging",
        type="ops",
        default_enabled=False,
        pushed=True,
        description="Logs the prompts and model responses of the actor's requests.",
    ),
)



def model_migration_flag(feature_setting: str) -> str:
    """The flag a guarded model rollout of `feature_setting` drives (SPEC §9.1)."""
    return f"model_migration_{feature_setting}"


def prompt_migration_flag(feature: str) -> str:
    """The flag a guarded prompt rollout of `feature` drives (GitLab's `prompt_migration_<feature>`)."""
    return f"prompt_migration_{feature}"


# Guarded rollouts (SPEC §9.1): one flag per feature setting and one per feature, pushed so the worker reads
# them for the actor resolved at enqueue; `access.admin.rollouts` and the controller set their gates.
ROLLOUT_FLAGS: tuple[FlagDefinition, ...] = (
    *(
        FlagDefinition(name=model_migration_flag(setting), type="ops", default_enabled=False, pushed=True,
                       description=f"Guarded rollout of a new model for the feature setting {setting}.")
        for setting in dict.fromkeys(feature.feature_setting for feature in FEATURE_LIST)
    ),
    *(
        FlagDefinition(name=prompt_migration_flag(feature.key), type="ops", default_enabled=False, pushed=True,
                       description=f"Guarded rollout of a new prompt version for {feature.key}.")
        for feature in FEATURE_LIST
    ),
)

FLAGS: MappingProxyType[str, FlagDefinition] = MappingProxyType(
    {d.name: d for d in (*FLAG_DEFINITIONS, *ROLLOUT_FLAGS)}
)

# Resolved at enqueue for the actor and carried in the job.
PUSHED_FLAGS: tuple[str, ...] = tuple(d.name for d in FLAGS.values() if d.pushed)


def default_enabled(name: str) -> bool:
    """A flag's state while it was never set: its definition's default; undefined flags are off."""
    definition = FLAGS.get(name)
    return definition is not None and definition.default_enabled


def required_flags(feature: Feature) -> tuple[str, ...]:
    """The flags that must all be enabled for the actor before `feature` may run (SPEC §5.1 check 4)."""
    own = FLAGS.get(feature.flag) if feature.flag else None
    if own is not None and own.type == "ops":
        return (own.name,)
    if feature.flag:
        return (GLOBAL_SWITCH, feature.flag)
    return (GLOBAL_SWITCH,)
