// The Streamwise chat page: streams answers from POST /api/v1/prediction/{id} and parses Flowise's
// frames (`message:\ndata:{"event":..,"data":..}\n\n`) itself. Everything from the server or the model
// is put on the page with textContent, never as HTML.
"use strict";

(function () {
  const config = JSON.parse(document.getElementById("sw-config").textContent || "{}");
  const chatflowId = String(config.chatflowId || "");
  const bot = isObject(config.chatbotConfig) ? config.chatbotConfig : {};
  const api = "/api/v1";
  const storageKey = "streamwise-chat:" + chatflowId;

  const app = byId("sw-app");
  const log = byId("sw-log");
  const starters = byId("sw-starters");
  const form = byId("sw-form");
  const question = byId("sw-question");
  const sendButton = byId("sw-send");
  const stopButton = byId("sw-stop");
  const newButton = byId("sw-new");

  let chatId = currentChatId();
  let running = null; // {controller, view, ended: Promise, finish()}

  function byId(id) {
    return document.getElementById(id);
  }

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function text(value) {
    return typeof value === "string" ? value : "";
  }

  function newId() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    // randomUUID needs a secure context; getRandomValues does not.
    const bytes = window.crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  function currentChatId() {
    let stored = null;
    try {
      stored = window.sessionStorage.getItem(storageKey);
    } catch (e) {
      stored = null;
    }
    if (stored) return stored;
    const fresh = newId();
    try {
      window.sessionStorage.setItem(storageKey, fresh);
    } catch (e) {
      /* private mode: the chat lasts as long as the page */
    }
    return fresh;
  }

  // ---- chatbotConfig ---------------------------------------------------------------------------

  function cssValue(value) {
    return typeof value === "string" && value.length < 100 && !/[;{}\\]|url\(/i.test(value) ? value : null;
  }

  function applyConfig() {
    const title = text(bot.title) || text(config.name) || "Chat";
    byId("sw-title").textContent = title;
    const textInput = isObject(bot.textInput) ? bot.textInput : {};
    question.placeholder = text(textInput.placeholder) || "Type your question";
    const botMessage = isObject(bot.botMessage) ? bot.botMessage : {};
    const userMessage = isObject(bot.userMessage) ? bot.userMessage : {};
    const colours = {
      "--sw-bg": bot.backgroundColor,
      "--sw-title-bg": bot.titleBackgroundColor,
      "--sw-title-fg": bot.titleTextColor,
      "--sw-bot-bg": botMessage.backgroundColor,
      "--sw-bot-fg": botMessage.textColor,
      "--sw-user-bg": userMessage.backgroundColor,
      "--sw-user-fg": userMessage.textColor,
      "--sw-send-bg": textInput.sendButtonColor,
      "--sw-input-bg": textInput.backgroundColor,
      "--sw-input-fg": textInput.textColor,
    };
    for (const [name, value] of Object.entries(colours)) {
      const checked = cssValue(value);
      if (checked) app.style.setProperty(name, checked);
    }
    if (typeof bot.fontSize === "number" && bot.fontSize > 6 && bot.fontSize < 40) {
      app.style.setProperty("--sw-font-size", bot.fontSize + "px");
    }
  }

  function starterPrompts() {
    // Flowise stores {"0": {"prompt": "..."}, "1": {...}}; a plain list is read too.
    const raw = bot.starterPrompts;
    const items = Array.isArray(raw) ? raw : isObject(raw) ? Object.keys(raw).sort((a, b) => a - b).map((k) => raw[k]) : [];
    return items
      .map((item) => (typeof item === "string" ? item : isObject(item) ? text(item.prompt) : ""))
      .filter((prompt) => prompt.trim() !== "");
  }

  function showStarters(show) {
    starters.replaceChildren();
    if (!show) return;
    for (const prompt of starterPrompts()) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "sw-starter";
      button.textContent = prompt;
      button.addEventListener("click", () => ask(prompt));
      starters.appendChild(button);
    }
  }

  // ---- rendering ---------------------------------------------------------------------------------

  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function addMessage(role, content) {
    const item = document.createElement("div");
    item.className = "sw-msg " + (role === "userMessage" ? "sw-user" : "sw-bot");
    const body = document.createElement("div");
    body.className = "sw-text";
    body.textContent = content;
    const status = document.createElement("div");
    status.className = "sw-status";
    const extras = document.createElement("div");
    extras.className = "sw-extras";
    item.append(body, status, extras);
    log.appendChild(item);
    scrollDown();
    return { item, body, status, extras };
  }

  function asList(value) {
    if (typeof value === "string") {
      try {
        value = JSON.parse(value);
      } catch (e) {
        return [];
      }
    }
    return Array.isArray(value) ? value : [];
  }

  function asText(value) {
    if (typeof value === "string") return value;
    try {
      return JSON.stringify(value, null, 2);
    } catch (e) {
      return String(value);
    }
  }

  function section(view, kind, label, count) {
    const details = document.createElement("details");
    details.className = "sw-" + kind;
    const summary = document.createElement("summary");
    summary.textContent = label + " (" + count + ")";
    details.appendChild(summary);
    view.extras.appendChild(details);
    return details;
  }

  function showSources(view, documents) {
    const list = asList(documents).filter(isObject);
    view.extras.querySelectorAll(".sw-sources").forEach((node) => node.remove());
    if (list.length === 0) return;
    const details = section(view, "sources", "Sources", list.length);
    for (const doc of list) {
      const entry = document.createElement("div");
      entry.className = "sw-source";
      const metadata = isObject(doc.metadata) ? doc.metadata : {};
      const name = document.createElement("div");
      name.className = "sw-source-name";
      name.textContent = text(metadata.source) || asText(metadata);
      const passage = document.createElement("div");
      passage.className = "sw-source-text";
      passage.textContent = text(doc.pageContent);
      entry.append(name, passage);
      details.appendChild(entry);
    }
  }

  function showTools(view, tools) {
    const list = asList(tools).filter(isObject);
    view.extras.querySelectorAll(".sw-tools").forEach((node) => node.remove());
    if (list.length === 0) return;
    const details = section(view, "tools", "Used tools", list.length);
    for (const call of list) {
      const entry = document.createElement("div");
      entry.className = "sw-tool";
      const name = document.createElement("div");
      name.className = "sw-tool-name";
      name.textContent = text(call.tool) || "tool";
      const input = document.createElement("pre");
      input.textContent = "input: " + asText(call.toolInput);
      const output = document.createElement("pre");
      output.textContent = (call.error ? "error: " + asText(call.error) : "output: " + asText(call.toolOutput));
      entry.append(name, input, output);
      details.appendChild(entry);
    }
  }

  function setState(view, state, note) {
    view.item.dataset.status = state;
    view.status.textContent = note || "";
    view.status.classList.toggle("sw-error", state === "error");
  }

  // ---- history -----------------------------------------------------------------------------------

  async function loadHistory() {
    let rows = [];
    try {
      const response = await fetch(api + "/chatmessage/" + encodeURIComponent(chatflowId) + "?chatId=" + encodeURIComponent(chatId), {
        headers: { Accept: "application/json" },
      });
      if (response.ok) rows = asList(await response.json());
    } catch (e) {
      rows = [];
    }
    log.replaceChildren();
    if (text(bot.welcomeMessage)) {
      const welcome = addMessage("apiMessage", bot.welcomeMessage);
      welcome.item.classList.add("sw-welcome");
    }
    for (const row of rows.filter(isObject)) {
      const view = addMessage(row.role, text(row.content));
      if (row.role !== "userMessage") {
        showSources(view, row.sourceDocuments);
        showTools(view, row.usedTools);
        const status = text(row.status) || "complete";
        const notes = { aborted: "Stopped", interrupted: "Interrupted", error: "Failed", running: "Still answering…" };
        setState(view, status, notes[status] || "");
      }
    }
    showStarters(rows.length === 0);
    scrollDown();
  }

  // ---- asking --------------------------------------------------------------------------------------

  function setRunning(on) {
    sendButton.disabled = on;
    stopButton.hidden = !on;
    stopButton.disabled = false;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      if (isObject(body) && typeof body.message === "string") return body.message;
    } catch (e) {
      /* not JSON */
    }
    return "The server answered " + response.status;
  }

  function handle(view, frame, answer) {
    const event = frame.event;
    const data = frame.data;
    // `start` carries a copy of the first chunk, which also comes as a `token`: only tokens count.
    if (event === "token") {
      if (typeof data === "string" && data !== "") {
        answer.text += data;
        view.body.textContent = answer.text;
        if (view.item.dataset.status === "calling") setState(view, "streaming", "");
        scrollDown();
      }
    } else if (event === "sourceDocuments") {
      showSources(view, data);
    } else if (event === "usedTools") {
      showTools(view, data);
    } else if (event === "calledTools") {
      const names = asList(data).filter(isObject).map((call) => text(call.tool)).filter(Boolean);
      if (names.length) setState(view, "calling", "calling " + names.join(", ") + "…");
    } else if (event === "error") {
      answer.failed = true;
      setState(view, "error", typeof data === "string" ? data : asText(data));
    } else if (event === "abort") {
      answer.aborted = true;
    } else if (event === "end") {
      answer.ended = true;
    }
  }

  // Frames are separated by a blank line; each frame's `data:` lines joined are one JSON document.
  function framesOf(chunk) {
    const frames = [];
    for (const block of chunk) {
      const data = [];
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length === 0) continue; // `:heartbeat` and other comments
      try {
        frames.push(JSON.parse(data.join("\n")));
      } catch (e) {
        /* a frame that is not JSON is skipped */
      }
    }
    return frames;
  }

  async function readStream(response, view, answer) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      const blocks = buffer.split(/\r?\n\r?\n/);
      buffer = done ? "" : blocks.pop();
      for (const frame of framesOf(blocks)) {
        if (isObject(frame)) handle(view, frame, answer);
      }
      if (done || answer.ended) break;
    }
    if (!answer.ended) reader.cancel().catch(() => {});
  }

  async function ask(prompt) {
    const trimmed = prompt.trim();
    if (!trimmed || running) return;
    showStarters(false);
    addMessage("userMessage", trimmed);
    const view = addMessage("apiMessage", "");
    setState(view, "streaming", "");
    const controller = new AbortController();
    const answer = { text: "", ended: false, aborted: false, failed: false };
    // `opened` settles once the server has answered (its run then exists, so an abort finds it).
    let opened;
    const current = { controller, view, answer, stopping: false, opened: new Promise((r) => (opened = r)) };
    running = current;
    setRunning(true);
    try {
      const response = await fetch(api + "/prediction/" + encodeURIComponent(chatflowId), {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ question: trimmed, streaming: true, chatId }),
        signal: controller.signal,
      });
      opened();
      if (!response.ok) {
        answer.failed = true;
        setState(view, "error", await errorMessage(response));
      } else if ((response.headers.get("content-type") || "").includes("text/event-stream")) {
        await readStream(response, view, answer);
      } else {
        const body = await response.json(); // a chatflow that cannot stream answers JSON
        answer.text = isObject(body) ? text(body.text) : "";
        view.body.textContent = answer.text;
        if (isObject(body)) {
          showSources(view, body.sourceDocuments);
          showTools(view, body.usedTools);
          if (body.aborted) answer.aborted = true;
        }
      }
    } catch (e) {
      opened();
      if (current.stopping || (e && e.name === "AbortError")) {
        answer.aborted = true;
      } else {
        answer.failed = true;
        setState(view, "error", "The connection to the server failed");
      }
    }
    if (answer.aborted) setState(view, "aborted", "Stopped");
    else if (!answer.failed) setState(view, "complete", "");
    running = null;
    setRunning(false);
    question.focus();
  }

  // Stop: ask the server to abort the run (it stores the answer so far as "aborted" and ends the
  // stream with `abort` then `end`); if the stream has not ended two seconds later, or the request
  // fails, abort the fetch itself.
  async function stop() {
    const current = running;
    if (!current || current.stopping) return;
    current.stopping = true;
    stopButton.disabled = true;
    setState(current.view, "stopping", "Stopping…");
    // A Stop before the server has answered would find no run to abort: wait for the answer first.
    await Promise.race([current.opened, new Promise((r) => window.setTimeout(r, 10000))]);
    if (running !== current) return;
    const url = api + "/chatmessage/abort/" + encodeURIComponent(chatflowId) + "/" + encodeURIComponent(chatId);
    try {
      const response = await fetch(url, { method: "PUT" });
      if (!response.ok) throw new Error("abort answered " + response.status);
      window.setTimeout(() => {
        if (running === current) current.controller.abort();
      }, 2000);
    } catch (e) {
      current.controller.abort();
    }
  }

  // ---- wiring --------------------------------------------------------------------------------------

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = question.value;
    question.value = "";
    ask(value);
  });
  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stopButton.addEventListener("click", stop);
  newButton.addEventListener("click", () => {
    if (running) return;
    chatId = newId();
    try {
      window.sessionStorage.setItem(storageKey, chatId);
    } catch (e) {
      /* ignore */
    }
    loadHistory();
  });

  applyConfig();
  loadHistory().then(() => {
    app.dataset.ready = "true";
    question.focus();
  });
})();
