// convsim's live page: a plain ES module, no build step. It speaks only the public HTTP API:
// GET /v1/bot-targets, POST /v1/simulations, POST .../stream-token, GET .../events
// (Server-Sent Events), DELETE; for a chat, POST /v1/conversations, POST .../messages,
// POST .../suggestions and DELETE /v1/conversations/{id}; the Suites view is suites.js.
import { Api, ApiError, NeedsKey, NotFound, fieldOf } from "./api.js";
import { SuitesView } from "./suites.js";

const RECENT_STORAGE = "convsim.recent"; // localStorage: this browser's recent simulations
const MAX_RECENT = 20;
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 15000;
const EVENT_TYPES = [
  "queued", "started", "turn", "retrying", "waiting", "completed", "failed", "cancelled",
];
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const SIMULATION_HASH = /^#\/simulations\/([A-Za-z0-9_-]{1,64})$/;
// What a gateway offers unless it says otherwise (GET /v1/bot-targets): its two built-ins.
const BUILT_IN_TARGETS = [
  { name: "default", kind: "robot_ai_lesson" },
  { name: "llm", kind: "openai_chat" },
];
const KIND_HINTS = {
  robot_ai_lesson: "A robot-ai-lesson bot API: pick the bot by its id.",
  openai_chat: "A prompt on an LLM: write the bot's prompt, the simulated user's persona " +
    "plays against it.",
  http_json: "A JSON webhook configured on the server.",
};
const STOP_REASONS = {
  max_turns: "the bot gave the most replies asked for",
  user_ended: "the simulated user ended it",
  bot_ended: "the bot ended it",
  closed: "the chat was ended",
  idle: "no message came for too long",
};

const $ = (id) => document.getElementById(id);

/** How a request names its bot: "bot 16 (default)", "llm", "bot 16"; `prefix` false: "16". */
function botLabel(request, prefix = true) {
  const target = request.bot_target || "";
  if (request.bot_id === null || request.bot_id === undefined) return target || "default";
  return `${prefix ? "bot " : ""}${request.bot_id}${target ? ` (${target})` : ""}`;
}

/** This browser's recent simulations, newest first, in localStorage. */
class RecentList {
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
  }

  load() {
    try {
      const entries = JSON.parse(localStorage.getItem(RECENT_STORAGE) || "[]");
      return Array.isArray(entries) ? entries.filter((entry) => entry && entry.id) : [];
    } catch {
      return [];
    }
  }

  remember(id, fields) {
    const entries = this.load();
    const found = entries.find((entry) => entry.id === id);
    const entry = { ...(found || { id, createdAt: new Date().toISOString() }), ...fields };
    const rest = entries.filter((other) => other.id !== id);
    const next = found ? entries.map((other) => (other.id === id ? entry : other))
      : [entry, ...rest].slice(0, MAX_RECENT);
    localStorage.setItem(RECENT_STORAGE, JSON.stringify(next));
    this.render(id);
  }

  render(openId) {
    const entries = this.load();
    this.empty.hidden = entries.length > 0;
    this.list.replaceChildren(...entries.map((entry) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = `#/simulations/${entry.id}`;
      if (entry.id === openId) link.setAttribute("aria-current", "true");
      const title = document.createElement("span");
      title.className = "recent-title";
      title.textContent = entry.prompt ? `“${entry.prompt}”` : entry.title || entry.id;
      const meta = document.createElement("span");
      meta.className = "recent-meta";
      const when = entry.createdAt ? new Date(entry.createdAt).toLocaleString() : "";
      const bot = entry.bot || (typeof entry.botId === "number" ? `bot ${entry.botId}` : "");
      meta.textContent = [bot, entry.status || "", when].filter(Boolean).join(" · ");
      link.append(title, meta);
      item.append(link);
      return item;
    }));
  }
}

/** One open simulation: its events over EventSource, rendered as chat bubbles. */
class Viewer {
  constructor(api, recent, keyPrompt) {
    this.api = api;
    this.recent = recent;
    this.keyPrompt = keyPrompt;
    this.generation = 0;
    this.id = null;
    this.chat = new ChatBox(api, keyPrompt);
    $("cancel").addEventListener("click", () => this.cancel());
  }

