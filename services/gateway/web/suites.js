// The Suites view: start a suite from pasted YAML (POST /v1/suites), follow it live (its
// events, GET /v1/suites/{id}/events, each one answered by GET /v1/suites/{id}), open any
// member (a simulation, #/simulations/{id}), cancel it (DELETE), and the recent suites
// (GET /v1/suites). The YAML is read here, by js-yaml (js-yaml.min.js, a global `jsyaml`).
import { ApiError, NeedsKey, NotFound } from "./api.js";

const SUITE_HASH = /^#\/suites(?:\/([A-Za-z0-9_-]{1,64}))?$/;
const ENDED = new Set(["completed", "cancelled"]);
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 15000;
const STATUS_TEXT = {
  queued: "Queued", running: "Running", cancelling: "Cancelling…", completed: "Completed",
  cancelled: "Cancelled",
};

const $ = (id) => document.getElementById(id);

function element(tag, text, className) {
  const made = document.createElement(tag);
  if (text !== undefined) made.textContent = text;
  if (className) made.className = className;
  return made;
}

const percent = (fraction) => `${Math.round((fraction || 0) * 100)}%`;

class InputError extends Error {}

/** The body of POST /v1/suites from a suite file's text (a bare list is the scenarios). */
export function suiteBody(text) {
  let data;
  try {
    data = globalThis.jsyaml.load(text);
  } catch (error) {
    const where = error.mark ? `YAML line ${error.mark.line + 1}, column ${error.mark.column + 1}`
      : "YAML";
    throw new InputError(`${where}: ${error.reason || error.message}`);
  }
  if (Array.isArray(data)) data = { scenarios: data };
  if (!data || typeof data !== "object") {
    throw new InputError("A suite is a mapping with `scenarios` (or a list of scenarios).");
  }
  if ("include" in data) {
    throw new InputError("include: names files, which a pasted suite can't reach: paste " +
      "their scenarios here instead.");
  }
  return data;
}

/** "scenarios[1] (“colours”).user.opening" for a 422's loc, with the scenario's name. */
function fieldName(loc, body) {
  const parts = (Array.isArray(loc) ? loc : []).filter((part) => part !== "body");
  let name = "";
  parts.forEach((part, at) => {
    if (typeof part === "number") {
      name += `[${part}]`;
      const scenario = parts[at - 1] === "scenarios" && at === 1 && body.scenarios?.[part];
      if (scenario && typeof scenario.name === "string") name += ` (“${scenario.name}”)`;
    } else {
      name += name ? `.${part}` : String(part);
    }
  });
  return name;
}

export class SuitesView {
  constructor(api) {
    this.api = api;
    this.id = null;
    this.generation = 0;
    $("suite-form").addEventListener("submit", (submitted) => {
      submitted.preventDefault();
      this.start();
    });
    $("suite-api-key").addEventListener("change", () => {
      this.api.setKey($("suite-api-key").value);
      this.close(); // opened again, with the key
      this.route();
    });
    $("suite-cancel").addEventListener("click", () => this.cancel());
  }

  /** Shows the view when the address is #/suites or #/suites/{id}; false otherwise. */
  route() {
    const match = SUITE_HASH.exec(window.location.hash);
    if (!match) {
      this.close();
      return false;
    }
    if (match[1] && match[1] !== this.id) this.open(match[1]);
    if (!match[1]) this.close();
    this.loadList();
    return true;
  }

  needsKey(message) {
    $("suite-api-key-field").hidden = false;
    $("suite-api-key").value = this.api.key;
    this.showErrors([message]);
    $("suite-api-key").focus();
  }

  showErrors(messages) {
    const box = $("suite-error");
    box.hidden = messages.length === 0;
    if (messages.length > 0) $("suite-yaml").setAttribute("aria-invalid", "true");
    else $("suite-yaml").removeAttribute("aria-invalid");
    box.replaceChildren(...messages.map((message) => element("p", message)));
  }

