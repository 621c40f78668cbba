"""`switchboard catalogue validate | show` and `switchboard check` (a test completion against each model the
features use)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import catalogue
from catalogue.evals import all_datasets
from chat.tools import check_handlers
from cli.commands import CommandFailed
from core.errors import CatalogueError
from core.settings import Settings

__all__ = ["register"]


def _catalogue(settings: Settings, args: argparse.Namespace) -> None:
    loaded = catalogue.validate()
    unhandled = check_handlers(loaded)  # the catalogue cannot see chat's handlers: checked here and in a test
    if unhandled:
        raise CommandFailed(str(CatalogueError(unhandled)))
    if args.action == "show":  # one JSON object a line: features, models, feature settings, prompts
        for entry in loaded.entries():
            print(json.dumps(entry, sort_keys=True))
    else:
        counts = (f"{len(loaded.features)} features, {len(loaded.models)} models, "
                  f"{len(loaded.feature_settings)} feature settings, {len(list(loaded.prompts))} prompt definitions, "
                  f"{len(loaded.tools)} chat tools, {len(all_datasets())} evaluation datasets")
        print(f"catalogue is valid: {counts}", file=sys.stderr)


def _check(settings: Settings, args: argparse.Namespace) -> None:
    """A test completion against each model the features use; one line per model."""
    from worker.probe import probe_models  # the provider SDKs take seconds to import: only for this command

    results = asyncio.run(probe_models(settings))
    for result in results:
        print(result.line())
    failed = [result.model.identifier for result in results if result.failed]
    if failed:
        raise CommandFailed(f"{len(failed)} of {len(results)} models failed: {', '.join(failed)}")


def register(commands: Any) -> None:
    cat = commands.add_parser("catalogue", help="the feature catalogue")
    cat.add_argument("action", choices=["validate", "show"])
    cat.set_defaults(handler=_catalogue)
    check = commands.add_parser("check", help="a test completion against each configured model, one line per model")
    check.set_defaults(handler=_check)
