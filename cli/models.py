"""`switchboard models`: model selection from the command line (SPEC §9), the same rules and audit log as
the GraphQL API (changes are audited with the author "cli").

    switchboard models settings                                   the instance's choice per feature setting
    switchboard models set FEATURE --provider vendored --available a,b --default a
    switchboard models group PATH                                 a group's choices (stale ones marked)
    switchboard models choose PATH FEATURE [REF]                  a group's choice; no REF inherits
    switchboard models resolve FEATURE [--group PATH] [--flag F]  which model would answer, and why
    switchboard models self-hosted list | create | update | delete
    switchboard models reset FEATURE                              forget the instance's choice (catalogue defaults)
    switchboard models audit [--limit N]
    switchboard models migrate SETTING --to MODEL [...] / status / pause / resume / abort / promote   (cli.rollouts)

Running workers pick a change up within their cache time (5 s).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from access.admin import model_settings, namespaces
from catalogue import get_catalogue
from catalogue.selection import instance_offer, levels, resolve
from catalogue.selection_store import load_selection
from cli.commands import command, subcommands
from cli.rollouts import add_migrate
from core.errors import InvalidInput
from core.secrets import secret_box
from core.tables import PROVIDER_KINDS, ModelSelectionAuditEvent, SelfHostedModel

__all__ = ["register"]


def _checked(errors: list[str]) -> None:
    if errors:
        raise InvalidInput(None, "; ".join(errors))


def _feature(name: str) -> str:
    settings = get_catalogue().feature_settings
    if name not in settings:
        raise InvalidInput(None, f"unknown feature setting {name!r}; valid: {', '.join(settings)}")
    return name


async def _settings(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    catalogue, selection = get_catalogue(), await load_selection(session)
    lines = []
    for name, setting in catalogue.feature_settings.items():
        choice = selection.instance.get(name)
        provider = choice.provider if choice else "vendored (catalogue)"
        default = (choice.default if choice else setting.default_model) or "-"
        lines.append(f"{name:<32} {provider:<20} default {default:<28} available {','.join(instance_offer(catalogue, selection, name)) or '-'}")
    return lines


async def _set(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    available = [ref for ref in (args.available or "").split(",") if ref] or None
    _checked(await model_settings.update_instance_setting(
        session, None, get_catalogue(), _feature(args.feature), args.provider, available, args.default))
    return await _settings(session, args)


async def _reset(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    if not await model_settings.reset_instance_setting(session, None, _feature(args.feature)):
        return [f"{args.feature}: the instance had no choice of its own; the catalogue's defaults apply"]
    return await _settings(session, args)


async def _group(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    group = await namespaces.get_group(session, args.path)
    catalogue, selection = get_catalogue(), await load_selection(session)
    lines = []
    for name in catalogue.feature_settings:
        own = levels(catalogue, selection, name, group.ancestor_paths)[-1]
        chosen = (own.choice or "(inherits)") + (" STALE: no longer offered, ignored" if own.stale else "")
        lines.append(f"{name:<32} {chosen:<40} offered {','.join(own.offered) or '-'}")
    return lines


async def _choose(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    group = await namespaces.get_group(session, args.path)
    _checked(await model_settings.update_namespace_setting(session, None, get_catalogue(), group, _feature(args.feature), args.ref))
    return await _group(session, args)


async def _resolve(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    paths = (await namespaces.get_group(session, args.group)).ancestor_paths if args.group else []
    flags = {name: True for name in args.flag or []}
    found = resolve(get_catalogue(), await load_selection(session), _feature(args.feature), paths, flags)
    stale = f" (stale choices ignored: {', '.join(found.stale)})" if found.stale else ""
    return [f"{found.ref or 'disabled'} from {found.source}{stale}"]


def _describe(row: SelfHostedModel) -> str:
    token = "token set" if row.encrypted_api_token else "no token"
    return f"{row.ref:<16} {row.name:<24} {row.model:<8} {row.identifier} at {row.endpoint} ({token})"


async def _models(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    return [_describe(row) for row in await session.scalars(select(SelfHostedModel).order_by(SelfHostedModel.id))]


async def _model(session: AsyncSession, ref: str) -> SelfHostedModel:
    row = await session.get(SelfHostedModel, int(ref.removeprefix("self_hosted_"))) if ref.removeprefix("self_hosted_").isdigit() else None
    if row is None:
        refs = [f"self_hosted_{id_}" for id_ in await session.scalars(select(SelfHostedModel.id).order_by(SelfHostedModel.id))]
        raise InvalidInput(None, f"no self-hosted model {ref!r}; registered: {', '.join(refs) or 'none'}")
    return row


async def _create(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    row, errors = await model_settings.create_self_hosted_model(
        session, None, get_catalogue(), secret_box(args.settings), name=args.name, model=args.model,
        endpoint=args.endpoint, identifier=args.identifier, api_token=args.api_token)
    _checked(errors)
    assert row is not None
    return [_describe(row)]


async def _update(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    row = await _model(session, args.ref)
    changes = {"name": args.name, "model": args.model, "endpoint": args.endpoint, "identifier": args.identifier,
               "api_token": args.api_token}
    _checked(await model_settings.update_self_hosted_model(session, None, get_catalogue(), secret_box(args.settings), row, changes))
    return [_describe(row)]


async def _delete(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    row = await _model(session, args.ref)
    _checked(await model_settings.delete_self_hosted_model(session, None, get_catalogue(), row))
    return [f"deleted {args.ref}"]


async def _audit(session: AsyncSession, args: argparse.Namespace) -> list[str]:
    query = select(ModelSelectionAuditEvent).order_by(ModelSelectionAuditEvent.id.desc()).limit(args.limit)
    return [json.dumps({"at": e.created_at.isoformat(), "author": e.author_name, "action": e.action, "target": e.target,
                        "before": e.before, "after": e.after}) for e in await session.scalars(query)]


def _model_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument("--name", required=required, help="a unique name shown to users")
    parser.add_argument("--model", required=required, help="its family in models.yml: llama3, mistral, gpt")
    parser.add_argument("--endpoint", required=required, help="the OpenAI-compatible base URL, usually ending in /v1")
    parser.add_argument("--identifier", required=required, help="the name the server serves the model under")
    parser.add_argument("--api-token", help="sent as a Bearer token; stored encrypted" + ("" if required else "; '' removes it"))


def register(commands: Any) -> None:
    """Add `models` to `switchboard`."""
    group = subcommands(commands, "models", "model selection: instance settings, group choices, self-hosted models")
    command(group.add_parser("settings", help="the instance's provider, default and available models per feature setting"), _settings)
    change = group.add_parser("set", help="set a feature setting's provider, available models and default")
    change.add_argument("feature")
    change.add_argument("--provider", required=True, choices=PROVIDER_KINDS)
    change.add_argument("--available", help="model references, comma-separated (default: the default alone)")
    change.add_argument("--default", help="the default model (required unless the provider is disabled)")
    command(change, _set)
    reset = group.add_parser("reset", help="forget the instance's choice for a feature setting: the catalogue's "
                             "default and models apply again (and a guarded migration can reach actors)")
    reset.add_argument("feature")
    command(reset, _reset)
    show = group.add_parser("group", help="a group's choices and what it is offered")
    show.add_argument("path")
    command(show, _group)
    choose = group.add_parser("choose", help="a group's choice for a feature setting; without REF it inherits")
    choose.add_argument("path")
    choose.add_argument("feature")
    choose.add_argument("ref", nargs="?")
    command(choose, _choose)
    explain = group.add_parser("resolve", help="which model would answer a feature setting, and why")
    explain.add_argument("feature")
    explain.add_argument("--group", help="the resource's group (full path)")
    explain.add_argument("--flag", action="append", help="a migration flag to count as enabled for the actor")
    command(explain, _resolve)
    hosted = group.add_parser("self-hosted", help="self-hosted models").add_subparsers(dest="hosted", required=True, metavar="ACTION")
    command(hosted.add_parser("list", help="every registered self-hosted model (tokens are never shown)"), _models)
    create = hosted.add_parser("create", help="register a self-hosted model")
    _model_options(create, required=True)
    command(create, _create)
    update = hosted.add_parser("update", help="change a self-hosted model")
    update.add_argument("ref", help="self_hosted_<id>")
    _model_options(update, required=False)
    command(update, _update)
    delete = hosted.add_parser("delete", help="delete a self-hosted model no feature setting offers")
    delete.add_argument("ref", help="self_hosted_<id>")
    command(delete, _delete)
    audit = group.add_parser("audit", help="changes of model selection settings, newest first (JSON lines)")
    audit.add_argument("--limit", type=int, default=50)
    command(audit, _audit)
    add_migrate(group, "model")
