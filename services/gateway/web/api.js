// The gateway's HTTP API as the page's modules use it: JSON calls and event streams, with the
// API key (if any) as a bearer token, never in a URL.
const KEY_STORAGE = "convsim.apiKey"; // sessionStorage: this tab only

export class NeedsKey extends Error {}
export class NotFound extends Error {}

export class ApiError extends Error {
  constructor(message, status, data, retryAfter) {
    super(message);
    this.status = status;
    this.data = data;
    this.retryAfter = retryAfter;
  }
}

export class Api {
  constructor() {
    this.key = sessionStorage.getItem(KEY_STORAGE) || "";
  }

  setKey(key) {
    this.key = key.trim();
    if (this.key) sessionStorage.setItem(KEY_STORAGE, this.key);
    else sessionStorage.removeItem(KEY_STORAGE);
  }

  headers(accept) {
    const headers = { Accept: accept };
    if (this.key) headers.Authorization = `Bearer ${this.key}`;
    return headers;
  }

  async call(method, path, body) {
    const headers = this.headers("application/json");
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) throw new NeedsKey("an API key is needed");
    if (response.status === 404) throw new NotFound("no such simulation");
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new ApiError(describeError(data, response.status), response.status, data,
        response.headers.get("Retry-After"));
    }
    return data;
  }

  /** Server-Sent Events read with fetch (so the key goes in a header): yields
   * {type, id, data} until the server ends the stream; resumes after `lastEventId`. */
  async *events(path, lastEventId, signal) {
    const headers = this.headers("text/event-stream");
    if (lastEventId) headers["Last-Event-ID"] = lastEventId;
    const response = await fetch(path, { headers, signal });
    if (response.status === 401) throw new NeedsKey("an API key is needed");
    if (response.status === 404) throw new NotFound("not found");
    if (!response.ok) throw new ApiError(`the gateway answered HTTP ${response.status}`,
      response.status, {});
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // Lines end in \r\n, \n or \r; a \r at the end may be half of a \r\n: kept for later.
      const held = buffer.endsWith("\r") ? "\r" : "";
      buffer = buffer.slice(0, buffer.length - held.length).replace(/\r\n?/g, "\n") + held;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = parseEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (event) yield event;
      }
    }
  }
}

/** One SSE block; null for a comment (a keep-alive) or an empty block. */
function parseEvent(block) {
  const event = { type: "message", id: "", data: "" };
  let seen = false;
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    if (colon === 0 || line === "") continue;
    const name = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (name === "event") event.type = value;
    else if (name === "id") event.id = value;
    else if (name === "data") event.data = event.data ? `${event.data}\n${value}` : value;
    else continue;
    seen = true;
  }
  return seen ? event : null;
}

export function describeError(data, status) {
  const detail = data && data.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => `${fieldOf(item) || "request"}: ${item.msg}`).join("; ");
  }
  return `the gateway answered HTTP ${status}`;
}

export function fieldOf(item) {
  const location = Array.isArray(item.loc) ? item.loc.filter((part) => part !== "body") : [];
  return location.join(".");
}
