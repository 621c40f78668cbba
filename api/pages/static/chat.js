/* Switchboard Chat: a Duo Chat client over /api/graphql (SPEC §14).
 *
 * Safety rule of this file: text from users, models and the server is put into the page with textContent,
 * or, for Markdown, as the DOM fragment DOMPurify returns (never through innerHTML). Links keep only
 * http(s) and relative URLs. The page's Content-Security-Policy forbids inline and foreign scripts anyway.
 */
(function () {
  'use strict';

  const TOKEN_KEY = 'switchboard.chat.token';
  const THREAD_KEY = 'switchboard.chat.thread';
  const $ = (id) => document.getElementById(id);

  const Q = {
    user: 'query { currentUser { id username name } }',
    threads: 'query { aiConversationThreads(conversationType: DUO_CHAT, first: 50) { nodes { id title lastUpdatedAt } } }',
    messages: `query($threadId: AiConversationThreadID) { aiMessages(threadId: $threadId) { nodes {
      id requestId content contentHtml role errors timestamp type extras { sources hasFeedback toolCalls cancelled } } } }`,
    resources: 'query { aiChatResources(first: 50) { id type title reference } }',
    commands: 'query($resourceId: AiModelID) { aiSlashCommands(resourceId: $resourceId) { name description shouldSubmit } }',
    action: 'mutation($input: AiActionInput!) { aiAction(input: $input) { requestId threadId errors } }',
    cancel: 'mutation($input: AiActionCancelInput!) { aiActionCancel(input: $input) { errors } }',
    remove: 'mutation($input: DeleteConversationThreadInput!) { deleteConversationThread(input: $input) { success errors } }',
    feedback: 'mutation($input: DuoUserFeedbackInput!) { duoUserFeedback(input: $input) { errors } }',
    subscription: `subscription($userId: UserID, $clientSubscriptionId: String, $after: String) {
      aiCompletionResponse(userId: $userId, aiAction: CHAT, clientSubscriptionId: $clientSubscriptionId, after: $after) {
        id requestId content contentHtml role errors timestamp chunkId type threadId cursor
        extras { sources hasFeedback toolCalls cancelled } } }`,
  };
  const TYPE_LABELS = { ISSUE: 'Issues', MERGE_REQUEST: 'Merge requests', EPIC: 'Epics', VULNERABILITY: 'Vulnerabilities' };

  // ---------------------------------------------------------------------------------------------- rendering
  const markdown = window.markdownit({ html: false, linkify: true });

  function safeUrl(value) {
    try {
      const url = new URL(value, window.location.href);
      return url.protocol === 'http:' || url.protocol === 'https:';
    } catch (_error) {
      return false;
    }
  }

  window.DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.hasAttribute && node.hasAttribute('href')) {
      if (!safeUrl(node.getAttribute('href'))) {
        node.removeAttribute('href');
      } else if (node.tagName === 'A') {
        node.setAttribute('rel', 'noopener noreferrer nofollow');
        node.setAttribute('target', '_blank');
      }
    }
    if (node.hasAttribute && node.hasAttribute('src') && !safeUrl(node.getAttribute('src'))) {
      node.removeAttribute('src');
    }
  });
  const PURIFY = {
    ALLOWED_TAGS: ['a', 'b', 'blockquote', 'br', 'code', 'del', 'em', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'i',
      'img', 'li', 'ol', 'p', 'pre', 's', 'strong', 'table', 'tbody', 'td', 'th', 'thead', 'tr', 'ul', 'span'],
    ALLOWED_ATTR: ['href', 'title', 'alt', 'src', 'start', 'class', 'colspan', 'rowspan'],
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  };

  /** A safe DOM fragment of HTML that came from elsewhere (the server's contentHtml, or markdown-it's output). */
  function sanitized(html) {
    return window.DOMPurify.sanitize(html, PURIFY);
  }

  function markdownFragment(text) {
    return sanitized(markdown.render(text || ''));
  }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function randomId() {
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  // ---------------------------------------------------------------------------------------------- state
  const state = {
    token: null,
    user: null,
    threadId: null, // null: a new chat (the next question starts a DUO_CHAT thread)
    threads: [],
    commands: [],
    clientSubscriptionId: 'chat-page-' + randomId(), // per tab and page load
    views: new Map(), // requestId -> AnswerView of this tab's requests
    early: new Map(), // requestId -> messages that arrived before aiAction answered
    finished: new Set(), // requestIds whose final arrived: their late chunks are dropped
    seen: new Set(), // message ids received, for no duplicate after a resume
    lastCursor: null,
    active: null, // requestId of the answer streaming now
    client: null,
    unsubscribe: null,
    retries: 0,
    retryTimer: null,
    generation: 0, // bumped on sign-out: stale callbacks ignore themselves
  };

  class SignedOut extends Error {}

  async function gql(query, variables) {
    const response = await fetch('/api/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + state.token },
      body: JSON.stringify({ query, variables: variables || {} }),
    });
    if (response.status === 401) {
      signOut('That access token is not valid (or not any more). Sign in again.');
      throw new SignedOut('signed out');
    }
    let body;
    try {
      body = await response.json();
    } catch (_error) {
      throw new Error('The server answered ' + response.status + '.');
    }
    if (body.errors && body.errors.length) throw new Error(body.errors.map((e) => e.message).join(' '));
    return body.data;
  }

  function reportError(error) {
    if (error instanceof SignedOut) return;
    addNote(error.message || String(error), 'error');
  }

  // ---------------------------------------------------------------------------------------------- sign-in
  function signOut(message) {
    state.generation += 1;
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(THREAD_KEY);
    state.token = null;
    state.user = null;
    state.threadId = null;
    state.active = null;
    state.lastCursor = null;
    delete document.body.dataset.ready;
    if (state.retryTimer) clearTimeout(state.retryTimer);
    if (state.unsubscribe) state.unsubscribe();
    if (state.client) state.client.dispose();
    state.client = null;
    state.unsubscribe = null;
    $('app').hidden = true;
    $('sign-out').hidden = true;
    $('who').textContent = '';
    $('connection').textContent = '';
    $('messages').replaceChildren();
    $('thread-list').replaceChildren();
    $('sign-in').hidden = false;
    $('sign-in-error').textContent = message || '';
    $('token').value = '';
    $('token').focus();
  }

  async function signIn(token) {
    state.token = token;
    let data;
    try {
      data = await gql(Q.user);
    } catch (error) {
      if (!(error instanceof SignedOut)) signOut(error.message);
      return;
    }
    if (!data.currentUser) {
      signOut('That access token is not valid (or not any more). Sign in again.');
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    state.user = data.currentUser;
    $('who').textContent = state.user.name + ' (@' + state.user.username + ')';
    $('sign-in').hidden = true;
    $('sign-in-error').textContent = '';
    $('app').hidden = false;
    $('sign-out').hidden = false;
    subscribe();
    loadResources().catch(reportError);
    loadCommands().catch(reportError);
    await loadThreads();
    const saved = sessionStorage.getItem(THREAD_KEY);
    const start = state.threads.find((t) => t.id === saved) || (saved === 'new' ? null : state.threads[0]);
    if (start) await openThread(start.id);
    else newChat();
    document.body.dataset.ready = 'true'; // signed in, the conversation shown
    $('message').focus();
  }

  // ---------------------------------------------------------------------------------------------- threads
  async function loadThreads() {
    const data = await gql(Q.threads);
    state.threads = data.aiConversationThreads.nodes;
    renderThreads();
  }

  function renderThreads() {
    const list = $('thread-list');
    list.replaceChildren(...state.threads.map((thread) => {
      const title = thread.title || 'Untitled conversation';
      const item = element('li');
      const open = element('button', { type: 'button', class: 'open', title }, title);
      if (thread.id === state.threadId) open.setAttribute('aria-current', 'true');
      open.addEventListener('click', () => openThread(thread.id).catch(reportError));
      const remove = element('button', { type: 'button', class: 'delete secondary', 'aria-label': 'Delete conversation: ' + title }, '×');
      remove.addEventListener('click', () => deleteThread(thread.id).catch(reportError));
      item.append(open, remove);
      return item;
    }));
  }

  function setTitle() {
    const thread = state.threads.find((t) => t.id === state.threadId);
    $('conversation-title').textContent = thread ? (thread.title || 'Untitled conversation') : 'New conversation';
  }

  function newChat() {
    state.threadId = null;
    sessionStorage.setItem(THREAD_KEY, 'new');
    $('messages').replaceChildren();
    setTitle();
    renderThreads();
  }

  async function openThread(threadId) {
    state.threadId = threadId;
    sessionStorage.setItem(THREAD_KEY, threadId);
    setTitle();
    renderThreads();
    const data = await gql(Q.messages, { threadId });
    if (state.threadId !== threadId) return; // switched again meanwhile
    const messages = $('messages');
    messages.replaceChildren();
    for (const node of data.aiMessages.nodes) {
      if (node.role === 'USER') messages.append(userBubble(node.content));
      else if (node.role === 'ASSISTANT') {
        const live = state.views.get(node.requestId);
        const view = live && !state.finished.has(node.requestId) ? live : new AnswerView(node.requestId, '');
        if (view !== live) view.finish(node);
        messages.append(view.root);
      }
    }
    // an answer of this thread still streaming in this tab (its question is saved, its answer not yet)
    for (const [requestId, view] of state.views) {
      if (view.threadId === threadId && !state.finished.has(requestId) && !view.root.isConnected) messages.append(view.root);
    }
    messages.scrollTop = messages.scrollHeight;
  }

  async function deleteThread(threadId) {
    const data = await gql(Q.remove, { input: { threadId } });
    const payload = data.deleteConversationThread;
    if (payload.errors.length) {
      addNote(payload.errors.join(' '), 'error');
      return;
    }
    state.threads = state.threads.filter((t) => t.id !== threadId);
    if (state.threadId === threadId) newChat();
    else renderThreads();
    $('new-chat').focus();
  }

  // ---------------------------------------------------------------------------------------------- resources and commands
  async function loadResources() {
    const data = await gql(Q.resources);
    const select = $('resource');
    const groups = new Map();
    for (const resource of data.aiChatResources) {
      if (!groups.has(resource.type)) groups.set(resource.type, element('optgroup', { label: TYPE_LABELS[resource.type] || resource.type }));
      const option = element('option', { value: resource.id }, resource.reference + ' · ' + resource.title);
      groups.get(resource.type).append(option);
    }
    select.replaceChildren(element('option', { value: '' }, 'Nothing in particular'), ...groups.values());
  }

  async function loadCommands() {
    const resourceId = $('resource').value || null;
    const data = await gql(Q.commands, { resourceId });
    if (($('resource').value || null) !== resourceId) return; // picked another meanwhile
    state.commands = data.aiSlashCommands;
    if (document.activeElement === $('message')) updateCompletion();
  }

  const completion = { open: false, items: [], index: -1 };

  function updateCompletion() {
    const input = $('message');
    const text = input.value;
    const match = /^\/\S*$/.exec(text);
    completion.items = match ? state.commands.filter((c) => c.name.startsWith(text)) : [];
    completion.index = completion.items.length ? 0 : -1;
    renderCompletion();
  }

  function renderCompletion() {
    const list = $('commands');
    const input = $('message');
    completion.open = completion.items.length > 0;
    list.hidden = !completion.open;
    input.setAttribute('aria-expanded', String(completion.open));
    list.replaceChildren(...completion.items.map((command, index) => {
      const option = element('li', { role: 'option', id: 'command-' + index, 'aria-selected': String(index === completion.index) });
      option.append(element('strong', {}, command.name), document.createTextNode(' '), element('span', { class: 'description' }, command.description));
      option.addEventListener('mousedown', (event) => {
        event.preventDefault();
        pickCommand(index);
      });
      return option;
    }));
    if (completion.open && completion.index >= 0) {
      input.setAttribute('aria-activedescendant', 'command-' + completion.index);
      const active = $('command-' + completion.index);
      if (active && active.scrollIntoView) active.scrollIntoView({ block: 'nearest' });
    } else {
      input.removeAttribute('aria-activedescendant');
    }
  }

  function closeCompletion() {
    completion.items = [];
    completion.index = -1;
    renderCompletion();
  }

  function pickCommand(index) {
    const command = completion.items[index];
    if (!command) return;
    const input = $('message');
    input.value = command.name + ' ';
    closeCompletion();
    input.focus();
    if (command.shouldSubmit) send().catch(reportError);
  }

  // ---------------------------------------------------------------------------------------------- messages
  function userBubble(text) {
    return element('div', { class: 'message user' }, text);
  }

  function addNote(text, kind) {
    const note = element('div', { class: 'message note' });
    note.append(element('p', { class: kind === 'error' ? 'errors' : '' }, text));
    $('messages').append(note);
  }

  class AnswerView {
    constructor(requestId, question) {
      this.requestId = requestId;
      this.question = question;
      this.threadId = state.threadId;
      this.chunks = new Map();
      this.streamed = '';
      this.root = element('article', { class: 'message assistant', 'data-request-id': requestId || '', 'aria-label': 'Answer' });
      this.tools = element('ul', { class: 'tools', 'aria-label': 'Tool calls' });
      this.tools.hidden = true;
      this.body = element('div', { class: 'body' });
      this.meta = element('div', { class: 'meta' });
      this.root.append(this.tools, this.body, this.meta);
      this.toolLines = new Map();
      this.pendingRender = false;
    }

    start() {
      this.root.setAttribute('aria-busy', 'true');
      this.root.dataset.state = 'streaming';
    }

    tool(message) {
      const calls = (message.extras && message.extras.toolCalls) || [];
      const call = calls[0] || {};
      const key = (call.name || '') + JSON.stringify(call.input || {});
      let line = this.toolLines.get(key);
      if (!line) {
        line = element('li');
        this.toolLines.set(key, line);
        this.tools.append(line);
      }
      const status = call.status ? String(call.status) : '';
      line.className = status;
      line.textContent = (message.content || call.name || 'Tool') + (status ? ' — ' + status.toLowerCase() : '');
      this.tools.hidden = false;
    }

    chunk(message) {
      if (message.chunkId === 1 && this.chunks.size) this.chunks.clear(); // a retried stream restarts
      this.chunks.set(message.chunkId, message.content || '');
      let text = '';
      for (let id = 1; this.chunks.has(id); id += 1) text += this.chunks.get(id);
      this.streamed = text;
      this.root.dataset.chunks = String(this.chunks.size);
      if (!this.pendingRender) {
        this.pendingRender = true;
        window.requestAnimationFrame(() => {
          this.pendingRender = false;
          if (this.root.dataset.state === 'streaming') this.body.replaceChildren(markdownFragment(this.streamed));
        });
      }
    }

    finish(message) {
      this.root.removeAttribute('aria-busy');
      this.root.dataset.state = 'final';
      const extras = message.extras || {};
      if (this.chunks.size) this.root.dataset.streamComplete = String(this.streamed === (message.content || ''));
      const errors = message.errors || [];
      if (errors.length) {
        this.body.replaceChildren(...errors.map((text) => element('p', { class: 'errors' }, text)));
        this.root.dataset.state = 'error';
      } else if (message.contentHtml) {
        this.body.replaceChildren(sanitized(message.contentHtml));
      } else if (message.content) {
        this.body.replaceChildren(markdownFragment(message.content));
      } else {
        this.body.replaceChildren(element('p', { class: 'quiet' }, quietReply(this.question)));
      }
      const calls = extras.toolCalls || [];
      if (calls.length && !this.toolLines.size) { // from the history: the progress lines were not seen here
        this.tools.replaceChildren(...calls.map((call) => element('li', { class: String(call.status || '') },
          String(call.name) + ' ' + JSON.stringify(call.input || {}) + (call.status ? ' — ' + String(call.status).toLowerCase() : ''))));
        this.tools.hidden = false;
      }
      const sources = extras.sources || [];
      if (sources.length) {
        const list = element('ul', { class: 'sources', 'aria-label': 'Sources' });
        for (const source of sources) {
          const title = String((source && (source.title || source.url)) || 'Source');
          const item = element('li');
          if (source && typeof source.url === 'string' && safeUrl(source.url)) {
            item.append(element('a', { href: source.url, rel: 'noopener noreferrer nofollow', target: '_blank' }, title));
          } else {
            item.textContent = title;
          }
          list.append(item);
        }
        this.meta.before(list);
      }
      if (extras.cancelled) {
        this.root.dataset.cancelled = 'true';
        this.meta.append(element('span', { class: 'cancelled' }, 'Stopped'));
      }
      if (message.id && !errors.length && (message.content || '').length) this.meta.append(feedbackButtons(message.id, extras.hasFeedback));
    }
  }

  function quietReply(question) {
    const command = (/^\/(\w+)/.exec(question || '') || [])[1];
    if (command === 'reset') return 'Context reset: later answers ignore the messages above.';
    if (command === 'new' || command === 'clear') return 'Started a new conversation.';
    return 'No answer.';
  }

  function feedbackButtons(messageId, given) {
    const box = element('span', { class: 'feedback', role: 'group', 'aria-label': 'Feedback' });
    const up = element('button', { type: 'button', 'aria-pressed': 'false' }, 'Helpful');
    const down = element('button', { type: 'button', 'aria-pressed': 'false' }, 'Not helpful');
    const status = element('span', { class: 'feedback-status', role: 'status' }, given ? 'Feedback sent' : '');
    if (given) up.disabled = down.disabled = true;
    const send = async (button, property) => {
      up.disabled = down.disabled = true;
      try {
        const data = await gql(Q.feedback, { input: { aiMessageId: messageId, trackingEvent: {
          category: 'ask_gitlab_chat', action: 'click_button', label: 'response_feedback', property } } });
        if (data.duoUserFeedback.errors.length) throw new Error(data.duoUserFeedback.errors.join(' '));
        button.setAttribute('aria-pressed', 'true');
        status.textContent = 'Thanks for the feedback';
      } catch (error) {
        up.disabled = down.disabled = false;
        status.textContent = error instanceof SignedOut ? '' : 'Feedback failed: ' + error.message;
      }
    };
    up.addEventListener('click', () => send(up, 'positive'));
    down.addEventListener('click', () => send(down, 'negative'));
    box.append(up, down, status);
    return box;
  }

  // ---------------------------------------------------------------------------------------------- asking
  function setStreaming(requestId) {
    state.active = requestId;
    $('stop').hidden = !requestId;
    $('send').disabled = Boolean(requestId);
  }

  async function send() {
    const input = $('message');
    const text = input.value;
    if (!text.trim() || state.active) return;
    closeCompletion();
    const messages = $('messages');
    messages.append(userBubble(text));
    messages.scrollTop = messages.scrollHeight;
    input.value = '';
    const chat = { content: text };
    if ($('resource').value) chat.resourceId = $('resource').value;
    const actionInput = { chat, clientSubscriptionId: state.clientSubscriptionId };
    if (state.threadId) actionInput.threadId = state.threadId;
    else actionInput.conversationType = 'DUO_CHAT';
    $('send').disabled = true;
    let payload;
    try {
      payload = (await gql(Q.action, { input: actionInput })).aiAction;
    } catch (error) {
      $('send').disabled = false;
      throw error;
    }
    if (payload.errors.length || !payload.requestId) {
      $('send').disabled = false;
      addNote(payload.errors.join(' ') || 'The question was not accepted.', 'error');
      return;
    }
    if (payload.threadId && payload.threadId !== state.threadId) {
      state.threadId = payload.threadId;
      sessionStorage.setItem(THREAD_KEY, payload.threadId);
    }
    const view = new AnswerView(payload.requestId, text);
    view.start();
    state.views.set(payload.requestId, view);
    messages.append(view.root);
    setStreaming(payload.requestId);
    for (const message of state.early.get(payload.requestId) || []) apply(view, message);
    state.early.delete(payload.requestId);
    loadThreads().then(setTitle).catch(reportError);
  }

  async function stop() {
    const requestId = state.active;
    if (!requestId) return;
    $('stop').disabled = true;
    try {
      const data = await gql(Q.cancel, { input: { requestId } });
      if (data.aiActionCancel.errors.length) addNote(data.aiActionCancel.errors.join(' '), 'error');
    } finally {
      $('stop').disabled = false;
    }
  }

  // ---------------------------------------------------------------------------------------------- streaming
  function cursorAfter(a, b) {
    const [am, as] = a.split('-').map(BigInt);
    const [bm, bs] = b.split('-').map(BigInt);
    return am > bm || (am === bm && as > bs);
  }

  function receive(message) {
    if (message.cursor && (!state.lastCursor || cursorAfter(message.cursor, state.lastCursor))) state.lastCursor = message.cursor;
    if (message.id) {
      if (state.seen.has(message.id)) return; // replayed after a resume: shown already
      state.seen.add(message.id);
    }
    if (message.role === 'USER' || !message.requestId) return;
    const view = state.views.get(message.requestId);
    if (view) apply(view, message);
    else if (!state.finished.has(message.requestId)) {
      const early = state.early.get(message.requestId) || [];
      early.push(message);
      state.early.set(message.requestId, early);
    }
  }

  function apply(view, message) {
    const requestId = message.requestId;
    if (state.finished.has(requestId)) return; // a late chunk or progress line of a finished request
    if (message.type === 'TOOL') {
      view.tool(message);
    } else if (message.chunkId !== null && message.chunkId !== undefined) {
      view.chunk(message);
    } else {
      state.finished.add(requestId);
      view.finish(message);
      if (state.active === requestId) {
        setStreaming(null);
        if (document.activeElement === $('stop') || document.activeElement === document.body) $('message').focus();
      }
      if (/^\/(new|clear)\b/.test(view.question)) loadThreads().then(setTitle).catch(reportError);
    }
    const messages = $('messages');
    if (view.root.isConnected) messages.scrollTop = messages.scrollHeight;
  }

  function subscribe() {
    const generation = state.generation;
    if (!state.client) {
      const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
      state.client = window.graphqlWs.createClient({
        url: scheme + '//' + window.location.host + '/api/graphql',
        lazy: true,
        retryAttempts: 0, // resumed here instead, with `after` set to the last cursor
        connectionParams: () => ({ Authorization: 'Bearer ' + state.token }),
        on: {
          connected: () => {
            state.retries = 0;
            $('connection').textContent = 'Connected';
          },
        },
      });
    }
    const variables = {
      userId: state.user.id,
      clientSubscriptionId: state.clientSubscriptionId,
      after: state.lastCursor || '0-0', // from the start of this tab's route: nothing published before is missed
    };
    let ended = false;
    const resubscribe = (reason) => {
      if (ended || generation !== state.generation) return;
      ended = true;
      if (reason && reason.code === 4403) {
        signOut('Your access token was revoked or has expired. Sign in again.');
        return;
      }
      $('connection').textContent = 'Reconnecting…';
      const delay = Math.min(5000, 200 * 2 ** state.retries);
      state.retries += 1;
      state.retryTimer = setTimeout(() => {
        if (generation === state.generation) subscribe();
      }, delay);
    };
    state.unsubscribe = state.client.subscribe({ query: Q.subscription, variables }, {
      next: (result) => {
        if (generation !== state.generation) return;
        if (result.data && result.data.aiCompletionResponse) receive(result.data.aiCompletionResponse);
        else if (result.errors) addNote(result.errors.map((e) => e.message).join(' '), 'error');
      },
      error: (reason) => resubscribe(reason),
      complete: () => resubscribe(null),
    });
  }

  // ---------------------------------------------------------------------------------------------- wiring
  function onKeyDown(event) {
    if (completion.open) {
      if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
        event.preventDefault();
        const step = event.key === 'ArrowDown' ? 1 : -1;
        completion.index = (completion.index + step + completion.items.length) % completion.items.length;
        renderCompletion();
        return;
      }
      if ((event.key === 'Enter' && !event.shiftKey) || event.key === 'Tab') {
        if (completion.index >= 0) {
          event.preventDefault();
          pickCommand(completion.index);
          return;
        }
      }
      if (event.key === 'Escape') {
        event.preventDefault();
        closeCompletion();
        return;
      }
    }
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send().catch(reportError);
    }
  }

  function init() {
    $('sign-in-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = $('token').value.trim();
      if (token) signIn(token).catch(reportError);
    });
    $('sign-out').addEventListener('click', () => signOut(''));
    $('new-chat').addEventListener('click', () => {
      newChat();
      $('message').focus();
    });
    $('composer').addEventListener('submit', (event) => {
      event.preventDefault();
      send().catch(reportError);
    });
    $('stop').addEventListener('click', () => stop().catch(reportError));
    $('resource').addEventListener('change', () => loadCommands().catch(reportError));
    const input = $('message');
    input.addEventListener('keydown', onKeyDown);
    input.addEventListener('input', updateCompletion);
    input.addEventListener('blur', closeCompletion);

    window.addEventListener('hashchange', () => {
      const linked = tokenFromLink();
      if (!linked) return;
      if (state.token) signOut('');
      signIn(linked).catch(reportError);
    });
    const token = tokenFromLink() || sessionStorage.getItem(TOKEN_KEY);
    if (token) signIn(token).catch(reportError);
    else signOut('');
  }

  /** A demo sign-in link, /chat#token=...: the token, taken out of the address bar and the history at once. */
  function tokenFromLink() {
    const linked = new URLSearchParams(window.location.hash.slice(1)).get('token');
    if (!linked) return null;
    window.history.replaceState(null, '', window.location.pathname + window.location.search);
    sessionStorage.setItem(TOKEN_KEY, linked);
    return linked;
  }

  init();
}());
