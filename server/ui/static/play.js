// The page at /ui: play and watch any env this server serves.
// It uses only the server's public API (GET /envs, POST /sessions, reset, step, expert,
// DELETE) plus /ui/agent for the server's own agent. Everything an env or a server sends is
// untrusted: it reaches the page through textContent, and images only as PNG data URLs.
"use strict";

(() => {
  const TOKEN_KEY = "evol-ui-token";
  const IMAGE_PREFIX = "data:image/png;base64,";
  const MAX_VALUE_CHARS = 4000; // an info value longer than this is cut on screen
  const MAX_ACTION_BUTTONS = 80; // more valid actions are still offered in the box's list
  const SMALL_IMAGE = 200; // pixels: a narrower image gets the class `small` (drawn larger: play.css)
  const HIDDEN_INFO = new Set(["instruction", "valid_actions"]); // shown on their own

  const $ = (id) => document.getElementById(id);

  const state = {
    envs: [],
    spec: null, // the picked env's card (GET /envs)
    session: null, // the live session id
    messages: [], // the conversation as an agent sees it: instruction, observations, actions
    done: true,
    turn: 0,
    total: 0,
    busy: false,
    agent: null, // the server's agent name, or null
    agentRunning: false,
    stopAgent: false,
  };

  class ApiError extends Error {
    constructor(status, type, message) {
      super(message);
      this.status = status;
      this.type = type;
    }
  }

  // ---- the API ------------------------------------------------------------------------
  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function headers(withBody) {
    const result = {};
    if (withBody) result["Content-Type"] = "application/json";
    if (token()) result["Authorization"] = "Bearer " + token();
    return result;
  }

  async function api(method, path, body) {
    let response;
    try {
      response = await fetch(path, {
        method,
        headers: headers(body !== undefined),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new ApiError(0, "network_error", "no answer from the server: " + error.message);
    }
    if (response.status === 204) return null;
    const text = await response.text();
    let data = null;
    try {
      data = JSON.parse(text);
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      const error = data && typeof data === "object" ? data.error : null;
      if (error && typeof error.type === "string") {
        throw new ApiError(response.status, error.type, String(error.message ?? ""));
      }
      throw new ApiError(response.status, "http_error", response.statusText || text.slice(0, 200));
    }
    if (data === null) throw new ApiError(response.status, "bad_answer", "the server's answer is not JSON");
    return data;
  }

  const sessionPath = (suffix) => "/sessions/" + encodeURIComponent(state.session) + suffix;

  // ---- errors and status --------------------------------------------------------------
  function showError(error) {
    const box = $("error");
    const status = error instanceof ApiError && error.status ? error.status + " " : "";
    const type = error instanceof ApiError ? error.type : "error";
    let text = status + type + ": " + error.message;
    if (error instanceof ApiError && error.status === 401) text += " (type the server's token above)";
    box.textContent = text;
    box.dataset.status = error instanceof ApiError ? String(error.status) : "";
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  // Runs one user request at a time; its failure is shown, never thrown.
  async function guarded(work) {
    if (state.busy) return;
    state.busy = true;
    clearError();
    updateControls();
    try {
      await work();
    } catch (error) {
      showError(error);
    } finally {
      state.busy = false;
      updateControls();
    }
  }

  function updateControls() {
    const playing = Boolean(state.session) && !state.done;
    $("reset").disabled = state.busy || !state.spec;
    for (const id of ["step", "expert-fill", "expert-play", "agent-turn", "agent-run"]) {
      $(id).disabled = state.busy || !playing;
    }
    $("action").disabled = !playing;
    $("agent-stop").disabled = !state.agentRunning;
    $("agent-controls").hidden = !state.agent;
    for (const button of $("valid-actions").querySelectorAll("button")) button.disabled = state.busy || !playing;
  }

  // ---- the server: envs and agent ------------------------------------------------------
  async function loadServer() {
    state.envs = await api("GET", "/envs");
    renderEnvList();
    const answer = await api("GET", "/ui/agent");
    state.agent = typeof answer.agent === "string" ? answer.agent : null;
    setStatus(
      state.envs.length + " envs served" + (state.agent ? "; the agent here: " + state.agent : "; no agent here"),
    );
    const wanted = decodeURIComponent(location.hash.slice(1));
    if (!state.spec && state.envs.some((spec) => spec.id === wanted)) selectEnv(wanted);
  }

  function renderEnvList() {
    const list = $("env-list");
    list.replaceChildren();
    for (const spec of state.envs) {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "env-pick";
      button.dataset.env = spec.id;
      const name = document.createElement("strong");
      name.textContent = spec.id;
      const description = document.createElement("span");
      description.textContent = spec.description || "";
      button.append(name, description);
      if (spec.multimodal) {
        const badge = document.createElement("em");
        badge.className = "badge";
        badge.textContent = "images";
        button.append(badge);
      }
      button.addEventListener("click", () => selectEnv(spec.id));
      item.append(button);
      list.append(item);
    }
  }

  function selectEnv(envId) {
    const spec = state.envs.find((candidate) => candidate.id === envId);
    if (!spec) return;
    state.spec = spec;
    for (const button of document.querySelectorAll(".env-pick")) {
      button.classList.toggle("selected", button.dataset.env === envId);
    }
    $("env-title").textContent = spec.id;
    $("env-description").textContent = spec.description || "";
    const range = Array.isArray(spec.reward_range) ? spec.reward_range.join(" to ") : "?";
    $("env-facts").textContent =
      "reward " + range + " · at most " + spec.max_turns + " turns" +
      (spec.success_rule ? " · success: " + spec.success_rule : "");
    $("env-card-text").textContent = spec.card || "";
    $("env-card-details").hidden = !spec.card;
    renderOptions(spec);
    $("task-form").hidden = false;
    history.replaceState(null, "", "#" + encodeURIComponent(spec.id));
    updateControls();
  }

  // ---- task options: one field per option the env declares ------------------------------
  function schemaTypes(schema) {
    return [].concat(schema.type || []);
  }

  function optionField(name, schema) {
    const label = document.createElement("label");
    label.append(name + " ");
    const choices = (schema.enum || []).filter((value) => value !== null);
    const types = schemaTypes(schema);
    let input;
    if (choices.length || types.includes("boolean")) {
      input = document.createElement("select");
      const values = choices.length ? choices : [true, false];
      input.append(new Option("(default)", ""));
      for (const value of values) input.append(new Option(String(value), JSON.stringify(value)));
      input.dataset.kind = "json";
    } else if (types.includes("integer") || types.includes("number")) {
      input = document.createElement("input");
      input.type = "number";
      input.step = types.includes("integer") ? "1" : "any";
      if (typeof schema.minimum === "number") input.min = String(schema.minimum);
      if (typeof schema.maximum === "number") input.max = String(schema.maximum);
      input.placeholder = "default";
      input.dataset.kind = "number";
    } else {
      input = document.createElement("input");
      input.type = "text";
      input.placeholder = "default";
      input.dataset.kind = "text";
    }
    input.id = "opt-" + name;
    input.dataset.option = name;
    if (schema.description) label.title = schema.description;
    label.append(input);
    return label;
  }

  function renderOptions(spec) {
    const properties = (spec.options_schema && spec.options_schema.properties) || {};
    const names = Object.keys(properties).sort((a, b) => (a === "task" ? -1 : b === "task" ? 1 : 0));
    $("task-options").replaceChildren(...names.map((name) => optionField(name, properties[name])));
  }

  function readNumber(input, what) {
    const value = Number(input.value);
    if (!Number.isFinite(value)) throw new ApiError(0, "bad_input", what + " must be a number");
    return value;
  }

  function readTask() {
    const options = {};
    for (const input of $("task-options").querySelectorAll("[data-option]")) {
      if (input.value === "") continue;
      const name = input.dataset.option;
      if (input.dataset.kind === "json") options[name] = JSON.parse(input.value);
      else if (input.dataset.kind === "number") options[name] = readNumber(input, name);
      else options[name] = input.value;
    }
    const seed = $("seed").value === "" ? null : readNumber($("seed"), "seed");
    let kwargs = {};
    const kwargsText = $("kwargs").value.trim();
    if (kwargsText) {
      try {
        kwargs = JSON.parse(kwargsText);
      } catch (error) {
        throw new ApiError(0, "bad_input", "env kwargs are not JSON: " + error.message);
      }
      if (!kwargs || typeof kwargs !== "object" || Array.isArray(kwargs)) {
        throw new ApiError(0, "bad_input", "env kwargs must be a JSON object");
      }
    }
    return { options, seed, kwargs };
  }

  // ---- an episode ------------------------------------------------------------------------
  async function closeSession() {
    if (!state.session) return;
    const sid = state.session;
    state.session = null;
    try {
      await api("DELETE", "/sessions/" + encodeURIComponent(sid));
    } catch (error) {
      // the session may have expired already; nothing to free then
    }
  }

  async function reset() {
    const { options, seed, kwargs } = readTask();
    await closeSession();
    state.done = true;
    const created = await api("POST", "/sessions", { env: state.spec.id, kwargs });
    state.session = created.session;
    const body = {};
    if (seed !== null) body.seed = seed;
    if (Object.keys(options).length) body.options = options;
    const first = await api("POST", sessionPath("/reset"), body);
    startEpisode(first.observation, first.info || {});
  }

  function startEpisode(observation, info) {
    state.done = false;
    state.turn = 0;
    state.total = 0;
    const instruction = typeof info.instruction === "string" ? info.instruction : "";
    state.messages = [{ role: "system", content: instruction }, { role: "user", content: userContent(observation) }];
    $("instruction").textContent = instruction;
    $("turns").replaceChildren();
    $("outcome").hidden = true;
    $("outcome").textContent = "";
    delete $("outcome").dataset.outcome;
    $("episode").hidden = false;
    renderTurn({ title: "Reset", observation, info });
    showValidActions(info);
    $("action").value = "";
    $("action").focus();
  }

  // An observation as the rollout engine gives it to agents: text, or text and image parts.
  function userContent(observation) {
    if (observation && typeof observation === "object") {
      const text = typeof observation.text === "string" ? observation.text : "";
      const image = observation.image;
      if (typeof image === "string" && image.startsWith(IMAGE_PREFIX)) {
        return [
          { type: "text", text },
          { type: "image_url", image_url: { url: image } },
        ];
      }
      return text;
    }
    return typeof observation === "string" ? observation : JSON.stringify(observation);
  }

  async function step(action, who) {
    const result = await api("POST", sessionPath("/step"), { action });
    state.turn += 1;
    const reward = Number(result.reward) || 0;
    state.total += reward;
    state.messages.push({ role: "assistant", content: action }, { role: "user", content: userContent(result.observation) });
    const info = result.info || {};
    renderTurn({ title: "Turn " + state.turn, who, action, observation: result.observation, reward, info });
    if (result.terminated || result.truncated) finish(result.terminated, info);
    else showValidActions(info);
  }

  function finish(terminated, info) {
    state.done = true;
    showValidActions({});
    const kind = info.success ? "success" : terminated ? "failure" : "truncated";
    const outcome = $("outcome");
    outcome.dataset.outcome = kind;
    outcome.textContent =
      kind.toUpperCase() + ": the episode " + (terminated ? "ended" : "was truncated") +
      " after " + state.turn + (state.turn === 1 ? " turn" : " turns") + ", total reward " + formatNumber(state.total);
    outcome.hidden = false;
  }

  function formatNumber(value) {
    return Number.isInteger(value) ? String(value) : value.toFixed(4).replace(/0+$/, "");
  }

  function formatValue(value) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    return text.length > MAX_VALUE_CHARS ? text.slice(0, MAX_VALUE_CHARS) + " …" : text;
  }

  function renderTurn({ title, who, action, observation, reward, info }) {
    const item = document.createElement("li");
    item.className = "turn";
    const head = document.createElement("h3");
    head.textContent = title;
    item.append(head);
    if (action !== undefined) {
      const line = document.createElement("p");
      line.className = "action";
      const by = document.createElement("span");
      by.className = "who";
      by.textContent = who + ": ";
      const code = document.createElement("code");
      code.textContent = action;
      line.append(by, code);
      item.append(line);
    }
    const isObject = observation && typeof observation === "object";
    const text = document.createElement("pre");
    text.className = "observation";
    text.textContent = isObject ? String(observation.text ?? "") : String(observation ?? "");
    item.append(text);
    if (isObject && typeof observation.image === "string" && observation.image.startsWith(IMAGE_PREFIX)) {
      const image = document.createElement("img");
      image.className = "observation-image";
      image.alt = "the observation's image (" + title.toLowerCase() + ")";
      // a small image (a digit to perturb) is drawn larger, its pixels kept sharp
      image.addEventListener("load", () => image.classList.toggle("small", image.naturalWidth < SMALL_IMAGE));
      image.src = observation.image;
      item.append(image);
    }
    if (reward !== undefined) {
      const line = document.createElement("p");
      line.className = "reward";
      line.textContent = "reward " + formatNumber(reward) + " · total " + formatNumber(state.total);
      item.append(line);
    }
    const keys = Object.keys(info).filter((key) => !HIDDEN_INFO.has(key));
    if (keys.length) {
      const details = document.createElement("details");
      details.className = "info";
      const summary = document.createElement("summary");
      summary.textContent = "info: " + keys.join(", ");
      const list = document.createElement("dl");
      for (const key of keys) {
        const term = document.createElement("dt");
        term.textContent = key;
        const value = document.createElement("dd");
        value.textContent = formatValue(info[key]);
        list.append(term, value);
      }
      details.append(summary, list);
      item.append(details);
    }
    $("turns").append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  function showValidActions(info) {
    const actions = Array.isArray(info.valid_actions) ? info.valid_actions.filter((a) => typeof a === "string") : [];
    const box = $("valid-actions");
    box.replaceChildren();
    $("valid-action-list").replaceChildren(...actions.map((action) => new Option(action)));
    for (const action of actions.slice(0, MAX_ACTION_BUTTONS)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "valid-action";
      button.textContent = action;
      button.addEventListener("click", () => guarded(() => step(action, "you")));
      box.append(button);
    }
    if (actions.length > MAX_ACTION_BUTTONS) {
      const more = document.createElement("span");
      more.textContent = "and " + (actions.length - MAX_ACTION_BUTTONS) + " more (in the action box's list)";
      box.append(more);
    }
  }

  // ---- the expert and the agent ------------------------------------------------------------
  async function expertAction() {
    const answer = await api("POST", sessionPath("/expert"));
    if (typeof answer.action !== "string") throw new ApiError(0, "bad_answer", "the expert gave no action");
    return answer.action;
  }

  async function agentTurn() {
    const answer = await api("POST", "/ui/agent", { messages: state.messages });
    if (typeof answer.action !== "string") throw new ApiError(0, "bad_answer", "the agent gave no action");
    await step(answer.action, "agent");
  }

  async function agentToTheEnd() {
    state.agentRunning = true;
    state.stopAgent = false;
    updateControls();
    try {
      let left = (Number(state.spec.max_turns) || 100) + 5; // a guard against an env that never ends
      while (!state.done && !state.stopAgent && left-- > 0) await agentTurn();
    } finally {
      state.agentRunning = false;
    }
  }

  // ---- wiring ------------------------------------------------------------------------------
  function init() {
    $("token").value = token();
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const typed = $("token").value.trim();
      if (typed) sessionStorage.setItem(TOKEN_KEY, typed);
      else sessionStorage.removeItem(TOKEN_KEY);
      // not through `guarded`: a new token is taken even while a request is under way
      clearError();
      loadServer().catch(showError);
    });
    $("task-form").addEventListener("submit", (event) => {
      event.preventDefault();
      guarded(reset);
    });
    $("action-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const action = $("action").value;
      guarded(async () => {
        await step(action, "you");
        $("action").value = "";
      });
    });
    $("expert-fill").addEventListener("click", () =>
      guarded(async () => {
        $("action").value = await expertAction();
        $("action").focus();
      }),
    );
    $("expert-play").addEventListener("click", () => guarded(async () => step(await expertAction(), "expert")));
    $("agent-turn").addEventListener("click", () => guarded(agentTurn));
    $("agent-run").addEventListener("click", () => guarded(agentToTheEnd));
    $("agent-stop").addEventListener("click", () => {
      state.stopAgent = true;
    });
    window.addEventListener("pagehide", () => {
      // free the server's session when the page goes; keepalive lets the request outlive it
      if (state.session) {
        fetch("/sessions/" + encodeURIComponent(state.session), { method: "DELETE", headers: headers(false), keepalive: true });
      }
    });
    updateControls();
    guarded(loadServer);
  }

  init();
})();
