"""`switchboard prompts`: guarded migrations of a feature to a new prompt version (SPEC §9.1), the same
pre-gate, steps and guard as a model migration (`cli.rollouts`):

    switchboard prompts migrate FEATURE --to VERSION [--eval RUN | --force] [--steps ...] [--wait]
    switchboard prompts migrate status [FEATURE] | pause FEATURE | resume FEATURE | abort FEATURE | promote FEATURE
"""

from __future__ import annotations

from typing import Any

from cli.commands import subcommands
from cli.rollouts import add_migrate

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add `prompts` to `switchboard`."""
    add_migrate(subcommands(commands, "prompts", "prompt versions: guarded migrations of a feature to a new version"), "prompt")