  async start() {
    this.showErrors([]);
    let body;
    try {
      body = suiteBody($("suite-yaml").value);
    } catch (error) {
      this.showErrors([error.message]);
      $("suite-yaml").focus();
      return;
    }
    const button = $("suite-start");
    button.disabled = true;
    try {
      const accepted = await this.api.call("POST", "/v1/suites", body);
      window.location.hash = `#/suites/${accepted.suite_id}`;
    } catch (error) {
      if (error instanceof NeedsKey) {
        this.needsKey(this.api.key ? "That API key was not accepted." :
          "This gateway needs an API key: enter it and start again.");
      } else if (error instanceof ApiError && Array.isArray(error.data.detail)) {
        this.showErrors(error.data.detail.map((item) =>
          `${fieldName(item.loc, body) || "suite"}: ${item.msg}`));
      } else if (error instanceof NotFound) {
        this.showErrors(["Could not start: this gateway has no suites (an older version?)"]);
      } else {
        this.showErrors([`Could not start: ${error.message}`]);
      }
    } finally {
      button.disabled = false;
    }
  }

  async loadList() {
    let listed;
    try {
      listed = await this.api.call("GET", "/v1/suites");
    } catch {
      return; // no key yet, or a gateway without suites: the list stays as it is
    }
    const suites = Array.isArray(listed.suites) ? listed.suites : [];
    $("suites-empty").hidden = suites.length > 0;
    $("suites-list").replaceChildren(...suites.map((suite) => {
      const link = element("a");
      link.href = `#/suites/${suite.suite_id}`;
      if (suite.suite_id === this.id) link.setAttribute("aria-current", "true");
      const counts = suite.counts || {};
      const ended = (counts.completed || 0) + (counts.failed || 0) + (counts.cancelled || 0);
      const when = suite.created_at ? new Date(suite.created_at).toLocaleString() : "";
      link.append(element("span", suite.name || suite.suite_id, "recent-title"),
        element("span", [suite.status, `${ended}/${counts.members || 0} ended`, when]
          .filter(Boolean).join(" · "), "recent-meta"));
      const item = element("li");
      item.append(link);
      return item;
    }));
  }

  open(id) {
    this.close();
    this.id = id;
    this.lastEventId = "";
    this.retryMs = FIRST_RETRY_MS;
    $("suite").hidden = false;
    $("suite-heading").textContent = "Suite";
    $("suite-rows").replaceChildren();
    $("suite-summary").textContent = "";
    this.setStatus("connecting", "Connecting…");
    const generation = this.generation;
    this.refresh().then((suite) => {
      if (generation === this.generation && !(suite && ENDED.has(suite.status))) {
        this.follow(generation);
      }
    });
  }

  close() {
    this.generation += 1;
    this.id = null;
    clearTimeout(this.retryTimer);
    if (this.abort) this.abort.abort();
    this.abort = null;
    $("suite").hidden = true;
  }

  /** Its events, live: each one is a reason to read the suite's state again. */
  async follow(generation) {
    const id = this.id;
    this.abort = new AbortController();
    $("suite-connection").textContent = "Live";
    try {
      const path = `/v1/suites/${encodeURIComponent(id)}/events`;
      for await (const event of this.api.events(path, this.lastEventId, this.abort.signal)) {
        if (generation !== this.generation) return;
        this.lastEventId = event.id || this.lastEventId;
        this.retryMs = FIRST_RETRY_MS;
        const suite = await this.refresh();
        if (ENDED.has(event.type) || (suite && ENDED.has(suite.status))) {
          $("suite-connection").textContent = "";
          this.loadList();
          return;
        }
      }
    } catch (error) {
      if (generation !== this.generation) return;
      if (error instanceof NeedsKey) {
        this.needsKey("This gateway needs an API key to show this suite.");
        return;
      }
    }
    if (generation !== this.generation) return;
    // The stream ended early (a restarting gateway): resume after the last event seen.
    const delay = this.retryMs;
    this.retryMs = Math.min(delay * 2, MAX_RETRY_MS);
    $("suite-connection").textContent = `Reconnecting in ${Math.round(delay / 1000)} s`;
    this.retryTimer = setTimeout(() => this.follow(generation), delay);
  }