  /** A conversation a person steers (POST /v1/conversations), known from its request. */
  get isChat() {
    return Boolean(this.request && this.request.mode === "conversation");
  }

  open(id) {
    this.close();
    this.id = id;
    this.lastSeq = 0;
    this.ended = false;
    this.request = null;
    this.botReplies = 0;
    this.sawOpening = false;
    this.retryMs = FIRST_RETRY_MS;
    this.waitingForKey = false;
    $("bubbles").replaceChildren();
    $("outcome").hidden = true;
    $("outcome").replaceChildren();
    $("facts").hidden = false;
    $("fact-id").textContent = id;
    $("fact-bot").textContent = "…";
    $("prompts").hidden = true;
    $("fact-id-label").textContent = "Simulation";
    $("fact-suite-row").hidden = true;
    $("cancel").hidden = false;
    $("cancel").disabled = false;
    this.chat.reset(id);
    this.setStatus("connecting", "Connecting…");
    this.setConnection("connecting");
    this.setWaiting("");
    this.recent.render(id);
    this.connect();
  }

  close() {
    this.generation += 1;
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
  }

  async connect() {
    const generation = ++this.generation;
    const path = `/v1/simulations/${encodeURIComponent(this.id)}`;
    let token;
    try {
      // Also tells a missing simulation (404) or a missing key (401) apart before streaming.
      token = await this.api.call("POST", `${path}/stream-token`);
    } catch (error) {
      if (generation !== this.generation) return;
      if (error instanceof NeedsKey) {
        this.waitingForKey = true;
        this.setConnection("waiting for an API key");
        this.keyPrompt(this.api.key ? "That API key was not accepted." :
          "This gateway needs an API key to show this simulation.");
      } else if (error instanceof NotFound) {
        this.notFound();
      } else {
        this.retryLater();
      }
      return;
    }
    if (generation !== this.generation) return;
    const params = new URLSearchParams();
    if (this.lastSeq > 0) params.set("last_event_id", String(this.lastSeq));
    // Only a short-lived token scoped to this simulation goes in the URL, never the key.
    if (this.api.key) params.set("access_token", token.token);
    const query = params.toString();
    const source = new EventSource(`${path}/events${query ? `?${query}` : ""}`);
    this.source = source;
    this.setConnection("connecting");
    source.onopen = () => {
      this.retryMs = FIRST_RETRY_MS;
      this.setConnection("live");
    };
    for (const type of EVENT_TYPES) {
      source.addEventListener(type, (message) => this.receive(JSON.parse(message.data)));
    }
    source.onerror = () => {
      if (this.ended || source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        // Refused (an expired token, a restarting gateway): a fresh token, resume after lastSeq.
        source.close();
        this.resumeOrReopen(generation);
      } else {
        // The browser reconnects by itself, sending Last-Event-ID: the gateway resumes there.
        this.setConnection("reconnecting…");
      }
    };
  }

  /** After a refused stream: resume after lastSeq, unless the simulation has ended. Then the
   * page was refused (204) because lastSeq is the end's seq although the end was never shown:
   * a newer attempt ended it at a seq an older attempt's event was shown at. Showing it again
   * from its start shows the history as it stands, and its end. */
  async resumeOrReopen(generation) {
    let ended = false;
    try {
      const state = await this.api.call("GET", `/v1/simulations/${encodeURIComponent(this.id)}`);
      ended = TERMINAL.has(state.status);
    } catch (error) {
      // Unknown: resume as for any refused stream.
    }
    if (generation !== this.generation) return;
    if (ended && this.lastSeq > 0) this.open(this.id);
    else this.retryLater();
  }

  resumeWithKey() {
    if (this.id && this.waitingForKey) {
      this.waitingForKey = false;
      this.connect();
    }
  }

