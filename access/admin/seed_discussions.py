"""The discussions the seed adds for the evaluation datasets (SPEC §11, §15): issues and merge requests of
`gitlab-duo/test` with realistic human comments — a crash with its stack trace, a feature debate, a
performance regression, a flaky test, a security question, a memory leak, ... — so that summaries and chat
answers about them have something real to work on.

Each one has a fixed ID (its iid too) and a key in the seed document's `resources`; their notes take fixed
IDs in declaration order from `FIRST_NOTE_ID` on, so entries are only ever appended. Timestamps are fixed
as well, so prompts rendered from them are the same on every machine (the evaluation cache keys on them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["Discussion", "FIRST_NOTE_ID", "ISSUES", "MERGE_REQUESTS", "note_times"]

FIRST_NOTE_ID = 8  # notes 1-7 belong to the first issue, merge request and epic


@dataclass(frozen=True)
class Discussion:
    """An issue or a merge request (with `branch` and `diff`) and its comments, oldest first; a comment
    whose author starts with `system:` is a system note by that user."""

    key: str
    id: int
    title: str
    description: str
    author: str
    opened: datetime
    notes: tuple[tuple[str, str], ...] = ()
    branch: str = ""
    diff: str = ""


def note_times(discussion: Discussion) -> list[datetime]:
    """When each comment was written: hours apart after the discussion was opened."""
    return [discussion.opened + timedelta(hours=3 * n + 1, minutes=11 * n) for n in range(len(discussion.notes))]


def _at(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, 0, tzinfo=UTC)


ISSUES: tuple[Discussion, ...] = (
    Discussion(
        "issue_stack_trace", 3, "Webhook handler crashes with KeyError: 'object_attributes'",
        "Since the upgrade to 2.3.0 the webhook endpoint answers 500 for some events:\n\n"
        "```\nTraceback (most recent call last):\n"
        '  File "/app/hooks/views.py", line 42, in receive\n'
        "    handler = HANDLERS[event](payload)\n"
        '  File "/app/hooks/handlers.py", line 18, in route\n'
        '    kind = payload["object_attributes"]["action"]\n'
        "KeyError: 'object_attributes'\n```\n\n"
        "About 40 failures a day in the error tracker; GitLab retries each delivery three times.",
        "bob", _at(2, 9),
        (
            ("bob", "The failing payloads are all push events. Only issue and merge request events carry "
                    "`object_attributes`; `route()` assumes every event has it since the refactoring in 2.3.0."),
            ("carol", "Confirmed: the header is `X-Gitlab-Event: Push Hook` in all 37 failures of the last 24 hours. "
                      "Before 2.3.0 the router dropped push events before `route()` was called."),
            ("alice", "Let's dispatch on the `X-Gitlab-Event` header and answer 204 for events we don't handle, rather "
                      "than catching the KeyError. Carol, can you take it? Target: 2.3.1 this week."),
            ("carol", "On it. I'll add a test with a recorded push payload so that this cannot come back."),
        ),
    ),
    Discussion(
        "issue_feature_debate", 4, "Per-project rate limits for AI actions",
        "Today AI actions are limited per user only. A project whose CI script calls `aiAction` in a loop can use "
        "up the whole instance's provider quota. Proposal: an optional limit of AI actions per project and hour, "
        "set by maintainers.",
        "bob", _at(3, 10),
        (
            ("bob", "Context: last Tuesday one project's nightly job sent 18,000 explain-code requests in two hours "
                    "and everyone else got 429s from the provider until the quota reset."),
            ("alice", "I see the need, but per-project settings mean a UI, an API and a cascade from the group. Could "
                      "a group-level limit inherited by projects cover it with less work?"),
            ("carol", "Whatever the level, the default must be 'no limit', or the upgrade breaks people who run "
                      "large pipelines on purpose."),
            ("root", "From the operations side: we can't choose a sensible limit without data. We don't even have "
                     "per-project request counts today. Metrics first, then limits?"),
            ("alice", "Agreed: phase 1 is a per-project request counter in the metrics (Bob, for 2.4); we look at two "
                      "weeks of data and then decide between group and project limits. Open question: does chat "
                      "count against the same budget?"),
        ),
    ),
    Discussion(
        "issue_performance_regression", 5, "p95 latency of aiAction doubled after 1.8.0",
        "After deploying 1.8.0 the p95 latency of the `aiAction` mutation went from 180 ms to 410 ms on "
        "production; p50 moved from 60 ms to 95 ms. Nothing else changed in the deployment.",
        "root", _at(4, 8),
        (
            ("carol", "Bisected on staging: the regression comes with the commit that loads feature flags per "
                      "request. The 5-second flag cache is bypassed since then."),
            ("bob", "The flame graph agrees: 60 % of the time in `FlagStore.load`, one SELECT per flag, 14 flags, so "
                    "14 queries on every request."),
            ("alice", "Two fixes then: restore the cache, and read all flags in one query. And a benchmark under "
                      "`bench/` so that the next regression like this shows up before a release."),
            ("carol", "The cache is restored on branch `restore-flag-cache`: p95 is back to 190 ms on staging."),
            ("bob", "I'll do the single-query change separately; it's less urgent now that the cache is back."),
        ),
    ),
    Discussion(
        "issue_flaky_test", 6, "test_subscription_resumes_after_reconnect is flaky",
        "The test fails in about 1 of 20 pipelines:\n\n"
        "```\n>       assert [c.content for c in chunks] == ['Hello', ' world', '!']\n"
        "E       AssertionError: assert ['Hello', ' world'] == ['Hello', ' world', '!']\n"
        "tests/subscriptions/test_reconnect.py:57: AssertionError\n```\n\n"
        "Retrying the job always passes.",
        "carol", _at(5, 14),
        (
            ("system:alice", 'added ~"flaky-test" label'),
            ("bob", "The test sleeps `asyncio.sleep(0.1)` to wait for the subscriber before it publishes. On a busy "
                    "runner 100 ms is not always enough, so the last chunk is published before anyone listens."),
            ("carol", "Reproduced locally with `stress -c 4` next to pytest: 9 failures in 50 runs."),
            ("alice", "Please don't just raise the sleep: wait for the subscription's ready event instead. Until the "
                      "fix lands, quarantine the test so it stops blocking merges."),
            ("bob", "Quarantined. The fix that awaits the ready event is on branch `await-subscription-ready`; "
                    "200 runs under stress, no failure."),
        ),
    ),
    Discussion(
        "issue_security_question", 7, "Are provider API keys stored encrypted at rest?",
        "A customer's security review asks: where are the LLM provider API keys stored, are they encrypted at "
        "rest, can they appear in logs, and how are they rotated?",
        "alice", _at(6, 11),
        (
            ("alice", "Instance-wide keys come from the environment and are never written to the database. Keys "
                      "of self-hosted model endpoints are stored in the database, encrypted with AES-GCM under a "
                      "key derived from the instance secret."),
            ("root", "Logs: the `Authorization` and `x-api-key` headers are redacted. I searched the last 30 days "
                     "of logs for key prefixes and found none."),
            ("carol", "Gap: rotation. If the instance secret changes, the stored keys can no longer be decrypted and "
                      "there is no command to re-encrypt them."),
            ("alice", "Answer for the review: encrypted at rest, redacted in logs, rotation is a known gap. Carol "
                      "opens an issue for a re-encryption command; I reply to the customer by Friday."),
        ),
    ),
    Discussion(
        "issue_dependency_upgrade", 8, "Upgrade SQLAlchemy to 2.1",
        "SQLAlchemy 2.1 is in beta. We should know early what breaks.",
        "bob", _at(9, 9),
        (
            ("bob", "The test suite passes on 2.1.0b1 with two new deprecation warnings, both in old migrations "
                    "that import `declarative_base` from the legacy location."),
            ("carol", "We need asyncpg 0.30 for Python 3.13 anyway. Can we do both upgrades in one merge request?"),
            ("alice", "Separate merge requests, please, so that either can be reverted alone. And let's wait for "
                      "2.1.0 final before merging the SQLAlchemy one."),
        ),
    ),
    Discussion(
        "issue_docs_self_hosted", 9, "Document running with a self-hosted vLLM model",
        "Several people asked how to point Switchboard at a model served by vLLM. The README only covers "
        "Anthropic and Google.",
        "carol", _at(10, 13),
        (
            ("carol", "What worked for me: start vLLM with `--served-model-name`, add the model to `models.yml` "
                      "with provider `openai_compatible` and its base URL. The catch: chat tools need vLLM's "
                      "`--enable-auto-tool-choice`."),
            ("bob", "Please also mention the context length: most self-hosted models accept far fewer tokens than "
                    "our default, so `max_context_tokens` must be set to the model's real limit."),
        ),
    ),
    Discussion(
        "issue_memory_leak", 10, "Worker memory grows by about 300 MB a day",
        "The resident memory of every worker grows steadily, about 300 MB a day, and never goes down, even "
        "at night when there is no traffic.",
        "root", _at(11, 7),
        (
            ("bob", "tracemalloc's top entries are read buffers in `redis/asyncio/connection.py`, and the number "
                    "of open Redis connections per worker grows along with the memory."),
            ("carol", "Found it: when a chat stream is cancelled, the stream reader's `finally` block never resets "
                      "its pipeline, so the connection and its buffers are never returned to the pool."),
            ("alice", "Is this why the workers restarted on Saturday?"),
            ("root", "Yes: four OOM kills on Saturday at the 2 GiB limit, all on workers that had served long chat "
                     "sessions. I set up a nightly restart as a stop-gap."),
            ("carol", "!2 resets the pipeline in `finally`. After 12 hours of the load test memory is flat at "
                      "410 MB."),
            ("alice", "Great. Keep the nightly restart until 2.3.2 is deployed, then remove it. root, can you add "
                      "an alert when a worker passes 1.5 GiB?"),
        ),
    ),
    Discussion(
        "issue_ux_feedback", 11, "Copying a chat answer loses the code formatting",
        "When I copy an answer from the chat and paste it into my editor, the indentation of code blocks is "
        "gone and the Python code no longer runs.",
        "carol", _at(12, 16),
        (
            ("carol", "The copy button copies the rendered text, not the Markdown, so the whitespace inside code "
                      "blocks collapses."),
            ("bob", "GitLab's chat copies the raw Markdown of the answer. Let's do the same, and add a copy button "
                    "to each code block, which is what people want most of the time."),
            ("alice", "Agreed, both. The per-block button first; it's the one users keep asking for."),
        ),
    ),
    Discussion(
        "issue_migration_failure", 12, "Database migration 0004 fails on PostgreSQL 13",
        "`switchboard migrate` stops at 0004:\n\n"
        "```\nsqlalchemy.exc.ProgrammingError: (asyncpg.exceptions.PostgresSyntaxError) "
        'syntax error at or near "NULLS"\n'
        "[SQL: CREATE UNIQUE INDEX ix_namespace_models ON namespace_models "
        "(namespace_id, feature_setting) NULLS NOT DISTINCT]\n```",
        "bob", _at(13, 10),
        (
            ("bob", "`NULLS NOT DISTINCT` exists only since PostgreSQL 15; we test on 16 only."),
            ("carol", "Our documentation promises PostgreSQL 13 until the end of the year, so we must keep it "
                      "working."),
            ("alice", "Two options: two partial unique indexes (one for NULL namespaces, one for the others), or "
                      "raising the minimum to 15. I prefer partial indexes: some customers are still on 13."),
            ("bob", "Partial indexes it is, in !4. Tested on PostgreSQL 13, 15 and 16, and the CI matrix now "
                    "includes 13."),
        ),
    ),
    Discussion(
        "issue_without_comments", 13, "Add a --json flag to switchboard models list",
        "Scripts have to parse the table that `switchboard models list` prints. A `--json` flag printing one "
        "object per model would make that robust.",
        "carol", _at(16, 9),
    ),
)

MERGE_REQUESTS: tuple[Discussion, ...] = (
    Discussion(
        "mr_memory_leak_fix", 2, "Reset the Redis pipeline when a stream reader is cancelled",
        "Fixes the worker memory growth (#10): a cancelled reader kept its pipeline and connection forever.",
        "carol", _at(11, 15),
        (
            ("alice", "Could `reset()` itself raise when the connection is already closed? Then we would mask the "
                      "CancelledError."),
            ("carol", "It can't: on a closed connection it only clears the command stack. I added a test that "
                      "cancels the reader in the middle of a read and checks the pool's connection count."),
            ("bob", "Looks good to me, approved."),
        ),
        branch="fix-stream-reader-leak",
        diff='''diff --git a/subscriptions/streams.py b/subscriptions/streams.py
index 51c0a2e..7d9e3f4 100644
--- a/subscriptions/streams.py
+++ b/subscriptions/streams.py
@@ -31,14 +31,17 @@ async def read_chunks(redis: Redis, key: str, cursor: str) -> AsyncIterator[Chunk]:
     pipeline = redis.pipeline(transaction=False)
-    while True:
-        pipeline.xread({key: cursor}, block=15_000, count=100)
-        (entries,) = await pipeline.execute()
-        for _, batch in entries:
-            for cursor, fields in batch:
-                chunk = Chunk.from_fields(fields)
-                yield chunk
-                if chunk.final:
-                    return
+    try:
+        while True:
+            pipeline.xread({key: cursor}, block=15_000, count=100)
+            (entries,) = await pipeline.execute()
+            for _, batch in entries:
+                for cursor, fields in batch:
+                    chunk = Chunk.from_fields(fields)
+                    yield chunk
+                    if chunk.final:
+                        return
+    finally:
+        await pipeline.reset()
''',
    ),
    Discussion(
        "mr_request_metrics", 3, "Count AI actions per project",
        "Phase 1 of #4: a counter of AI actions per project and feature, so that we can choose rate limits "
        "from data.",
        "bob", _at(14, 10),
        (
            ("root", "Project IDs as a label: how many projects do we expect? High-cardinality labels hurt "
                     "Prometheus."),
            ("bob", "About 2,000 projects use AI features today. I limited the label to the top-level group "
                    "instead and we can drill down in the logs."),
        ),
        branch="ai-actions-per-group",
        diff='''diff --git a/core/metrics.py b/core/metrics.py
index 0c4d1e2..9ab3f70 100644
--- a/core/metrics.py
+++ b/core/metrics.py
@@ -22,6 +22,12 @@ AI_REQUESTS = Counter(
     ["feature", "model"],
 )
 
+AI_REQUESTS_BY_GROUP = Counter(
+    "ai_requests_by_group_total",
+    "AI actions accepted, by top-level group and feature.",
+    ["group", "feature"],
+)
+
diff --git a/api/graphql/mutations.py b/api/graphql/mutations.py
index 4e8a9b1..c21f0d3 100644
--- a/api/graphql/mutations.py
+++ b/api/graphql/mutations.py
@@ -88,6 +88,8 @@ async def ai_action(info: Info, input: AiActionInput) -> AiActionPayload:
     record = await enqueue(services, principal, feature, resource, inputs)
+    group = resource.top_level_group if resource else "none"
+    metrics.AI_REQUESTS_BY_GROUP.labels(group=group, feature=feature.key).inc()
     return AiActionPayload(request_id=record.request_id, errors=[])
''',
    ),
    Discussion(
        "mr_partial_indexes", 4, "Use partial unique indexes instead of NULLS NOT DISTINCT",
        "Fixes #12: migration 0004 works on PostgreSQL 13 again.",
        "bob", _at(13, 15),
        (
            ("alice", "Does SQLite accept the `postgresql_where` argument, or do we need a dialect check?"),
            ("bob", "Alembic passes `sqlite_where` and `postgresql_where` to their own dialects; both run in CI."),
        ),
        branch="partial-unique-indexes",
        diff='''diff --git a/core/migrations/versions/0004_namespace_models.py b/core/migrations/versions/0004_namespace_models.py
index 6f1e2d3..0b7c9a8 100644
--- a/core/migrations/versions/0004_namespace_models.py
+++ b/core/migrations/versions/0004_namespace_models.py
@@ -27,9 +27,18 @@ def upgrade() -> None:
-    op.execute(
-        "CREATE UNIQUE INDEX ix_namespace_models ON namespace_models "
-        "(namespace_id, feature_setting) NULLS NOT DISTINCT"
-    )
+    op.create_index(
+        "ix_namespace_models_instance", "namespace_models", ["feature_setting"], unique=True,
+        postgresql_where=sa.text("namespace_id IS NULL"), sqlite_where=sa.text("namespace_id IS NULL"),
+    )
+    op.create_index(
+        "ix_namespace_models_namespace", "namespace_models", ["namespace_id", "feature_setting"], unique=True,
+        postgresql_where=sa.text("namespace_id IS NOT NULL"), sqlite_where=sa.text("namespace_id IS NOT NULL"),
+    )
''',
    ),
    Discussion(
        "mr_chat_copy_button", 5, "Add a copy button to each code block in chat answers",
        "Part of #11: every fenced code block in an answer gets a button that copies its raw text.",
        "carol", _at(16, 11),
        (
            ("bob", "`navigator.clipboard` is undefined on plain HTTP except on localhost. Should we fall back to "
                    "`document.execCommand('copy')`?"),
            ("carol", "Added the fallback, and the button now says 'Copied' for two seconds."),
            ("alice", "Works in Firefox and Chromium here. Approved."),
        ),
        branch="chat-copy-code",
        diff='''diff --git a/api/pages/static/chat.js b/api/pages/static/chat.js
index 2d4b6a1..e83f0c9 100644
--- a/api/pages/static/chat.js
+++ b/api/pages/static/chat.js
@@ -140,6 +140,24 @@ function renderAnswer(element, html) {
   element.innerHTML = html;
+  for (const block of element.querySelectorAll('pre > code')) {
+    const button = document.createElement('button');
+    button.className = 'copy';
+    button.textContent = 'Copy';
+    button.addEventListener('click', async () => {
+      const text = block.textContent;
+      if (navigator.clipboard) {
+        await navigator.clipboard.writeText(text);
+      } else {
+        const area = Object.assign(document.createElement('textarea'), { value: text });
+        document.body.append(area);
+        area.select();
+        document.execCommand('copy');
+        area.remove();
+      }
+      button.textContent = 'Copied';
+      setTimeout(() => { button.textContent = 'Copy'; }, 2000);
+    });
+    block.parentElement.prepend(button);
+  }
 }
''',
    ),
)