  /** GET /v1/suites/{id}, one at a time: asked for meanwhile, it runs once more after. */
  refresh() {
    const generation = this.generation;
    if (this.pending && this.pending.generation === generation) {
      this.pending.again = true;
      return this.pending.promise;
    }
    const pending = { generation, again: true };
    pending.promise = (async () => {
      let suite = null;
      while (pending.again && generation === this.generation) {
        pending.again = false;
        suite = await this.load(generation);
      }
      if (this.pending === pending) this.pending = null;
      return suite;
    })();
    this.pending = pending;
    return pending.promise;
  }

  async load(generation) {
    const id = this.id;
    try {
      const suite = await this.api.call("GET", `/v1/suites/${encodeURIComponent(id)}`);
      if (generation === this.generation) this.render(suite);
      return suite;
    } catch (error) {
      if (generation !== this.generation) return null;
      if (error instanceof NotFound) {
        this.close();
        $("suite").hidden = false;
        this.setStatus("unknown", "Not found");
        $("suite-summary").textContent = "No such suite here: it never existed, or it " +
          "belongs to another API key.";
      } else if (error instanceof NeedsKey) {
        this.needsKey("This gateway needs an API key to show this suite.");
      }
      return null;
    }
  }

  render(suite) {
    const counts = suite.counts;
    const ended = counts.completed + counts.failed + counts.cancelled;
    $("suite-heading").textContent = `Suite: ${suite.name}`;
    this.setStatus(suite.status, STATUS_TEXT[suite.status] || suite.status);
    $("suite-progress").max = Math.max(counts.members, 1);
    $("suite-progress").value = ended;
    const parts = [
      `${ended} of ${counts.members} runs ended`,
      `${counts.running} running`,
      `${counts.judged} judged`,
      `${counts.passed} passed`,
      `pass rate ${percent(suite.pass_rate)}`,
      `pass^k ${percent(suite.pass_hat_k)}`,
    ];
    if (typeof suite.spent_usd === "number") parts.push(`$${suite.spent_usd.toFixed(4)}`);
    if (suite.duration_ms) parts.push(`${(suite.duration_ms / 1000).toFixed(1)} s`);
    $("suite-summary").textContent = parts.join(" · ");
    $("suite-rows").replaceChildren(...suite.scenarios.map((scenario) => this.row(scenario)));
    $("suite-cancel").disabled = !["queued", "running"].includes(suite.status);
  }

  row(scenario) {
    const row = element("tr");
    row.dataset.scenario = scenario.name;
    const name = element("th", scenario.name);
    name.scope = "row";
    const runs = element("td");
    const list = element("ul", undefined, "runs");
    for (const run of scenario.runs) {
      const item = element("li");
      const text = `Run ${run.repeat_index}: ${run.status}` +
        (run.verdict ? `, ${run.verdict}` : run.status === "running" ? "…" : "");
      const label = run.simulation_id ? element("a", text) : element("span", text);
      if (run.simulation_id) label.href = `#/simulations/${run.simulation_id}`;
      label.className = "run";
      label.dataset.verdict = run.verdict || "";
      label.dataset.status = run.status;
      item.append(label);
      list.append(item);
    }
    runs.append(list);
    const verdict = scenario.passed === true ? "passed"
      : scenario.passed === false ? "not passed" : "pending";
    const result = element("td", verdict, "scenario-result");
    result.dataset.passed = String(scenario.passed);
    row.append(name, runs, result);
    return row;
  }

  async cancel() {
    const id = this.id;
    if (!id) return;
    $("suite-cancel").disabled = true;
    try {
      await this.api.call("DELETE", `/v1/suites/${encodeURIComponent(id)}`);
      if (this.id === id) this.refresh();
    } catch (error) {
      if (this.id !== id) return;
      if (error instanceof NeedsKey) this.needsKey("Cancelling needs the API key.");
      else this.showErrors([`Could not cancel: ${error.message}`]);
      $("suite-cancel").disabled = false;
    }
  }

  setStatus(status, text) {
    $("suite-status").dataset.status = status;
    $("suite-status").textContent = text;
  }
}