  retryLater() {
    const delay = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
    this.setConnection(`reconnecting in ${Math.round(delay / 1000)} s`);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  receive(event) {
    if (event.simulation_id !== this.id) return;
    // Seen already, unless it is the end a newer attempt published at a seq an older one's
    // event was shown at (the gateway sends that end once): a simulation always ends.
    if (event.seq <= this.lastSeq && !(TERMINAL.has(event.type) && !this.ended)) return;
    this.lastSeq = Math.max(this.lastSeq, event.seq);
    switch (event.type) {
      case "queued":
        this.learnRequest(event.request, event.timestamp);
        this.setStatus("queued", "Queued: waiting for an orchestrator");
        this.recent.remember(this.id, { status: "queued" });
        break;
      case "started":
        // At seq 2 it carries the request when `queued` is missing.
        if (event.request && !this.request) this.learnRequest(event.request, event.timestamp);
        this.setStatus("running", this.isChat ? "Chat open" : "Running");
        this.recent.remember(this.id, { status: "running" });
        if (!this.isChat) this.setWaiting("Sending the opening message…");
        break;
      case "turn":
        this.addBubble(event);
        break;
      case "retrying":
        this.addNotice(event);
        break;
      case "waiting":
        // No call is made until a permit of the target is free (its max_concurrency).
        if (event.request && !this.request) this.learnRequest(event.request, event.timestamp);
        this.setWaiting(`Waiting for ${event.target}: at its limit of calls in flight…`);
        break;
      default:
        if (event.request && !this.request) this.learnRequest(event.request, event.timestamp);
        if (TERMINAL.has(event.type)) this.finish(event);
    }
  }

  learnRequest(request, timestamp) {
    this.request = request;
    $("fact-bot").textContent = botLabel(request, false);
    // A suite's member: the way back to its suite.
    $("fact-suite-row").hidden = !request.suite_id;
    if (request.suite_id) {
      $("fact-suite").href = `#/suites/${request.suite_id}`;
      $("fact-suite").textContent = request.scenario ? `${request.scenario}, run ` +
        `${request.repeat_index || 1}` : request.suite_id;
    }
    this.recent.remember(this.id, {
      bot: botLabel(request), prompt: request.user_prompt, createdAt: timestamp,
      ...(this.isChat ? { title: "Chat" } : {}),
    });
    if (this.isChat) {
      // A person steers it: the message box instead of Cancel; DELETE ends it `closed`.
      $("fact-id-label").textContent = "Chat";
      $("cancel").hidden = true;
      if (!this.ended) this.chat.show();
    }
    // Two prompts talking: the bot's prompt and the simulated user's, side by side.
    const twoPrompts = typeof request.bot_prompt === "string" && request.bot_prompt !== "";
    $("prompts").hidden = !twoPrompts;
    if (!twoPrompts) return;
    $("prompt-bot").textContent = request.bot_prompt;
    $("prompt-user").textContent = request.persona || "(the default persona)";
    $("prompt-goal").hidden = !request.goal;
    $("prompt-goal").textContent = request.goal ? `Goal: ${request.goal}` : "";
  }

  addBubble(turn) {
    const item = document.createElement("li");
    item.className = `bubble ${turn.role}`;
    item.dataset.index = String(turn.index);
    // One bot reply of several messages: consecutive bubbles, each saying which part it is.
    const part = typeof turn.part === "number" ? turn.part : null;
    if (part !== null) {
      item.dataset.part = String(part);
      if (part > 1) item.classList.add("part-next");
    }
    const speaker = document.createElement("p");
    speaker.className = "speaker";
    speaker.textContent = turn.role === "bot" ? "Bot" : this.isChat ? "You" : "Simulated user";
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = turn.content;
    const meta = document.createElement("p");
    meta.className = "meta";
    const time = document.createElement("time");
    time.dateTime = turn.timestamp;
    time.textContent = new Date(turn.timestamp).toLocaleTimeString();
    const latency = document.createElement("span");
    latency.className = "latency";
    latency.textContent = this.latencyText(turn);
    meta.append(time, " · ", latency);
    if (part !== null && turn.parts) meta.append(` · message ${part} of ${turn.parts}`);
    item.append(speaker, text, meta);
    $("bubbles").append(item);
    if (turn.role === "bot" && !turn.from_history && (part === null || part === 1)) {
      this.botReplies += 1;
    }
    const more = !this.request || this.botReplies < this.request.max_turns;
    const replyDone = turn.role === "bot" && (part === null || !turn.parts || part >= turn.parts);
    if (this.isChat && !turn.from_history) {
      if (turn.role === "user") this.chat.userTurn();
      else if (replyDone) this.chat.botReplied();
    }
    if (turn.role === "user") this.setWaiting("The bot is replying…");
    else if (!replyDone || this.isChat) this.setWaiting("");
    else this.setWaiting(more ? "The simulated user is writing…" : "");
    item.scrollIntoView({ block: "nearest" });
  }

  latencyText(turn) {
    if (turn.from_history) return "from history";
    if (this.isChat && turn.role === "user") return "sent"; // the time is the person's own
    const opening = turn.role === "user" && !this.sawOpening;
    if (turn.role === "user") this.sawOpening = true;
    // The opening message is the request's own: no call produced it.
    if (opening && turn.latency_ms === 0) return "opening message";
    return `${(turn.latency_ms / 1000).toFixed(2)} s`;
  }

  addNotice(retry) {
    const item = document.createElement("li");
    item.className = "notice";
    const seconds = (retry.retry_in_ms / 1000).toFixed(1);
    item.textContent = `Retrying ${retry.step}: attempt ${retry.failed_attempt} of ` +
      `${retry.max_attempts} failed (${retry.error.code}); next try in ${seconds} s`;
    $("bubbles").append(item);
  }

  finish(event) {
    this.ended = true;
    this.close();
    this.setConnection("closed (finished)");
    this.setWaiting("");
    $("cancel").disabled = true;
    this.chat.hide();
    const outcome = $("outcome");
    outcome.hidden = false;
    outcome.className = `outcome ${event.type}`;
    const line = document.createElement("p");
    const lines = [line];
    if (event.type === "completed") {
      this.setStatus("completed", this.isChat ? "Chat ended" : "Completed");
      line.textContent = `${this.isChat ? "Chat ended" : "Completed"}: ` +
        `${event.turn_count} bot replies in ${(event.duration_ms / 1000).toFixed(1)} s.`;
      const reason = document.createElement("p");
      reason.className = "stop-reason";
      reason.id = "stop-reason";
      reason.dataset.stopReason = event.stop_reason || "";
      const code = document.createElement("code");
      code.textContent = event.stop_reason || "unknown";
      const why = STOP_REASONS[event.stop_reason];
      reason.append("Stop reason: ", code, why ? ` (${why})` : "");
      lines.push(reason);
    } else if (event.type === "failed") {
      this.setStatus("failed", "Failed");
      outcome.setAttribute("role", "alert");
      line.textContent = `Failed (${event.error.code}): ${event.error.message}`;
    } else {
      this.setStatus("cancelled", "Cancelled");
      line.textContent = "Cancelled: the transcript above is what was said before.";
    }
    outcome.replaceChildren(...lines);
    this.recent.remember(this.id, { status: event.type });
  }

  notFound() {
    this.ended = true;
    this.setStatus("unknown", "Not found");
    this.setConnection("closed");
    $("cancel").disabled = true;
    this.chat.hide();
    const outcome = $("outcome");
    outcome.hidden = false;
    outcome.className = "outcome failed";
    outcome.textContent = "No such simulation here: it never existed, its events have expired, " +
      "or it belongs to another API key.";
    this.recent.remember(this.id, { status: "not found" });
  }

  async cancel() {
    if (!this.id || this.ended) return;
    const button = $("cancel");
    button.disabled = true;
    const id = this.id;
    try {
      await this.api.call("DELETE", `/v1/simulations/${encodeURIComponent(id)}`);
      // The `cancelled` event may have arrived before this answer did.
      if (this.id === id && !this.ended) this.setStatus("cancelling", "Cancelling…");
    } catch (error) {
      if (this.id !== id) return;
      if (error instanceof NeedsKey) this.keyPrompt("Cancelling needs the API key.");
      else if (!(error instanceof ApiError && error.status === 409)) button.disabled = false;
      this.setWaiting("");
      $("outcome").hidden = false;
      $("outcome").textContent = `Could not cancel: ${error.message}`;
    }
  }

  setStatus(status, text) {
    const element = $("status");
    element.dataset.status = status;
    element.textContent = text;
  }

  setConnection(text) {
    $("connection").textContent = text;
  }

  setWaiting(text) {
    $("waiting").hidden = !text;
    $("waiting-text").textContent = text;
  }
}

/** The message box of an open chat: Send (one message at a time: the next waits for the bot's
 * reply, as the gateway does with 409), Suggest (fills the box with what the simulated user
 * would say; it is not sent), End chat (DELETE: the chat ends `completed`, stop reason
 * `closed`). The bot's replies come as `turn` events on the stream the Viewer follows. */
class ChatBox {
  constructor(api, keyPrompt) {
    this.api = api;
    this.keyPrompt = keyPrompt;
    this.form = $("chat-form");
    this.box = $("chat-message");
    this.reset(null);
    this.form.addEventListener("submit", (submitted) => {
      submitted.preventDefault();
      this.send();
    });
    this.box.addEventListener("keydown", (pressed) => {
      if (pressed.key === "Enter" && !pressed.shiftKey && !pressed.isComposing) {
        pressed.preventDefault();
        this.send();
      }
    });
    $("chat-suggest").addEventListener("click", () => this.suggest());
    $("chat-end").addEventListener("click", () => this.end());
  }

