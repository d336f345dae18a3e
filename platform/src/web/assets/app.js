// Antidote lesson page: starts (or finds) the learner's livelesson, shows its progress, opens
// one terminal per ssh presentation, wires the guide's "Run this snippet" buttons, the stage
// navigation and the verify check, and keeps the livelesson alive while the page is open.
// Talks only to the JSON API (/api/v1); terminals speak the websocket frames of DESIGN §9.
"use strict";

(function () {
  const dataElement = document.getElementById("page-data");
  if (!dataElement) return;
  const page = JSON.parse(dataElement.textContent);
  const statusEl = document.getElementById("status");
  const progressBar = document.querySelector("#progress .bar");
  const failureEl = document.getElementById("failure");
  const tabsEl = document.getElementById("tabs");
  const terminalsEl = document.getElementById("terminals");

  // What a feedback report attaches (also handy when reading a bug report).
  const context = { requestIds: [], traceIds: [], errors: [], livelesson: null };
  window.antidote = { page, context, terminals: {} };

  function reportClientError(message, extra) {
    context.errors.push({ message, at: new Date().toISOString() });
    if (context.errors.length > 20) context.errors.shift();
    const body = Object.assign({ message: String(message).slice(0, 2000), url: location.href }, extra || {});
    if (context.livelesson) body.livelesson_id = context.livelesson.id;
    fetch("/api/v1/client-errors", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    }).catch(() => {});
  }
  window.addEventListener("error", (e) => reportClientError(e.message, { source: "window.onerror" }));
  window.addEventListener("unhandledrejection", (e) =>
    reportClientError(String(e.reason && e.reason.message ? e.reason.message : e.reason), { source: "promise" }));

  class ApiFailure extends Error {
    constructor(status, body) {
      super(body && body.error ? body.error.message : "HTTP " + status);
      this.status = status;
      this.code = body && body.error ? body.error.code : "";
    }
  }

  async function api(method, path, body) {
    const response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    const rid = response.headers.get("x-request-id");
    if (rid) {
      context.requestIds.push(rid);
      if (context.requestIds.length > 20) context.requestIds.shift();
    }
    const tid = response.headers.get("x-trace-id");
    if (tid && context.traceIds[context.traceIds.length - 1] !== tid) {
      context.traceIds.push(tid);
      if (context.traceIds.length > 20) context.traceIds.shift();
    }
    if (response.status === 204) return null;
    const json = await response.json().catch(() => null);
    if (!response.ok) throw new ApiFailure(response.status, json);
    return json;
  }

  async function withSession(fn) {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof ApiFailure && e.status === 401) {
        await api("POST", "/api/v1/sessions");
        return await fn();
      }
      throw e;
    }
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function showStatus(text, kind) {
    statusEl.textContent = text;
    statusEl.dataset.state = kind || "";
  }

  function showProgress(ll) {
    const total = ll.endpoints.length || 1;
    const steps = { INITIALIZED: 0, BOOTING: 0.2, CONFIGURING: 0.8, READY: 1, FAILED: 1 };
    const fraction = ll.status === "BOOTING" ? 0.1 + 0.7 * (ll.reachable / total) : steps[ll.status];
    progressBar.style.width = Math.round(100 * (fraction || 0)) + "%";
    const words = {
      INITIALIZED: "Queued",
      BOOTING: "Booting",
      CONFIGURING: "Configuring stage " + (ll.stage + 1),
      READY: "Ready",
      FAILED: "Failed",
    };
    showStatus(
      words[ll.status] + " — endpoints reachable " + ll.reachable + " of " + ll.endpoints.length,
      ll.status);
    statusEl.dataset.status = ll.status;
  }

  function showFailure(ll) {
    // A FAILED lab's instances are torn down: its terminals have nothing to reach.
    closeTerminals();
    failureEl.hidden = false;
    failureEl.replaceChildren();
    const h = document.createElement("h3");
    h.textContent = "The lab could not start";
    const p = document.createElement("p");
    p.textContent = ll.error ? ll.error.phase + ": " + ll.error.message : "unknown error";
    failureEl.append(h, p);
    for (const ep of ll.endpoints) {
      if (ep.state !== "failed" && !ep.reachability_error && ep.configuration_exit_code === null) continue;
      const d = document.createElement("details");
      const s = document.createElement("summary");
      s.textContent = ep.name + " (" + ep.instance + "): " + ep.state;
      const pre = document.createElement("pre");
      pre.textContent = [ep.reachability_error || "", ep.configuration_output || ""].join("\n").trim();
      d.append(s, pre);
      failureEl.append(d);
    }
    const report = document.createElement("button");
    report.type = "button";
    report.className = "feedback-open-here secondary";
    report.textContent = "Report this";
    failureEl.append(report);
    const retry = document.createElement("button");
    retry.type = "button";
    retry.id = "retry";
    retry.textContent = "Try again";
    retry.addEventListener("click", () => { failureEl.hidden = true; start(); });
    failureEl.append(retry);
  }

  // ---- terminals ------------------------------------------------------------------------

  const encoder = new TextEncoder();

  class Terminal {
    constructor(ll, endpoint, presentation) {
      this.ll = ll;
      this.endpoint = endpoint;
      this.presentation = presentation;
      this.attempt = 0;
      this.closedByPage = false;
      this.element = document.createElement("div");
      this.element.className = "terminal";
      this.element.dataset.endpoint = endpoint;
      this.banner = document.createElement("div");
      this.banner.className = "reconnecting";
      this.banner.hidden = true;
      this.banner.textContent = "disconnected — reconnecting…";
      this.screen = document.createElement("div");
      this.screen.className = "screen";
      this.element.append(this.banner, this.screen);
      terminalsEl.append(this.element);
      this.term = new window.Terminal({ cursorBlink: true, fontSize: 14, convertEol: false, scrollback: 5000 });
      this.fit = new window.FitAddon.FitAddon();
      this.term.loadAddon(this.fit);
      this.term.open(this.screen);
      this.term.onData((d) => this.send(0, encoder.encode(d)));
      this.term.onResize(({ cols, rows }) => this.send(1, encoder.encode(JSON.stringify({ cols, rows }))));
      this.connect();
    }

    url() {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      const q = new URLSearchParams({ presentation: this.presentation, cols: this.term.cols, rows: this.term.rows });
      return proto + "//" + location.host + "/api/v1/livelessons/" + this.ll.id + "/endpoints/" +
        encodeURIComponent(this.endpoint) + "/terminal?" + q;
    }

    connect() {
      this.fitNow();
      const ws = new WebSocket(this.url());
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      ws.onopen = () => {
        this.attempt = 0;
        this.banner.hidden = true;
        this.element.dataset.connected = "true";
        this.send(1, encoder.encode(JSON.stringify({ cols: this.term.cols, rows: this.term.rows })));
      };
      ws.onmessage = (m) => {
        const bytes = new Uint8Array(m.data);
        if (bytes.length > 0 && bytes[0] === 0) this.term.write(bytes.subarray(1));
      };
      ws.onclose = () => {
        this.element.dataset.connected = "false";
        // Terminals of a lab that is gone (failed, replaced) stay closed.
        if (this.closedByPage || (context.livelesson && context.livelesson.id !== this.ll.id)) return;
        this.banner.hidden = false;
        this.attempt += 1;
        const delay = Math.min(5000, 500 * this.attempt);
        setTimeout(() => this.connect(), delay);
      };
    }

    send(type, payload) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
      // The server takes frames up to 64 KiB: a long paste goes in pieces.
      const piece = 16 * 1024;
      for (let at = 0; at === 0 || at < payload.length; at += piece) {
        const part = payload.subarray(at, at + piece);
        const frame = new Uint8Array(part.length + 1);
        frame[0] = type;
        frame.set(part, 1);
        this.ws.send(frame);
      }
      return true;
    }

    type(text) {
      return this.send(0, encoder.encode(text));
    }

    close() {
      this.closedByPage = true;
      if (this.ws) this.ws.close();
      this.term.dispose();
      this.element.remove();
    }

    fitNow() {
      if (this.element.offsetParent !== null) {
        try { this.fit.fit(); } catch (e) { /* not laid out yet */ }
      }
    }
  }

  function showTab(name) {
    for (const b of tabsEl.children) b.setAttribute("aria-selected", String(b.dataset.endpoint === name));
    for (const t of terminalsEl.children) t.hidden = t.dataset.endpoint !== name;
    const term = window.antidote.terminals[name];
    if (term) { term.fitNow(); term.term.focus(); }
  }

  let terminalsLab = null;
  let resizeWired = false;

  // Closes every terminal and tab (the lab they belong to is gone).
  function closeTerminals() {
    for (const t of Object.values(window.antidote.terminals)) t.close();
    window.antidote.terminals = {};
    tabsEl.replaceChildren();
    terminalsLab = null;
  }

  function openTerminals(ll) {
    if (terminalsLab === ll.id) return;
    closeTerminals();
    terminalsLab = ll.id;
    for (const ep of ll.endpoints) {
      for (const p of ep.presentations) {
        if (p.type === "ssh" && !window.antidote.terminals[ep.name]) {
          const tab = document.createElement("button");
          tab.type = "button";
          tab.role = "tab";
          tab.className = "tab";
          tab.dataset.endpoint = ep.name;
          tab.textContent = ep.name;
          tab.addEventListener("click", () => showTab(ep.name));
          tabsEl.append(tab);
          window.antidote.terminals[ep.name] = new Terminal(ll, ep.name, p.name);
        } else if (p.type === "http") {
          const link = document.createElement("a");
          link.className = "tab http";
          link.target = "_blank";
          link.rel = "noopener";
          link.href = "/livelessons/" + ll.id + "/endpoints/" + encodeURIComponent(ep.name) + "/http/" +
            encodeURIComponent(p.name) + "/";
          link.textContent = ep.name + " · " + p.name;
          tabsEl.append(link);
        }
      }
    }
    const first = tabsEl.querySelector("button.tab");
    if (first) showTab(first.dataset.endpoint);
    if (!resizeWired) {
      resizeWired = true;
      window.addEventListener("resize", () => {
        for (const t of Object.values(window.antidote.terminals)) t.fitNow();
      });
    }
  }

  // NRE Labs guides: the code block before a "Run this snippet" button is typed into that
  // endpoint's terminal.
  function snippetBefore(button) {
    let node = button;
    while (node && node !== document.body) {
      let sibling = node.previousElementSibling;
      while (sibling) {
        const pre = sibling.matches("pre") ? sibling : Array.from(sibling.querySelectorAll("pre")).pop();
        if (pre) return pre.textContent;
        sibling = sibling.previousElementSibling;
      }
      node = node.parentElement;
    }
    return null;
  }

  function runSnippetInTab(endpoint, button) {
    const text = snippetBefore(button);
    const term = window.antidote.terminals[endpoint];
    if (text === null || !term) return false;
    showTab(endpoint);
    return term.type(text.endsWith("\n") ? text : text + "\n");
  }
  window.runSnippetInTab = runSnippetInTab;
  for (const b of document.querySelectorAll("button.snippet")) {
    b.disabled = true;
    b.addEventListener("click", () => runSnippetInTab(b.dataset.endpoint, b));
  }

  // ---- verify -----------------------------------------------------------------------------

  const verifyButton = document.getElementById("verify");
  const verifyResult = document.getElementById("verify-result");
  if (verifyButton) {
    verifyButton.disabled = true;
    verifyButton.addEventListener("click", async () => {
      verifyButton.disabled = true;
      verifyResult.hidden = false;
      verifyResult.className = "";
      verifyResult.textContent = "Checking…";
      try {
        const r = await api("POST", "/api/v1/livelessons/" + context.livelesson.id + "/stages/" + page.stage + "/verify");
        verifyResult.className = r.passed ? "passed" : "failed";
        verifyResult.textContent = (r.passed ? "✔ Passed" : "✘ Not yet") + (r.output ? "\n" + r.output : "");
      } catch (e) {
        verifyResult.className = "failed";
        verifyResult.textContent = "The check could not run: " + e.message;
      } finally {
        verifyButton.disabled = false;
      }
    });
  }

  // ---- hints ------------------------------------------------------------------------------

  const hintButton = document.getElementById("hint");
  if (hintButton) {
    hintButton.addEventListener("click", () => {
      const hidden = document.querySelectorAll("#hints li[hidden]");
      if (hidden.length > 0) hidden[0].hidden = false;
      const left = hidden.length - 1;
      hintButton.textContent = left > 0 ? "Show another hint (" + left + " more)" : "No more hints";
      hintButton.disabled = left <= 0;
    });
  }

  // ---- lifecycle --------------------------------------------------------------------------

  let keepaliveTimer = null;

  async function start() {
    if (!page.available) return;
    showStatus("Starting the lab…", "INITIALIZED");
    let ll;
    try {
      // A first visit makes its session first (no refused request); an expired one is made
      // again by withSession.
      if (!page.hasSession) await api("POST", "/api/v1/sessions");
      ll = await withSession(() => api("POST", "/api/v1/livelessons", { lesson: page.lesson, stage: page.stage }));
    } catch (e) {
      showStatus("The lab could not be started: " + e.message, "FAILED");
      reportClientError("livelesson request failed: " + e.message);
      return;
    }
    context.livelesson = ll;
    let askedStage = ll.stage === page.stage;
    for (;;) {
      showProgress(ll);
      if (ll.status === "FAILED") { showFailure(ll); return; }
      if (ll.status === "READY" && !askedStage) {
        try {
          await api("PUT", "/api/v1/livelessons/" + ll.id + "/stage", { stage: page.stage });
        } catch (e) {
          showStatus("Could not move to this stage: " + e.message, "FAILED");
          return;
        }
        askedStage = true;
        ll.status = "CONFIGURING";
      }
      if (["READY", "CONFIGURING"].includes(ll.status) && ll.reachable === ll.endpoints.length) openTerminals(ll);
      if (ll.status === "READY" && ll.stage === page.stage) break;
      await sleep(1000);
      try {
        ll = await api("GET", "/api/v1/livelessons/" + ll.id);
        context.livelesson = ll;
      } catch (e) {
        if (e instanceof ApiFailure && e.status === 404) { start(); return; }
        showStatus("Lost track of the lab (" + e.message + "); retrying…", "BOOTING");
      }
    }
    document.body.dataset.ready = "true";
    for (const b of document.querySelectorAll("button.snippet")) b.disabled = false;
    if (verifyButton) verifyButton.disabled = false;
    if (!keepaliveTimer) {
      keepaliveTimer = setInterval(() => {
        api("POST", "/api/v1/livelessons/" + ll.id + "/keepalive").catch((e) => {
          if (e instanceof ApiFailure && e.status === 404) showStatus("This lab was deleted; reload the page to start a new one.", "FAILED");
        });
      }, 60000);
    }
  }

  start();
})();
