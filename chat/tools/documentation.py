"""`documentation_search`: full-text search over the project's own documentation and the Markdown in
`SWITCHBOARD_DOCS_DIR` (SPEC §13.3).

The index is SQLite FTS5 (the standard `sqlite3` module; porter stemming over unicode61 tokens) in memory,
built once per process off the event loop (`DocumentationIndex.build`). Markdown files are split into
passages at their headings (fenced code blocks are not headings; a long section becomes several passages),
each with its source: the file, relative to the folder given (`README.md`, `docs/setup.md`,
`handbook/guide.md`), and the heading's anchor as GitHub and GitLab write it.

Search ranks by bm25 (headings weigh more than text). The user's text never reaches FTS syntax: it is cut
into words, each quoted as an FTS string and OR-ed, common English words dropped, so `"`, `*`, `NEAR(` or
`OR` are just text. A query without words fails; nothing found is GitLab's M2000 text as a FINISHED result
(the search worked and found nothing; the model says so).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from catalogue.tools import Tool
from chat.tools.context import ToolContext, ToolResult, capped, failed
from core.errors import NO_DOCUMENTATION
from core.settings import Settings

__all__ = ["PROJECT_ROOT", "DocumentationIndex", "Passage", "default_paths", "search_documentation", "search_terms"]

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MAX_PASSAGE_CHARS = 3_000  # a longer section is split at paragraphs; what the model reads of each hit
MAX_FILE_BYTES = 2_000_000
MAX_TERMS = 32
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*(?:#+[ \t]*)?$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it my of on or so that the this to was what "
    "when where which who why will with you your".split()
)


@dataclass(frozen=True, slots=True)
class Passage:
    """One section (or part of one) of a Markdown file, as search returns it."""

    title: str  # the section's heading (the file's name before the first heading)
    file: str  # relative to the folder given, or the file's name
    anchor: str  # "" before the first heading
    text: str
    snippet: str = ""  # the words around the hits, when it comes from a search

    @property
    def url(self) -> str:
        return f"{self.file}#{self.anchor}" if self.anchor else self.file

    def source(self) -> dict[str, str]:
        return {"title": self.title, "url": self.url, "type": "documentation"}


def default_paths(settings: Settings) -> list[Path]:
    """What the chat's documentation index covers: the repository's README.md and docs/ (found from the
    package's location; absent from an installed wheel), and `SWITCHBOARD_DOCS_DIR` when set."""
    paths = [path for path in (PROJECT_ROOT / "README.md", PROJECT_ROOT / "docs") if path.exists()]
    if settings.docs_dir is not None:
        paths.append(settings.docs_dir)
    return paths


def search_terms(query: str) -> list[str]:
    """The words of `query` to look for, lower-cased and de-duplicated; common words only when nothing else
    remains."""
    words = list(dict.fromkeys(word.lower() for word in _WORD.findall(query)))
    meaningful = [word for word in words if word not in _STOPWORDS]
    return (meaningful or words)[:MAX_TERMS]


class DocumentationIndex:
    """An in-memory FTS5 index of passages; `search` is safe from any task (one connection, one lock, run in
    a thread)."""

    def __init__(self, connection: sqlite3.Connection, size: int) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self.size = size  # passages indexed

    @classmethod
    async def build(cls, paths: Sequence[Path]) -> DocumentationIndex:
        """Index every Markdown file in `paths` (files, or folders searched recursively), off the loop."""
        return await asyncio.to_thread(cls.build_now, paths)

    @classmethod
    def build_now(cls, paths: Sequence[Path]) -> DocumentationIndex:
        """`build`, blocking (for callers off the event loop)."""
        connection = sqlite3.connect(":memory:", check_same_thread=False)
        try:
            connection.execute(
                "CREATE VIRTUAL TABLE passages USING fts5("
                "title, body, file UNINDEXED, anchor UNINDEXED, tokenize = 'porter unicode61')"
            )
        except sqlite3.OperationalError as exc:
            connection.close()
            raise RuntimeError(f"this Python's SQLite has no FTS5, which documentation_search needs: {exc}") from exc
        rows = [(p.title, p.text, p.file, p.anchor) for name, path in _markdown_files(paths) for p in _passages(name, path)]
        with connection:
            connection.executemany("INSERT INTO passages (title, body, file, anchor) VALUES (?, ?, ?, ?)", rows)
        logger.info("documentation index built: %d passages from %d paths", len(rows), len(paths))
        return cls(connection, len(rows))

    async def search(self, query: str, limit: int = 5) -> list[Passage]:
        """The best passages for the words of `query`, best first (none for a query without words)."""
        terms = search_terms(query)
        if not terms or limit <= 0:
            return []
        match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
        return await asyncio.to_thread(self._search, match, limit)

    def _search(self, match: str, limit: int) -> list[Passage]:
        sql = (
            "SELECT title, file, anchor, body, snippet(passages, 1, '', '', ' … ', 32) FROM passages "
            "WHERE passages MATCH ? ORDER BY bm25(passages, 4.0, 1.0) LIMIT ?"
        )
        with self._lock:
            rows = self._connection.execute(sql, (match, limit)).fetchall()
        return [Passage(title, file, anchor, body, snippet) for title, file, anchor, body, snippet in rows]

    def close(self) -> None:
        with self._lock:
            self._connection.close()


async def search_documentation(context: ToolContext, tool: Tool, arguments: Mapping[str, object]) -> ToolResult:
    """The handler of `documentation_search`: the top passages with their sources."""
    query = str(arguments["query"])
    if not search_terms(query):
        return failed("The query has no words to search for: give the key words of the question.")
    passages = await context.docs.search(query)
    if not passages:
        return ToolResult(NO_DOCUMENTATION, "FINISHED")
    shown = "\n".join(
        f'<passage title="{_attribute(p.title)}" source="{_attribute(p.url)}">\n{p.text}\n</passage>' for p in passages
    )
    sources = tuple(dict.fromkeys(tuple(p.source().items()) for p in passages))
    return ToolResult(capped(shown), "FINISHED", tuple(dict(source) for source in sources))


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def _markdown_files(paths: Sequence[Path]) -> Iterator[tuple[str, Path]]:
    """(name shown in sources, path) of each Markdown file: a file given is named by its own name, one found
    in a folder by its path from the folder's parent (`docs/setup.md`). Hidden folders are skipped, symlinked
    folders not followed."""
    for path in paths:
        if path.is_file():
            yield path.name, path
        elif path.is_dir():
            for folder, subfolders, files in os.walk(path):
                subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
                for name in sorted(files):
                    if name.lower().endswith((".md", ".markdown")):
                        found = Path(folder) / name
                        yield found.relative_to(path.parent).as_posix(), found
        else:
            logger.warning("documentation path %s does not exist; not indexed", path)


def _passages(name: str, path: Path) -> Iterator[Passage]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            logger.warning("documentation file %s is over %d bytes; not indexed", path, MAX_FILE_BYTES)
            return
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        logger.warning("documentation file %s cannot be read: %s", path, exc)
        return
    for title, anchor, body in _sections(text, Path(name).name):
        for part in _parts(body):
            yield Passage(title, name, anchor, part)


def _sections(text: str, file_title: str) -> Iterator[tuple[str, str, str]]:
    """(heading, anchor, text) of each section with text; the part before the first heading is titled by the
    file's name."""
    title, anchor, fence = file_title, "", ""
    lines: list[str] = []
    seen: dict[str, int] = {}
    for line in text.splitlines():
        if fence_match := _FENCE.match(line):
            marker = fence_match.group(1)
            if not fence:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = ""
        elif not fence and (heading := _HEADING.match(line)):
            if "\n".join(lines).strip():
                yield title, anchor, "\n".join(lines).strip()
            title, lines = heading.group(2).strip(), []
            anchor = _anchor(title, seen)
            continue
        lines.append(line)
    if "\n".join(lines).strip():
        yield title, anchor, "\n".join(lines).strip()


def _anchor(heading: str, seen: dict[str, int]) -> str:
    """GitHub's and GitLab's anchor of a heading: lower case, punctuation dropped, spaces as hyphens; a
    repeated one gets -1, -2, …"""
    plain = re.sub(r"[`*~]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading)
    slug = re.sub(r"[^\w\- ]", "", plain.lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return slug if count == 0 else f"{slug}-{count}"


def _parts(body: str) -> Iterator[str]:
    """`body` in pieces of at most MAX_PASSAGE_CHARS, split at blank lines where possible."""
    part = ""
    for paragraph in re.split(r"\n\s*\n", body):
        while len(paragraph) > MAX_PASSAGE_CHARS:
            if part:
                yield part
                part = ""
            yield paragraph[:MAX_PASSAGE_CHARS]
            paragraph = paragraph[MAX_PASSAGE_CHARS:]
        if part and len(part) + 2 + len(paragraph) > MAX_PASSAGE_CHARS:
            yield part
            part = ""
        part = f"{part}\n\n{paragraph}" if part else paragraph
    if part.strip():
        yield part
