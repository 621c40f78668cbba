"""The SQL schema as SQLAlchemy declarative models, one module per noun, all importable from here:

- `base`: the declarative base, `UTCDateTime`, the enums (visibility, access level, severity);
- `namespaces`: users, personal access tokens, groups (a tree, with their Duo settings), projects, members;
- `resources`: issues, merge requests (with diff text), epics, vulnerabilities, notes;
- `duo`: the instance settings, Duo add-on purchases and their seat assignments;
- `flags`: feature flags and their gates (Flipper's layout);
- `model_selection`: instance and namespace model choices, self-hosted models, their audit log;
- `chat`: Duo Chat threads, their messages, and the feedback on answers;
- `rollouts`: guarded migrations of models and prompt versions, and their history;
- `evaluation`: `switchboard eval` runs, their results, and the cache of answers and judgements.

Schema changes go through Alembic (`core/migrations/versions/`); `tests/core/test_db.py` checks that the
migrations and these models agree. Constraint names follow `Base.metadata.naming_convention`.

Timestamps are timezone-aware UTC on every backend (`UTCDateTime`). Relationships load lazily by default,
which async code must not trigger implicitly: eager-load with `joinedload`/`selectinload`, or go through
`await obj.awaitable_attrs.<name>`.
"""

from core.tables.base import (
    ADD_ON_NAMES,
    AccessLevel,
    Base,
    Severity,
    UTCDateTime,
    Visibility,
    utcnow,
)
from core.tables.chat import (
    MAX_MESSAGE_CHARS,
    MAX_TITLE_CHARS,
    ConversationMessage,
    ConversationThread,
    ConversationType,
    MessageFeedback,
)
from core.tables.duo import AddOnAssignment, AddOnPurchase, InstanceSettings
from core.tables.evaluation import EvalCacheEntry, EvalResult, EvalRun
from core.tables.flags import FeatureFlag, FeatureGate
from core.tables.model_selection import (
    PROVIDER_KINDS,
    FeatureSettingChoice,
    ModelSelectionAuditEvent,
    NamespaceFeatureSetting,
    SelfHostedModel,
)
from core.tables.namespaces import Group, Member, PersonalAccessToken, Project, User
from core.tables.resources import Epic, Issue, MergeRequest, Note, Vulnerability
from core.tables.rollouts import ACTIVE_STATES, ENDED_STATES, ROLLOUT_KINDS, Rollout, RolloutEvent

__all__ = [
    "ACTIVE_STATES",
    "ADD_ON_NAMES",
    "ENDED_STATES",
    "ROLLOUT_KINDS",
    "Rollout",
    "RolloutEvent",
    "AccessLevel",
    "AddOnAssignment",
    "AddOnPurchase",
    "Base",
    "ConversationMessage",
    "ConversationThread",
    "ConversationType",
    "Epic",
    "EvalCacheEntry",
    "EvalResult",
    "EvalRun",
    "FeatureFlag",
    "FeatureGate",
    "FeatureSettingChoice",
    "Group",
    "InstanceSettings",
    "MAX_MESSAGE_CHARS",
    "MAX_TITLE_CHARS",
    "Issue",
    "Member",
    "MergeRequest",
    "MessageFeedback",
    "ModelSelectionAuditEvent",
    "NamespaceFeatureSetting",
    "Note",
    "PersonalAccessToken",
    "PROVIDER_KINDS",
    "Project",
    "SelfHostedModel",
    "Severity",
    "User",
    "UTCDateTime",
    "Visibility",
    "Vulnerability",
    "utcnow",
]
