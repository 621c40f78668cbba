"""documentation_search's index (chat/tools/documentation.py): built from the repository's README and the
Markdown of SWITCHBOARD_DOCS_DIR, split at headings, ranked by bm25, safe from FTS syntax in the query; and
the tool's result through `run_tool` (passages with their sources, M2000 when nothing is found)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.tools import DocumentationIndex, Passage, default_paths
from chat.tools.documentation import MAX_PASSAGE_CHARS, PROJECT_ROOT, search_terms
from core.errors import NO_DOCUMENTATION
from core.settings import Settings
from tests.chat.test_tools import Chat, chat  # noqa: F401  (the seeded world, a fixture)

GUIDE = """Intro text before any heading about the handbook.

# Handbook

## Rotating the flux capacitor

Turn the flux capacitor counter-clockwise every 88 days; it keeps the chronometer calibrated.

```sh
# this is a comment in code, not a heading
rotate --flux --degrees 90
```

## Rotating the flux capacitor

A second section with the same heading mentions the plutonium supply.

### `SWITCHBOARD_DOCS_DIR` and [links](https://example.com)

Markdown under SWITCHBOARD_DOCS_DIR is indexed too, like the quasar manual.
"""


@pytest.fixture
def handbook(tmp_path: Path) -> Path:
    folder = tmp_path / "handbook"
    (folder / "ops").mkdir(parents=True)
    (folder / "guide.md").write_text(GUIDE)
    (folder / "ops" / "long.md").write_text("# Long\n\n" + "\n\n".join(f"Paragraph {i} about zeppelins. " * 20 for i in range(40)))
    (folder / "notes.txt").write_text("zeppelins zeppelins: not Markdown, not indexed")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "secret.md").write_text("# Secret\n\nzeppelins in a hidden folder")
    return folder


@pytest.fixture
async def index(handbook: Path) -> AsyncIterator[DocumentationIndex]:
    built = await DocumentationIndex.build(default_paths(Settings(docs_dir=handbook)))
    try:
        yield built
    finally:
        built.close()


def test_default_paths_are_the_readme_and_the_docs_dir(handbook: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert PROJECT_ROOT / "README.md" in default_paths(Settings(docs_dir=None))
    assert handbook not in default_paths(Settings(docs_dir=None))
    monkeypatch.setenv("SWITCHBOARD_DOCS_DIR", str(handbook))
    assert default_paths(Settings())[-1] == handbook


async def test_a_readme_passage_is_found_with_its_source(index: DocumentationIndex) -> None:
    passages = await index.search("embedded Redis data directory")
    assert passages and all(isinstance(p, Passage) for p in passages)
    readme = [p for p in passages if p.file == "README.md"]
    assert readme, passages
    first = readme[0]
    assert first.url == f"README.md#{first.anchor}" and first.anchor
    assert f"## {first.title}" in (PROJECT_ROOT / "README.md").read_text() or f"# {first.title}" in (
        PROJECT_ROOT / "README.md").read_text()
    assert first.source() == {"title": first.title, "url": first.url, "type": "documentation"}
    assert re.search(r"redis", first.text, re.IGNORECASE)


async def test_a_docs_dir_passage_is_found_by_its_heading_with_a_github_anchor(index: DocumentationIndex) -> None:
    (best, *_) = await index.search("flux capacitor rotation")
    assert (best.title, best.file, best.anchor) == ("Rotating the flux capacitor", "handbook/guide.md",
                                                    "rotating-the-flux-capacitor")
    assert "88 days" in best.text and "rotate --flux" in best.text  # code blocks stay in their section
    (second,) = await index.search("plutonium")
    assert second.anchor == "rotating-the-flux-capacitor-1"  # a repeated heading, as GitHub numbers it
    (docs_dir,) = await index.search("quasar")
    assert docs_dir.anchor == "switchboard_docs_dir-and-links" and docs_dir.title.startswith("`SWITCHBOARD_DOCS_DIR`")
    (intro,) = await index.search("handbook intro")
    assert (intro.title, intro.url) == ("guide.md", "handbook/guide.md")
    titles = {p.title for p in await index.search("comment heading", limit=50)}
    assert "this is a comment in code, not a heading" not in titles  # a `#` line in a code block


async def test_only_markdown_outside_hidden_folders_is_indexed_and_long_sections_are_split(
    index: DocumentationIndex,
) -> None:
    passages = await index.search("zeppelins", limit=50)
    assert {p.file for p in passages} == {"handbook/ops/long.md"}
    assert len(passages) > 1 and all(len(p.text) <= MAX_PASSAGE_CHARS for p in passages)
    assert len(await index.search("zeppelins")) == 5  # the default limit


async def test_ranking_prefers_passages_with_more_of_the_words(index: DocumentationIndex) -> None:
    (best, *_) = await index.search("plutonium flux capacitor supply")
    assert "plutonium" in best.text


@pytest.mark.parametrize(
    "query",
    ['"', '"unbalanced', "*", "flux*", "NEAR(", "NEAR(flux capacitor, 2)", "OR", "flux OR", "AND NOT", "title:flux",
     "(((", "^flux", "-flux", "{flux}", "flux + capacitor", "'; DROP TABLE passages; --", "\x00", "ünïcödé flux"],
)
async def test_hostile_fts_input_does_not_raise(index: DocumentationIndex, query: str) -> None:
    passages = await index.search(query)
    if "flux" in query:
        assert passages and "flux" in passages[0].text.lower()


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=200))
async def test_any_text_is_a_safe_query(index: DocumentationIndex, query: str) -> None:
    assert len(await index.search(query)) <= 5


def test_search_terms() -> None:
    assert search_terms('How do I "rotate" the FLUX capacitor?') == ["rotate", "flux", "capacitor"]
    assert search_terms("what is it") == ["what", "is", "it"]  # only common words: they are kept
    assert search_terms(" ?! *") == []
    assert len(search_terms(" ".join(f"w{i}" for i in range(100)))) == 32


async def test_an_empty_index_finds_nothing() -> None:
    empty = await DocumentationIndex.build([Path("/nonexistent/docs")])
    try:
        assert empty.size == 0 and await empty.search("anything") == []
    finally:
        empty.close()


async def test_the_tool_returns_passages_with_sources(chat: Chat, index: DocumentationIndex) -> None:  # noqa: F811
    chat.docs = index
    result = await chat.call("bob", "documentation_search", {"query": "flux capacitor"})
    assert result.status == "FINISHED"
    assert result.content.startswith('<passage title="Rotating the flux capacitor" source="handbook/guide.md#rotating-the-flux-capacitor">')
    assert "88 days" in result.content
    assert result.sources[0] == {"title": "Rotating the flux capacitor",
                                 "url": "handbook/guide.md#rotating-the-flux-capacitor", "type": "documentation"}
    assert len(result.sources) == len(set(s["url"] for s in result.sources)) <= 5
    readme = await chat.call("alice", "documentation_search", {"query": "SWITCHBOARD_DOCS_DIR documentation_search"})
    assert readme.status == "FINISHED" and any(s["url"].startswith(("README.md#", "handbook/")) for s in readme.sources)
    nothing = await chat.call("bob", "documentation_search", {"query": "xylophonist quokka"})
    assert (nothing.status, nothing.content, nothing.sources) == ("FINISHED", NO_DOCUMENTATION, ())
