// Switchboard's GraphiQL (api/pages/graphiql.py): examples, and the token from a `#token=` link.
(function () {
  "use strict";

  var TOKEN_KEY = "switchboard.graphiql.token";
  // GraphiQL's own keys (namespace "graphiql"): its tabs, and the editors' current values
  var TABS_KEY = "graphiql:tabState";
  var EDITOR_KEYS = ["graphiql:query", "graphiql:variables", "graphiql:headers", "graphiql:operationName"];
  var endpoint = window.location.origin + "/api/graphql";
  var socketEndpoint = (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + "/api/graphql";

  // A link /api/graphql#token=<token>: keep the token in this tab only, start from fresh example tabs,
  // and take the fragment out of the address bar (and so out of the history).
  var fragment = new URLSearchParams(window.location.hash.slice(1));
  var linked = fragment.get("token");
  if (linked) {
    window.sessionStorage.setItem(TOKEN_KEY, linked.trim());
    [TABS_KEY].concat(EDITOR_KEYS).forEach(function (key) { window.sessionStorage.removeItem(key); });
    window.history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  var token = window.sessionStorage.getItem(TOKEN_KEY);
  var headers = token ? JSON.stringify({ Authorization: "Bearer " + token }, null, 2) : "";

  var subscriptionId = "graphiql-" + Math.random().toString(36).slice(2, 10);

  var ASK = [
    "# Switchboard GraphiQL. " + (token
      ? "Your token is in the Headers editor below: it signs every request,"
      : "Put {\"Authorization\": \"Bearer <token>\"} in the Headers editor below:"),
    "# and also the websocket of subscriptions (its connection_init payload).",
    "#",
    "# 1. Run this mutation (the ▶ button or Ctrl-Enter): it asks Duo Chat and",
    "#    returns a requestId at once; the answer comes by subscription.",
    "# 2. Open the ChatAnswers tab and run it: with after: \"0-0\" it replays the",
    "#    answer streamed for this clientSubscriptionId (chunks 1, 2, ..., then the",
    "#    final message with chunkId null) and stays subscribed for later answers.",
    "# To watch an answer stream live, run ChatAnswers first in a second window",
    "# (open the banner's link again), then this mutation here.",
    "mutation AskDuoChat($question: String!, $clientSubscriptionId: String!) {",
    "  aiAction(input: {chat: {content: $question}, clientSubscriptionId: $clientSubscriptionId}) {",
    "    requestId",
    "    threadId",
    "    errors",
    "  }",
    "}",
    ""
  ].join("\n");

  var ANSWERS = [
    "# The answers to AskDuoChat: the same clientSubscriptionId, and userId the",
    "# caller's own global ID (WhoAmI shows it); after: \"0-0\" replays what was",
    "# already sent on this route before going on live.",
    "subscription ChatAnswers($userId: UserID!, $clientSubscriptionId: String!, $after: String) {",
    "  aiCompletionResponse(userId: $userId, aiAction: CHAT, clientSubscriptionId: $clientSubscriptionId,",
    "                       after: $after) {",
    "    requestId",
    "    role",
    "    chunkId",
    "    content",
    "    errors",
    "    threadId",
    "    cursor",
    "  }",
    "}",
    ""
  ].join("\n");

  var WHO = [
    "# Who the token in the Headers editor belongs to.",
    "query WhoAmI {",
    "  currentUser {",
    "    id",
    "    username",
    "    duoChatAvailable",
    "  }",
    "}",
    ""
  ].join("\n");

  function json(value) {
    return JSON.stringify(value, null, 2);
  }

  // GraphiQL sends the headers editor's content with each HTTP request, and as the connection_init
  // payload of the graphql-transport-ws websocket it opens for a subscription.
  var send = GraphiQL.createFetcher({ url: endpoint, subscriptionUrl: socketEndpoint });
  // Right after a tab switch GraphiQL may still send the previous tab's operation name ("Unknown operation
  // named ..."): a name the document does not define is dropped, and the server runs its one operation.
  function fetcher(params, options) {
    var name = params.operationName;
    if (name && !new RegExp("\\b(query|mutation|subscription)\\s+" + name + "\\b").test(params.query || "")) {
      params = Object.assign({}, params, { operationName: null });
    }
    return send(params, options);
  }

  function render(userId) {
    var tabs = [
      { query: ASK, variables: json({ question: "What can you do?", clientSubscriptionId: subscriptionId }), headers: headers },
      { query: ANSWERS, variables: json({ userId: userId, clientSubscriptionId: subscriptionId, after: "0-0" }), headers: headers },
      { query: WHO, variables: "", headers: headers }
    ];
    if (!window.sessionStorage.getItem(TABS_KEY)) {
      // GraphiQL 3 takes the first tab's query from `defaultTabs` but its variables from storage only
      window.sessionStorage.setItem("graphiql:variables", tabs[0].variables);
    }
    var root = ReactDOM.createRoot(document.getElementById("graphiql"));
    root.render(React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultTabs: tabs,
      defaultHeaders: headers,
      defaultEditorToolsVisibility: "headers",
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true, // into this tab's sessionStorage (below), never localStorage
      storage: window.sessionStorage,
      inputValueDeprecation: true
    }));
  }

  // The subscription's userId: the token's user, asked once (the examples are built only on a first visit).
  var placeholder = "gid://gitlab/User/<your id: run WhoAmI>";
  if (!token || window.sessionStorage.getItem(TABS_KEY)) {
    render(placeholder);
  } else {
    window.fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
      body: JSON.stringify({ query: "{ currentUser { id } }" })
    })
      .then(function (response) { return response.json(); })
      .then(function (body) { return (body.data && body.data.currentUser && body.data.currentUser.id) || placeholder; })
      .catch(function () { return placeholder; })
      .then(render);
  }
})();