  reset(id) {
    this.id = id;
    this.usersSeen = 0; // the person's messages seen as `turn` events
    this.sent = 0; // the index the gateway gave the last message sent from here
    this.replies = 0; // the bot's complete replies seen
    this.busy = false;
    this.ending = false;
    this.box.value = "";
    this.showError("");
    this.hide();
  }

  show() {
    const appearing = this.form.hidden;
    this.form.hidden = false;
    this.update();
    if (appearing && document.activeElement === $("conversation")) this.box.focus();
  }

  hide() {
    this.form.hidden = true;
  }

  userTurn() {
    this.usersSeen += 1;
    this.update();
  }

  botReplied() {
    this.replies += 1;
    this.update();
  }

  /** A message is out and its reply not in yet. */
  get awaitingReply() {
    return Math.max(this.usersSeen, this.sent) > this.replies;
  }

  update() {
    const blocked = this.busy || this.ending || this.awaitingReply;
    $("chat-send").disabled = blocked;
    $("chat-suggest").disabled = blocked;
    $("chat-end").disabled = this.ending;
  }

  showError(message) {
    $("chat-error").hidden = !message;
    $("chat-error").textContent = message;
  }

  get path() {
    return `/v1/conversations/${encodeURIComponent(this.id)}`;
  }

  /** One call at a time, its failure said under the box; false when it failed. */
  async attempt(what, call) {
    const id = this.id;
    this.showError("");
    try {
      await call(id);
      return true;
    } catch (error) {
      if (this.id !== id) return false;
      if (error instanceof NeedsKey) this.keyPrompt(`${what} needs the API key.`);
      else this.showError(`Could not ${what.toLowerCase()}: ${error.message}`);
      return false;
    }
  }

