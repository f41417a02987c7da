// The chat page: the agent service's own JSON and SSE routes, no build step, no library.
"use strict";

const KEY_STORAGE = "agentApiKey";
const TITLES_STORAGE = "agentSessionTitles";
const PAGE_SIZE = 20;

const $ = (id) => document.getElementById(id);
const ui = {
  sessions: $("sessions"), toggleSessions: $("toggle-sessions"), sessionList: $("session-list"),
  moreSessions: $("more-sessions"), noSessions: $("no-sessions"), newSession: $("new-session"),
  title: $("session-title"), deleteSession: $("delete-session"), messages: $("messages"),
  promptForm: $("prompt-form"), prompt: $("prompt"), send: $("send"),
  error: $("error"), errorText: $("error-text"), errorClose: $("error-close"),
  keyButton: $("key-button"), keyForm: $("key-form"), key: $("key"), keyForget: $("key-forget"),
  profileField: $("profile-field"), profile: $("profile"),
};

const state = { sessionId: null, cursor: null, busy: false };

// --- HTTP ---------------------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function request(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "the agent service does not answer (is it running?)");
  }
  if (!response.ok) throw await problem(response);
  return response.status === 204 ? null : response.json();
}

async function problem(response) {
  let detail = response.statusText;
  try {
    const body = await response.json();
    detail = body.detail || body.title || detail;
  } catch (e) { /* not JSON: keep the status text */ }
  return new ApiError(response.status, detail);
}

function explain(error) {
  if (!(error instanceof ApiError)) return String(error);
  switch (error.status) {
    case 0: return `Agent service unreachable: ${error.message}`;
    case 401: return "This service needs an API key: enter yours above.";
    case 404: return `Not found: ${error.message}`;
    case 409: return `Session busy: ${error.message}`;
    case 503: return `Session backend down: ${error.message}`;
    default: return `Error ${error.status}: ${error.message}`;
  }
}

function showError(error) {
  if (error instanceof ApiError && error.status === 401) openKeyForm();
  ui.errorText.textContent = explain(error);
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
}

// --- API key ------------------------------------------------------------------------------------------------

function openKeyForm() {
  ui.keyForm.hidden = false;
  ui.key.value = sessionStorage.getItem(KEY_STORAGE) || "";
  ui.key.focus();
}

ui.keyButton.addEventListener("click", () => (ui.keyForm.hidden ? openKeyForm() : (ui.keyForm.hidden = true)));
ui.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const key = ui.key.value.trim();
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
  ui.keyForm.hidden = true;
  clearError();
  start();
});
ui.keyForget.addEventListener("click", () => {
  sessionStorage.removeItem(KEY_STORAGE);
  ui.key.value = "";
});

// --- sessions -----------------------------------------------------------------------------------------------

function titles() {
  try { return JSON.parse(localStorage.getItem(TITLES_STORAGE)) || {}; } catch (e) { return {}; }
}

function rememberTitle(sessionId, prompt) {
  const all = titles();
  if (!all[sessionId]) {
    all[sessionId] = prompt.slice(0, 80);
    localStorage.setItem(TITLES_STORAGE, JSON.stringify(all));
  }
}

function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

async function loadSessions(append = false) {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (append && state.cursor) params.set("cursor", state.cursor);
  const page = await request("GET", `/sessions?${params}`);
  if (!append) ui.sessionList.replaceChildren();
  const known = titles();
  for (const session of page.items) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.sessionId = session.session_id;
    button.setAttribute("aria-current", String(session.session_id === state.sessionId));
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = known[session.session_id] || session.session_id;
    const time = document.createElement("span");
    time.className = "when";
    time.textContent = when(session.updated_at);
    button.append(title, time);
    button.addEventListener("click", () => selectSession(session.session_id).catch(showError));
    item.append(button);
    ui.sessionList.append(item);
  }
  state.cursor = page.next_cursor;
  ui.moreSessions.hidden = !page.next_cursor;
  ui.noSessions.hidden = ui.sessionList.children.length > 0;
}

function markCurrent() {
  for (const button of ui.sessionList.querySelectorAll("button")) {
    button.setAttribute("aria-current", String(button.dataset.sessionId === state.sessionId));
  }
  ui.title.textContent = state.sessionId ? titles()[state.sessionId] || state.sessionId : "New session";
  ui.title.title = state.sessionId || "";
  ui.deleteSession.hidden = !state.sessionId;
  const hash = state.sessionId ? `#session=${encodeURIComponent(state.sessionId)}` : "";
  if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname);
}

async function selectSession(sessionId) {
  clearError();
  state.sessionId = sessionId;
  markCurrent();
  ui.messages.replaceChildren();
  ui.sessions.classList.remove("open");
  if (!sessionId) return;
  const history = await request("GET", `/sessions/${encodeURIComponent(sessionId)}/history`);
  if (state.sessionId !== sessionId) return; // another session was chosen meanwhile: its messages are shown
  for (const message of history.messages) ui.messages.append(renderMessage(message.role, message.content));
  scrollDown();
}

