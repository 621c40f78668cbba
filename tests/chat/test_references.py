"""How readers parse the model's references (chat/tools/references.py): every accepted form, the refusals,
and properties over generated paths and numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat.tools.references import MAX_REFERENCE_CHARS, BadReference, Reference, parse_reference
from core.ids import MAX_ID


@pytest.mark.parametrize(
    ("text", "expected", "reference"),
    [
        pytest.param("current", "Issue", Reference("Issue"), id="current"),
        pytest.param(" Current ", "Epic", Reference("Epic"), id="current-any-case"),
        pytest.param("#12", "Issue", Reference("Issue", 12), id="relative-issue"),
        pytest.param("12", "Issue", Reference("Issue", 12), id="bare-iid"),
        pytest.param("!3", "MergeRequest", Reference("MergeRequest", 3), id="relative-mr"),
        pytest.param("&4", "Epic", Reference("Epic", 4), id="relative-epic"),
        pytest.param("gitlab-duo/test#1", "Issue", Reference("Issue", 1, "gitlab-duo/test"), id="full-issue"),
        pytest.param("group/sub/project!3", "MergeRequest", Reference("MergeRequest", 3, "group/sub/project"), id="full-mr"),
        pytest.param("group&4", "Epic", Reference("Epic", 4, "group"), id="full-epic"),
        pytest.param("group/sub&4", "Epic", Reference("Epic", 4, "group/sub"), id="subgroup-epic"),
        pytest.param("`#7`", "Issue", Reference("Issue", 7), id="in-backticks"),
        pytest.param('"gitlab-duo/test#1"', "Issue", Reference("Issue", 1, "gitlab-duo/test"), id="in-quotes"),
        pytest.param("https://gitlab.example.com/group/project/-/issues/12", "Issue",
                     Reference("Issue", 12, "group/project"), id="issue-url"),
        pytest.param("http://localhost:8080/gitlab-duo/test/-/issues/1#note_3", "Issue",
                     Reference("Issue", 1, "gitlab-duo/test"), id="issue-url-fragment"),
        pytest.param("https://gitlab.com/g/p/-/work_items/9?foo=bar", "Issue", Reference("Issue", 9, "g/p"), id="work-item-url"),
        pytest.param("/gitlab-duo/test/-/issues/1", "Issue", Reference("Issue", 1, "gitlab-duo/test"), id="web-path"),
        pytest.param("https://gitlab.com/group/sub/project/-/merge_requests/3/diffs", "MergeRequest",
                     Reference("MergeRequest", 3, "group/sub/project"), id="mr-url-diffs"),
        pytest.param("https://gitlab.com/groups/group/sub/-/epics/4", "Epic", Reference("Epic", 4, "group/sub"), id="epic-url"),
        pytest.param("https://gitlab.com/group/-/epics/4", "Epic", Reference("Epic", 4, "group"), id="epic-url-short"),
        pytest.param("https://gitlab.com/groups/group/-/work_items/4", "Epic", Reference("Epic", 4, "group"), id="epic-work-item"),
        pytest.param("https://gitlab.com/group/project/-/security/vulnerabilities/5", "Vulnerability",
                     Reference("Vulnerability", 5, "group/project"), id="vulnerability-url"),
        pytest.param("5", "Vulnerability", Reference("Vulnerability", 5), id="vulnerability-id"),
        pytest.param("current", "Vulnerability", Reference("Vulnerability"), id="current-vulnerability"),
    ],
)
def test_accepted_references(text: str, expected: str, reference: Reference) -> None:
    assert parse_reference(text, expected) == reference  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected", "says"),
    [
        pytest.param("!3", "Issue", "refers to a merge request, not an issue", id="mr-for-issue-reader"),
        pytest.param("#3", "Epic", "refers to an issue, not an epic", id="issue-for-epic-reader"),
        pytest.param("gitlab-duo&1", "Issue", "refers to an epic", id="epic-for-issue-reader"),
        pytest.param("#5", "Vulnerability", "not a vulnerability", id="sigil-for-vulnerability"),
        pytest.param("https://h/g/p/-/issues/1", "MergeRequest", "refers to an issue", id="url-of-other-type"),
        pytest.param("project#1", "Issue", "lacks the project", id="no-group"),
        pytest.param("https://h/groups/g/-/issues/1", "Issue", "not the URL of a project's issue", id="issue-under-groups"),
        pytest.param("#0", "Issue", "not a valid issue number", id="zero"),
        pytest.param(f"#{MAX_ID + 1}", "Issue", "not a valid issue number", id="too-large"),
        pytest.param("", "Issue", "Give the issue as", id="empty"),
        pytest.param("``", "Issue", "Give the issue as", id="only-quotes"),
        pytest.param("x" * (MAX_REFERENCE_CHARS + 1), "Issue", "Give the issue as", id="too-long"),
        pytest.param("the login bug", "Issue", "not a reference this tool understands", id="a-description"),
        pytest.param("#1 and #2", "Issue", "not a reference", id="two-references"),
        pytest.param("https://h/g/p/-/pipelines/1", "Issue", "not a reference", id="other-page"),
        pytest.param("../../etc#1", "Issue", "not a reference", id="dot-dot"),
        pytest.param("١٢", "Issue", "not a reference", id="non-ascii-digits"),
    ],
)
def test_refused_references_say_what_to_send(text: str, expected: str, says: str) -> None:
    with pytest.raises(BadReference, match=says):
        parse_reference(text, expected)  # type: ignore[arg-type]


segment = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,15}", fullmatch=True)
paths = st.lists(segment, min_size=2, max_size=4).map("/".join)
numbers = st.integers(min_value=1, max_value=MAX_ID)


@given(path=paths, number=numbers, sigil=st.sampled_from([("#", "Issue"), ("!", "MergeRequest"), ("&", "Epic")]))
def test_full_references_round_trip(path: str, number: int, sigil: tuple[str, str]) -> None:
    symbol, kind = sigil
    assert parse_reference(f"{path}{symbol}{number}", kind) == Reference(kind, number, path)  # type: ignore[arg-type]


@given(
    path=paths,
    number=numbers,
    host=st.sampled_from(["https://gitlab.com", "http://localhost:8080", ""]),
    kind=st.sampled_from([("issues", "Issue"), ("merge_requests", "MergeRequest"),
                          ("security/vulnerabilities", "Vulnerability")]),
    tail=st.sampled_from(["", "/", "/diffs", "#note_1", "?a=b"]),
)
def test_project_urls_round_trip(path: str, number: int, host: str, kind: tuple[str, str], tail: str) -> None:
    segment_name, item = kind
    url = f"{host}/{path}/-/{segment_name}/{number}{tail}"
    assert parse_reference(url, item) == Reference(item, number, path)  # type: ignore[arg-type]


@given(text=st.text(max_size=300), expected=st.sampled_from(["Issue", "MergeRequest", "Epic", "Vulnerability"]))
def test_any_text_parses_or_is_refused_with_a_reason(text: str, expected: str) -> None:
    try:
        reference = parse_reference(text, expected)  # type: ignore[arg-type]
    except BadReference as exc:
        assert str(exc) and len(str(exc)) < 400
    else:
        assert reference.type == expected
        assert reference.number is None or 0 < reference.number <= MAX_ID