  async send() {
    const content = this.box.value;
    if (this.busy || this.ending || this.awaitingReply) return;
    if (!content.trim()) {
      this.showError("Write a message first, or take a suggestion.");
      this.box.focus();
      return;
    }
    this.busy = true;
    this.update();
    await this.attempt("Send", async (id) => {
      const accepted = await this.api.call("POST", `${this.path}/messages`, { content });
      if (this.id !== id) return;
      this.sent = Math.max(this.sent, accepted.index);
      if (this.box.value === content) this.box.value = "";
    });
    this.busy = false;
    this.update();
    this.box.focus();
  }

  async suggest() {
    if (this.busy || this.ending || this.awaitingReply) return;
    const button = $("chat-suggest");
    this.busy = true;
    this.update();
    button.setAttribute("aria-busy", "true");
    this.box.placeholder = "Asking the simulated user…";
    await this.attempt("Suggest", async (id) => {
      const suggestion = await this.api.call("POST", `${this.path}/suggestions`);
      if (this.id !== id) return;
      // Only filled in: the person may edit it, then sends it (or not).
      this.box.value = suggestion.content;
      this.box.focus();
      this.box.setSelectionRange(this.box.value.length, this.box.value.length);
    });
    button.removeAttribute("aria-busy");
    this.box.placeholder = "";
    this.busy = false;
    this.update();
  }

