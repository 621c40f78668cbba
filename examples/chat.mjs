// Ask Duo Chat on a Switchboard and print the answer as it streams, the way GitLab's frontend does it.
//
//     SWITCHBOARD_TOKEN=glpat-... node examples/chat.mjs "How do I revert a commit?"
//
// Node 20 or later, nothing to install: the global fetch, and the global WebSocket (Node 22 has it; on Node 20
// this script runs itself again with --experimental-websocket, which provides it).
// SWITCHBOARD_URL defaults to http://127.0.0.1:8080. Exit status 0 on the final answer, 1 on an error.
//
// The exchange (SPEC §5): `currentUser { id }` over HTTP; a websocket speaking `graphql-transport-ws`
// (connection_init with the token, then a subscription to aiCompletionResponse with a fresh
// clientSubscriptionId and `after: "0-0"`, which replays that new stream from its start so that nothing
// published before the subscription is registered is lost); the aiAction mutation with the same
// clientSubscriptionId; chunks (chunkId 1, 2, ...) until the final message (chunkId null).

import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";

if (typeof WebSocket === "undefined") {
  const again = spawnSync(process.execPath, ["--experimental-websocket", "--no-warnings", ...process.argv.slice(1)],
                          { stdio: "inherit" });
  process.exit(again.status ?? 1);
}

const SUBSCRIPTION = `subscription($userId: UserID, $id: String) {
  aiCompletionResponse(userId: $userId, aiAction: CHAT, clientSubscriptionId: $id, after: "0-0") {
    requestId content chunkId errors role
  }
}`;
const ASK = `mutation($content: String!, $id: String) {
  aiAction(input: {chat: {content: $content}, clientSubscriptionId: $id}) { requestId errors }
}`;
const TIMEOUT_MS = 120_000;

class ChatFailed extends Error {}

async function graphql(url, token, query, variables) {
  const response = await fetch(`${url}/api/graphql`, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (!response.ok || body.errors) {
    const errors = body.errors ?? [{ message: body.message ?? response.statusText }];
    throw new ChatFailed(errors.map((e) => e.message).join("; "));
  }
  return body.data;
}

// Follows the subscription from the moment it is sent: frames that come before the request id is known (the
// answer may start before the mutation's HTTP response arrives) wait in `early`. `answered` resolves on the
// final message and rejects with ChatFailed on an error.
function follow(ws) {
  let requestId = null;
  let printed = false;
  const early = [];
  let resolve, reject;
  const answered = new Promise((res, rej) => { resolve = res; reject = rej; });
  const handle = (frame) => {
    if (frame.type === "error") return reject(new ChatFailed(frame.payload.map((e) => e.message).join("; ")));
    if (frame.type === "complete") return reject(new ChatFailed("the subscription ended before the answer"));
    if (frame.type !== "next") return;
    const message = frame.payload.data?.aiCompletionResponse;
    if (!message || message.requestId !== requestId || message.role !== "ASSISTANT") return;
    if (message.chunkId !== null) {
      process.stdout.write(message.content);
      printed = true;
      return;
    }
    if (message.errors?.length) return reject(new ChatFailed(message.errors.join("; ")));
    process.stdout.write((printed ? "" : message.content) + "\n"); // the final message holds the whole answer
    resolve();
  };
  ws.addEventListener("message", ({ data }) => {
    const frame = JSON.parse(data);
    if (frame.type === "ping") return ws.send(JSON.stringify({ type: "pong" }));
    if (requestId === null) early.push(frame);
    else handle(frame);
  });
  ws.addEventListener("close", () => reject(new ChatFailed("the connection closed before the answer")));
  answered.catch(() => {}); // awaited once the request is accepted; not an unhandled rejection before
  return {
    answered,
    start(id) {
      requestId = id;
      early.splice(0).forEach(handle);
    },
  };
}

function opened(ws, token) {
  return new Promise((resolve, reject) => {
    ws.addEventListener("open", () =>
      ws.send(JSON.stringify({ type: "connection_init", payload: { Authorization: `Bearer ${token}` } })));
    ws.addEventListener("message", ({ data }) => {
      if (JSON.parse(data).type === "connection_ack") resolve();
    }, { once: true });
    ws.addEventListener("error", () => reject(new ChatFailed("cannot open the websocket")), { once: true });
    ws.addEventListener("close", () => reject(new ChatFailed("the server refused the websocket")), { once: true });
  });
}

async function chat(url, token, question) {
  const { currentUser } = await graphql(url, token, "{ currentUser { id } }", {});
  if (!currentUser) throw new ChatFailed("no user: set SWITCHBOARD_TOKEN to a personal access token");
  const id = randomUUID();
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/api/graphql`, "graphql-transport-ws");
  try {
    await opened(ws, token);
    const subscription = follow(ws);
    const variables = { userId: currentUser.id, id };
    ws.send(JSON.stringify({ id: "1", type: "subscribe", payload: { query: SUBSCRIPTION, variables } }));
    const { aiAction } = await graphql(url, token, ASK, { content: question, id });
    if (aiAction.errors.length) throw new ChatFailed(aiAction.errors.join("; "));
    subscription.start(aiAction.requestId);
    await subscription.answered;
  } finally {
    ws.close();
  }
}

async function main() {
  if (process.argv.length !== 3) {
    console.error('usage: node examples/chat.mjs "your question"');
    return 2;
  }
  const url = (process.env.SWITCHBOARD_URL ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
  const token = process.env.SWITCHBOARD_TOKEN ?? "";
  if (!token) {
    console.error("set SWITCHBOARD_TOKEN (`make run` prints the demo users' tokens)");
    return 1;
  }
  const timer = setTimeout(() => { console.error("error: no answer in time"); process.exit(1); }, TIMEOUT_MS);
  try {
    await chat(url, token, process.argv[2]);
    return 0;
  } catch (error) {
    console.error(`error: ${error instanceof ChatFailed ? error.message : `cannot talk to ${url}: ${error.message}`}`);
    return 1;
  } finally {
    clearTimeout(timer);
  }
}

process.exitCode = await main();
