"""What prompts are given: resources read from a real seeded database, inputs normalized, and every
feature's prompt rendered for every model family it may meet."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from catalogue import FEATURES, get_catalogue, get_feature
from core.actions import ActionRecord
from core.db import create_engine, session_factory
from core.ids import GlobalID, new_request_id
from worker.prompt_variables import (
    MAX_TEXT_CHARS,
    ResourceContext,
    _cut,
    describe_resource,
    prompt_variables,
)

SAMPLE_INPUTS: dict[str, object] = {
    "content": "the user's text",
    "code": "print('hi')",
    "question": "how do I revert?",
    "description_template_name": "Bug",
    "include_source_code": True,
    "current_file": {"file_name": "app/main.py", "selected_text": "def main(): ...", "content_above_cursor": None},
    "additional_context": [{"category": "snippet", "id": "s1", "content": "SNIPPET BODY", "metadata": None}],
}
RESOURCE_OF = {"Issue": "issue", "MergeRequest": "merge_request", "Epic": "epic", "Vulnerability": "vulnerability"}


async def describe(database_url: str, gid: str) -> ResourceContext | None:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            return await describe_resource(session, GlobalID.parse(gid, argument="resourceId"))
    finally:
        await engine.dispose()


async def test_an_issue_with_its_human_notes_only(database_url: str, seeded: dict) -> None:
    issue = await describe(database_url, seeded["resources"]["issue"])
    assert issue is not None and issue.type == "Issue" and issue.reference == "gitlab-duo/test#1"
    assert [note.author for note in issue.notes] == ["alice", "bob", "carol"]  # the system note is left out
    assert all(note.body and note.created_at for note in issue.notes)
    assert issue.diff == "" and issue.severity == ""


async def test_a_merge_request_with_its_diff_and_branches(database_url: str, seeded: dict) -> None:
    mr = await describe(database_url, seeded["resources"]["merge_request"])
    assert mr is not None and mr.reference == "gitlab-duo/test!1"
    assert mr.diff.startswith("diff --git") and mr.source_branch and mr.target_branch == "main"
    assert mr.notes


async def test_a_vulnerability_with_where_it_is(database_url: str, seeded: dict) -> None:
    vulnerability = await describe(database_url, seeded["resources"]["vulnerability"])
    assert vulnerability is not None and vulnerability.severity == "high"
    assert vulnerability.file and vulnerability.start_line and vulnerability.code and vulnerability.title


@pytest.mark.parametrize(("gid", "reference"), [("gid://gitlab/Epic/1", "gitlab-duo&1"), ("gid://gitlab/Project/1", "gitlab-duo/test"),
                                               ("gid://gitlab/Group/2", "gitlab-duo/child")])
async def test_epics_projects_and_groups(database_url: str, seeded: dict, gid: str, reference: str) -> None:
    described = await describe(database_url, gid)
    assert described is not None and described.reference == reference and described.title


async def test_a_note_is_described_by_what_it_is_on(database_url: str, seeded: dict) -> None:
    note = await describe(database_url, "gid://gitlab/Note/1")
    assert note is not None and note.type == "Note" and note.reference == "gitlab-duo/test#1" and note.description


async def test_a_missing_resource_is_none(database_url: str, seeded: dict) -> None:
    assert await describe(database_url, "gid://gitlab/MergeRequest/999") is None


def test_long_texts_are_cut_and_marked() -> None:
    cut = _cut("x" * (MAX_TEXT_CHARS + 10))
    assert len(cut) < MAX_TEXT_CHARS + 30 and cut.endswith("[… cut: too long]")
    assert _cut("short") == "short"


async def test_prompt_variables_give_every_field_and_normalize_objects(database_url: str, seeded: dict) -> None:
    engine = create_engine(database_url)
    record = ActionRecord(request_id=new_request_id(), feature="chat", user_id=2,
                          inputs={"content": "hi", "current_file": {"file_name": "a.py", "selected_text": "x"}})
    try:
        async with session_factory(engine)() as session:
            variables = await prompt_variables(session, get_feature("chat"), record)
    finally:
        await engine.dispose()
    assert variables["resource"] is None and variables["additional_context"] is None
    assert variables["current_file"] == {"file_name": "a.py", "selected_text": "x", "content_above_cursor": "",
                                         "content_below_cursor": ""}
    assert len(str(variables["current_date"])) == 10


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # rendering does not depend on the backend
@pytest.mark.parametrize("feature_key", sorted(FEATURES))
async def test_each_feature_renders_for_every_model_family_and_uses_its_resource(
    session: AsyncSession, seeded: dict, feature_key: str
) -> None:
    feature = get_feature(feature_key)
    catalogue = get_catalogue()
    resource = None
    if feature.resource_required:
        kind = next(kind for kind in ("Vulnerability", "MergeRequest", "Issue", "Epic") if kind in feature.resource_types)
        resource = await describe_resource(session, GlobalID.parse(seeded["resources"][RESOURCE_OF[kind]], argument="r"))
        assert resource is not None
    variables = {field.name: SAMPLE_INPUTS[field.name] for field in feature.fields}
    variables |= {"resource": resource, "current_date": "2025-01-01"}
    for model in catalogue.models.values():  # every family, including self-hosted ones and the mock's base
        messages = catalogue.prompts.get(feature.prompt, model.family, feature.prompt_version).render(variables)
        text = "\n".join(content for _, content in messages)
        assert messages[-1][0] in ("user", "assistant") and text.strip()
        if resource is not None:
            assert resource.title in text or resource.reference in text, (feature_key, model.identifier)
        if feature.user_text_field:
            assert str(SAMPLE_INPUTS[feature.user_text_field]) in text
    if feature_key == "chat":
        assert "def main(): ..." in text and "SNIPPET BODY" in text
