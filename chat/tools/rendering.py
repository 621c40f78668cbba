"""An item as a reader tool shows it to the model: compact XML-ish text (values escaped, so that nothing an
item contains can close or open a tag), and the item as a source `{title, url, type}` with its web path.

Parts come in the order a cut hurts least: what the item is, its description, the human notes, and the
merge request's diff (or the vulnerable code) last; `chat.tools.context.capped` cuts the whole.
"""

from __future__ import annotations

from html import escape

from sqlalchemy.ext.asyncio import AsyncSession

from access.reading import resource_notes
from core.tables import Epic, Issue, MergeRequest, Project, Vulnerability

__all__ = ["Item", "reference_of", "render_item", "source_of", "web_path"]

Item = Issue | MergeRequest | Epic | Vulnerability
_TYPES = {Issue: "issue", MergeRequest: "merge_request", Epic: "epic", Vulnerability: "vulnerability"}


def _project_path(project: Project) -> str:
    return f"{project.group.full_path}/{project.path}"


def reference_of(item: Item) -> str:
    """GitLab's full reference: `group/project#1`, `group/project!1`, `group&1`; a vulnerability's
    `group/project` + its ID."""
    match item:
        case Issue():
            return f"{_project_path(item.project)}#{item.iid}"
        case MergeRequest():
            return f"{_project_path(item.project)}!{item.iid}"
        case Epic():
            return f"{item.group.full_path}&{item.iid}"
        case Vulnerability():
            return f"{_project_path(item.project)} vulnerability {item.id}"


def web_path(item: Item) -> str:
    """The item's page: `/group/project/-/issues/1`, `/groups/group/-/epics/1`, …"""
    match item:
        case Issue():
            return f"/{_project_path(item.project)}/-/issues/{item.iid}"
        case MergeRequest():
            return f"/{_project_path(item.project)}/-/merge_requests/{item.iid}"
        case Epic():
            return f"/groups/{item.group.full_path}/-/epics/{item.iid}"
        case Vulnerability():
            return f"/{_project_path(item.project)}/-/security/vulnerabilities/{item.id}"


def source_of(item: Item) -> dict[str, str]:
    return {"title": item.title, "url": web_path(item), "type": _TYPES[type(item)]}


def _tag(name: str, text: object, **attributes: object) -> str:
    shown = "".join(f' {key}="{escape(str(value))}"' for key, value in attributes.items() if value is not None)
    return f"<{name}{shown}>{escape(str(text), quote=False)}</{name}>"


async def render_item(session: AsyncSession, item: Item) -> str:
    """The item for the model to read (loads its author and human notes)."""
    kind = _TYPES[type(item)]
    head: dict[str, object] = {"reference": reference_of(item), "url": web_path(item)}
    parts: list[str] = [_tag("title", item.title)]
    match item:
        case Issue() | Epic():
            head["confidential"] = str(item.confidential).lower()
        case MergeRequest():
            parts.append(_tag("source_branch", item.source_branch))
            parts.append(_tag("target_branch", item.target_branch))
        case Vulnerability():
            head["severity"] = item.severity
            head["report_type"] = item.report_type
            location = item.file if item.start_line is None else f"{item.file}:{item.start_line}"
            parts.append(_tag("location", location))
    if not isinstance(item, Vulnerability):
        author = await item.awaitable_attrs.author
        parts.append(_tag("author", author.username))
    parts.append(_tag("description", item.description))
    notes = await resource_notes(session, item)
    if notes:
        comments = (_tag("comment", note.body, author=note.author.username, created_at=note.created_at.isoformat(timespec="seconds"))
                    for note in notes)
        parts.append("<comments>\n" + "\n".join(comments) + "\n</comments>")
    if isinstance(item, MergeRequest):
        parts.append(_tag("diff", item.diff))
    if isinstance(item, Vulnerability):
        parts.append(_tag("code", item.code))
    opening = "".join(f' {key}="{escape(str(value))}"' for key, value in head.items())
    return f"<{kind}{opening}>\n" + "\n".join(parts) + f"\n</{kind}>"
