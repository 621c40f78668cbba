"""GitLab-style global IDs (`gid://gitlab/<Type>/<id>`) and request IDs."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from core.errors import InvalidInput

__all__ = ["GlobalID", "new_request_id", "AI_MODEL_TYPES", "MAX_ID"]

_GID = re.compile(r"^gid://gitlab/([A-Za-z][A-Za-z0-9]*(?:::[A-Za-z][A-Za-z0-9]*)*)/([1-9][0-9]{0,18})\Z")

# IDs are 32-bit integer columns: a larger ID names nothing and must not reach the database (where it
# overflows the column type: OverflowError on SQLite past 2**63, DataError on PostgreSQL past 2**31).
MAX_ID = 2**31 - 1

# Types an AI action may be about (GitLab's `Ai::Model` union).
AI_MODEL_TYPES = frozenset({"Issue", "MergeRequest", "Epic", "Project", "Group", "Vulnerability", "Note"})


@dataclass(frozen=True, slots=True)
class GlobalID:
    type: str
    id: int

    def __str__(self) -> str:
        return f"gid://gitlab/{self.type}/{self.id}"

    @classmethod
    def parse(cls, value: object, *, argument: str, types: frozenset[str] | set[str] | None = None) -> GlobalID:
        """Parse `value` as a global ID for `argument`, optionally of one of `types`; InvalidInput otherwise."""
        match = _GID.match(value) if isinstance(value, str) else None
        if match is None:
            raise InvalidInput(argument, f"{value!r} is not a valid Global ID")
        gid = cls(match.group(1), int(match.group(2)))
        if gid.id > MAX_ID:
            raise InvalidInput(argument, f"{value!r} is not a valid Global ID: the ID is out of range")
        if types is not None and gid.type not in types:
            expected = " or ".join(sorted(types))
            raise InvalidInput(argument, f"{str(gid)!r} does not represent an instance of {expected}")
        return gid


def new_request_id() -> str:
    return str(uuid.uuid4())