ui.newSession.addEventListener("click", () => {
  selectSession(null);
  ui.prompt.focus();
});
ui.moreSessions.addEventListener("click", () => loadSessions(true).catch(showError));
ui.toggleSessions.addEventListener("click", () => {
  const open = ui.sessions.classList.toggle("open");
  ui.toggleSessions.setAttribute("aria-expanded", String(open));
});
ui.deleteSession.addEventListener("click", async () => {
  const sessionId = state.sessionId;
  if (!sessionId || !confirm(`Delete session ${titles()[sessionId] || sessionId}? Its history is lost.`)) return;
  try {
    await request("DELETE", `/sessions/${encodeURIComponent(sessionId)}`);
    await selectSession(null);
    await loadSessions();
  } catch (e) {
    showError(e);
  }
});

// --- messages -----------------------------------------------------------------------------------------------

function compactJson(value, limit = 120) {
  const text = JSON.stringify(value);
  return text && text.length > limit ? `${text.slice(0, limit)}…` : text || "";
}

function toolBlock(summary, value) {
  const details = document.createElement("details");
  details.className = "tool";
  const head = document.createElement("summary");
  head.textContent = summary;
  const body = document.createElement("pre");
  body.textContent = JSON.stringify(value, null, 2);
  details.append(head, body);
  return details;
}

function renderBlock(block) {
  if ("text" in block) {
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = block.text;
    return text;
  }
  if (block.toolUse) {
    const use = block.toolUse;
    return toolBlock(`\u2192 ${use.name}(${compactJson(use.input, 80)})`, use.input);
  }
  if (block.toolResult) {
    const result = block.toolResult;
    const text = (result.content || []).map((c) => c.text ?? compactJson(c.json ?? c)).join(" ");
    return toolBlock(`\u2190 ${result.status || "result"}: ${text.slice(0, 80)}`, result.content);
  }
  return toolBlock(Object.keys(block)[0] || "content", block);
}

function renderMessage(role, content) {
  const item = document.createElement("li");
  item.className = `msg ${role}`;
  const label = document.createElement("span");
  label.className = "role";
  label.textContent = role;
  item.append(label, ...content.map(renderBlock));
  return item;
}

function scrollDown() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

// --- turns (SSE over a streamed fetch: EventSource cannot POST) ---------------------------------------------

async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const raw = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = raw.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
      if (data) yield JSON.parse(data);
    }
  }
}

function turnPath() {
  const profile = ui.profile.value;
  return profile ? `/api/v1/agents/${encodeURIComponent(profile)}/invoke-streaming` : "/process-streaming";
}

async function sendPrompt(prompt) {
  clearError();
  const body = { prompt };
  if (state.sessionId) body.session_id = state.sessionId;
  const asked = renderMessage("user", [{ text: prompt }]);
  const reply = renderMessage("assistant", [{ text: "" }]);
  const text = reply.querySelector(".text");
  reply.classList.add("streaming");
  ui.messages.append(asked, reply);
  scrollDown();
  let sessionId = state.sessionId;
  try {
    let response;
    try {
      response = await fetch(turnPath(), {
        method: "POST",
        headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
        body: JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, "the agent service does not answer (is it running?)");
    }
    if (!response.ok) throw await problem(response);
    for await (const event of sseEvents(response)) {
      if (event.type === "start" && event.session_id) {
        sessionId = event.session_id;
        rememberTitle(sessionId, prompt);
        if (!state.sessionId) {
          state.sessionId = sessionId;
          markCurrent();
        }
      } else if (event.type === "text") {
        text.textContent += event.data;
        scrollDown();
      } else if (event.type === "done") {
        text.textContent = event.response;
      } else if (event.type === "error") {
        throw new ApiError(event.status, event.detail);
      }
    }
  } catch (e) {
    // Nothing of a failed turn is stored: take it off the page too (the prompt goes back into the box).
    asked.remove();
    reply.remove();
    throw e;
  } finally {
    reply.classList.remove("streaming");
    if (sessionId) await loadSessions().catch(showError);
  }
}

ui.promptForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const prompt = ui.prompt.value;
  if (!prompt.trim() || state.busy) return;
  state.busy = true;
  ui.send.disabled = true;
  ui.prompt.value = "";
  try {
    await sendPrompt(prompt);
  } catch (e) {
    showError(e);
    if (!ui.prompt.value) ui.prompt.value = prompt;
  } finally {
    state.busy = false;
    ui.send.disabled = false;
    ui.prompt.focus();
  }
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.promptForm.requestSubmit();
  }
});
ui.errorClose.addEventListener("click", clearError);

// --- profiles (when the service has them) -------------------------------------------------------------------

async function loadProfiles() {
  let page;
  try {
    page = await request("GET", "/api/v1/agents");
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return; // no profiles on this service
    throw e;
  }
  const chosen = ui.profile.value;
  ui.profile.replaceChildren(new Option("default", ""));
  for (const profile of page.items || []) ui.profile.append(new Option(profile.name, profile.agent_id));
  ui.profile.value = chosen;
  ui.profileField.hidden = (page.items || []).length === 0;
}

// --- start --------------------------------------------------------------------------------------------------

async function start() {
  const match = /^#session=(.+)$/.exec(location.hash);
  const sessionId = match ? decodeURIComponent(match[1]) : null;
  state.sessionId = sessionId;
  markCurrent();
  try {
    await loadSessions();
    await loadProfiles();
    // Only the session of the address, and only if nothing was chosen or sent meanwhile: a turn sent while the list
    // loaded has made its own (new) session current, and reloading that one would wipe its streaming reply.
    if (sessionId && state.sessionId === sessionId && !state.busy) await selectSession(sessionId);
  } catch (e) {
    showError(e);
  }
}

start();