  async end() {
    if (this.ending) return;
    this.ending = true;
    this.update();
    // The `completed` event (stop reason `closed`) then ends the view, as for a simulation.
    const ended = await this.attempt("End chat", (id) => this.api.call("DELETE", this.path)
      .then(() => undefined, (error) => {
        if (this.id === id && error instanceof ApiError && error.status === 409) return; // over
        throw error;
      }));
    if (!ended) {
      this.ending = false;
      this.update();
    }
  }
}

/** The bot target picker: the gateway's targets (GET /v1/bot-targets), and the fields each
 * kind needs shown (a bot id, the bot's prompt, nothing). */
class TargetPicker {
  constructor(api) {
    this.api = api;
    this.select = $("bot-target");
    this.loaded = false;
    this.select.addEventListener("change", () => this.showKind());
    this.render(BUILT_IN_TARGETS);
  }

  async load() {
    try {
      const targets = await this.api.call("GET", "/v1/bot-targets");
      if (Array.isArray(targets) && targets.length > 0) {
        this.render(targets);
        this.loaded = true;
      }
    } catch {
      // No key yet (401), or an older gateway: the built-ins stay; loaded again with a key.
    }
  }

  render(targets) {
    const chosen = this.select.value || "default";
    this.select.replaceChildren(...targets.map((target) => {
      const option = document.createElement("option");
      option.value = target.name;
      option.dataset.kind = target.kind;
      option.textContent = `${target.name} (${target.kind})`;
      return option;
    }));
    const names = targets.map((target) => target.name);
    this.select.value = names.includes(chosen) ? chosen
      : names.includes("default") ? "default" : names[0];
    this.showKind();
  }

  get kind() {
    const option = this.select.selectedOptions[0];
    return option ? option.dataset.kind : "robot_ai_lesson";
  }

  showKind() {
    const kind = this.kind;
    for (const element of document.querySelectorAll("[data-for-kind]")) {
      element.hidden = element.dataset.forKind !== kind;
    }
    $("bot-target-hint").textContent = KIND_HINTS[kind] || "";
    document.body.dataset.botKind = kind;
  }
}

/** The form: the body of POST /v1/simulations, with the gateway's own errors per field. */
function wireForm(api, recent, keyPrompt, picker) {
  const form = $("simulation-form");
  const fields = { bot_target: "bot-target", bot_id: "bot-id", bot_prompt: "bot-prompt",
    user_prompt: "user-prompt", persona: "persona", goal: "goal", script: "script",
    max_turns: "max-turns" };

  function clearErrors() {
    for (const id of Object.values(fields)) {
      $(id).removeAttribute("aria-invalid");
      $(`${id}-error`).hidden = true;
    }
    $("form-error").hidden = true;
  }

  function showError(message, field) {
    const id = fields[field] || fields[(field || "").split(".")[0]];
    if (id && !$(id).closest("[hidden]")) {
      $(id).setAttribute("aria-invalid", "true");
      $(`${id}-error`).textContent = message;
      $(`${id}-error`).hidden = false;
      $(id).focus();
    } else {
      $("form-error").textContent = field ? `${field}: ${message}` : message;
      $("form-error").hidden = false;
    }
  }

  const mode = () => form.elements.mode.value; // "simulation" or "chat"

  function showMode() {
    const chosen = mode();
    document.body.dataset.mode = chosen;
    for (const element of document.querySelectorAll("[data-mode]")) {
      element.hidden = element.dataset.mode !== chosen;
    }
    const chat = chosen === "chat";
    $("new-heading").textContent = chat ? "New chat" : "New simulation";
    $("start").textContent = chat ? "Start chat" : "Start simulation";
    clearErrors();
  }

  for (const radio of form.elements.mode) radio.addEventListener("change", showMode);
  showMode();

  /** POST /v1/simulations's body, or in chat mode POST /v1/conversations's (the bot, the
   * persona and goal: no opening message, script or max turns, the person writes). */
  function bodyOfForm() {
    const chat = mode() === "chat";
    const body = { bot_target: picker.select.value };
    if (!chat) body.user_prompt = $("user-prompt").value;
    const kind = picker.kind;
    if (kind === "robot_ai_lesson") body.bot_id = Number.parseInt($("bot-id").value, 10);
    if (kind === "openai_chat") body.bot_prompt = $("bot-prompt").value;
    if (!chat) body.max_turns = Number.parseInt($("max-turns").value, 10);
    if ($("persona").value.trim()) body.persona = $("persona").value;
    if ($("goal").value.trim()) body.goal = $("goal").value.trim();
    const script = $("script").value.split("\n").map((line) => line.trim()).filter(Boolean);
    if (!chat && script.length > 0) body.script = script;
    return body;
  }

  form.addEventListener("submit", async (submitted) => {
    submitted.preventDefault();
    clearErrors();
    if (!$("api-key-field").hidden) api.setKey($("api-key").value);
    if (api.key && !picker.loaded) await picker.load();
    const body = bodyOfForm();
    for (const [field, value] of Object.entries(body)) {
      if (typeof value === "number" && Number.isNaN(value)) {
        showError("a whole number is needed", field);
        return;
      }
    }
    const button = $("start");
    button.disabled = true;
    const chat = mode() === "chat";
    try {
      const accepted = await api.call("POST", chat ? "/v1/conversations" : "/v1/simulations",
        body);
      const id = chat ? accepted.conversation_id : accepted.simulation_id;
      recent.remember(id, {
        bot: botLabel(body), status: accepted.status,
        ...(chat ? { title: "Chat" } : { prompt: body.user_prompt }),
      });
      // A chat is a simulation whose user turns come from here: the same page, the same events.
      window.location.hash = `#/simulations/${id}`;
      $("conversation").focus(); // a chat's message box takes it once the chat shows
    } catch (error) {
      if (error instanceof NeedsKey) {
        keyPrompt(api.key ? "That API key was not accepted." :
          "This gateway needs an API key: enter it and start again.");
      } else if (error instanceof ApiError && Array.isArray(error.data.detail)) {
        for (const item of error.data.detail) showError(item.msg, fieldOf(item));
      } else if (error instanceof ApiError && error.retryAfter) {
        showError(`${error.message} (retry in ${error.retryAfter} s)`);
      } else {
        showError(`Could not start: ${error.message}`);
      }
    } finally {
      button.disabled = false;
    }
  });
}

function main() {
  const api = new Api();
  const recent = new RecentList($("recent"), $("recent-empty"));
  const keyPrompt = (message) => {
    $("api-key-field").hidden = false;
    $("form-error").textContent = message;
    $("form-error").hidden = false;
    $("api-key").focus();
  };
  const viewer = new Viewer(api, recent, keyPrompt);
  const picker = new TargetPicker(api);
  $("api-key").addEventListener("change", () => {
    api.setKey($("api-key").value);
    viewer.resumeWithKey();
    if (!picker.loaded) picker.load();
  });
  if (api.key) {
    $("api-key-field").hidden = false;
    $("api-key").value = api.key;
  }
  wireForm(api, recent, keyPrompt, picker);
  picker.load();

  const suites = new SuitesView(api);
  const route = () => {
    // #/suites and #/suites/{id}: the Suites view; anything else: the simulations.
    const onSuites = suites.route();
    $("suites-view").hidden = !onSuites;
    $("simulations-view").hidden = onSuites;
    for (const [link, current] of [["nav-suites", onSuites], ["nav-simulations", !onSuites]]) {
      if (current) $(link).setAttribute("aria-current", "page");
      else $(link).removeAttribute("aria-current");
    }
    const match = SIMULATION_HASH.exec(window.location.hash);
    if (match && match[1] !== viewer.id) viewer.open(match[1]);
  };
  window.addEventListener("hashchange", route);
  recent.render(null);
  route();
}

main();
