// The funnelrec inspector page: plain JavaScript, no build step, no network beyond its own
// server. Every value from the server is put into the page as text (textContent), never as
// HTML, so item titles cannot inject markup.
"use strict";

const TOKEN_KEY = "funnelrec-inspector-token";
const $ = (selector) => document.querySelector(selector);
let meta = null;
let lastTrace = null;

// ---------------------------------------------------------------- small DOM helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value) {
  if (value === null || value === undefined) return "–";
  if (typeof value === "number" && !Number.isInteger(value)) return value.toPrecision(4);
  return String(value);
}

// columns: [header, (row) => value, "num" | "title" | undefined]
function table(columns, rows, highlight) {
  const head = el("tr", {}, columns.map(([name]) => el("th", {}, name)));
  const body = rows.map((row) => el(
    "tr",
    { class: highlight && highlight(row) ? "hit" : null, "data-item": String(row.item_id) },
    columns.map(([, get, kind]) => el("td", { class: kind || null }, fmt(get(row)))),
  ));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
}

function keyValues(pairs) {
  return el("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, fmt(v))]));
}

function itemColumns() {
  const columns = [["item", (r) => r.item_id]];
  if (meta && meta.titles) columns.push(["title", (r) => r.title, "title"]);
  columns.push(["category", (r) => r.category]);
  return columns;
}

function move(from, to) {
  if (from === null || to === null || from === to) return el("span", {}, "=");
  return from > to ? el("span", { class: "up" }, `▲${from - to}`) : el("span", { class: "down" }, `▼${to - from}`);
}

// ---------------------------------------------------------------- server calls
function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, body) {
  const init = { headers: { Authorization: `Bearer ${token()}` } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (response.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenForm("The token was refused: enter the admin token again.");
  }
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

function showTokenForm(message) {
  $("#token-form").hidden = false;
  $("#request-form").hidden = true;
  $("#forget-token").hidden = true;
  showError(message || "");
}

async function start() {
  // The offline `funnelrec inspect` prints a URL with #token=...: the fragment never reaches
  // a server or its logs; keep it in this tab and take it out of the address bar.
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("token")) {
    sessionStorage.setItem(TOKEN_KEY, fragment.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  if (!token()) { showTokenForm(); return; }
  try {
    meta = await api("/inspect/api/meta");
  } catch (error) {
    if (token()) showError(error.message);
    return;
  }
  $("#token-form").hidden = true;
  $("#request-form").hidden = false;
  $("#forget-token").hidden = false;
  $("#artifact").textContent = `artifact ${meta.artifact_id}: ${meta.users} users, ${meta.items} items; `
    + `channels ${meta.channels.join(", ")}; ranker ${meta.ranker ? meta.ranker.join("/") : "off"}; `
    + `re-ranker ${meta.reranker || "off"}`;
  $("#k").max = meta.max_k;
  const attributes = $("#attributes");
  attributes.replaceChildren(...meta.attributes.map((name) => el(
    "label", {}, `${name} `, el("input", { "data-attribute": name, size: "8", placeholder: "(cold users)" }),
  )));
  $("#categories").replaceChildren(...meta.categories.map((c) => el("option", { value: c })));
  suggestUsers("");
}

// Suggestions for one query at a time: a slower answer to an earlier query (the empty one sent
// at sign-in, or a shorter prefix) must not replace the list for what is typed now.
let suggestionQuery = 0;
async function suggestUsers(query) {
  const asked = ++suggestionQuery;
  try {
    const { users } = await api(`/inspect/api/users?q=${encodeURIComponent(query)}&limit=12`);
    if (asked !== suggestionQuery) return;
    const list = $("#user-suggestions");
    list.dataset.query = query;
    list.replaceChildren(...users.map((u) => {
      const item = el("li", { "data-user": u }, u);
      item.addEventListener("click", () => { $("#user-id").value = u; runTrace(); });
      return item;
    }));
  } catch (error) { showError(error.message); }
}

function requestBody(whyNot) {
  const body = { user_id: $("#user-id").value.trim(), k: Number($("#k").value || 10) };
  const attributes = {};
  for (const input of document.querySelectorAll("[data-attribute]")) {
    if (input.value.trim()) attributes[input.dataset.attribute] = input.value.trim();
  }
  if (Object.keys(attributes).length) body.attributes = attributes;
  const tags = $("#tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  if (tags.length) body.tags = tags;
  if (whyNot) body.why_not = whyNot;
  return body;
}

async function runTrace(whyNot) {
  const body = requestBody(whyNot);
  if (!body.user_id) { showError("Type a user id (an unknown one is a cold user)."); return; }
  showError("");
  $("#busy").hidden = false;
  try {
    lastTrace = await api("/inspect/api/trace", body);
    render(lastTrace);
  } catch (error) {
    showError(error.message);
  } finally {
    $("#busy").hidden = true;
  }
}

// ---------------------------------------------------------------- rendering
function render(trace) {
  $("#trace").hidden = false;
  const hit = trace.why_not ? (row) => String(row.item_id) === trace.why_not.item_id : null;
  renderUser(trace);
  renderChannels(trace, hit);
  renderMerge(trace, hit);
  renderRank(trace, hit);
  renderRerank(trace, hit);
  renderFinal(trace, hit);
  renderWhyNot(trace.why_not);
}

function stageBody(stage) { return document.querySelector(`[data-stage="${stage}"] .body`); }

function renderUser(trace) {
  const user = trace.user;
  const history = user.history.length
    ? table([...itemColumns(), ["time", (r) => new Date(r.timestamp * 1000).toISOString().slice(0, 16)]], user.history)
    : el("p", { class: "muted" }, "no history: the cold-start channels (popular, demographic, onboarding) serve this user");
  stageBody("user").replaceChildren(
    keyValues([
      ["user", user.user_id], ["known", user.known ? "yes" : "no (cold start)"],
      ["history length", user.history_len], ["as of", new Date(trace.timestamp * 1000).toISOString()],
      ["attributes", Object.entries(user.attributes).map(([k, v]) => `${k}=${fmt(v)}`).join(", ") || "–"],
      ["tags", user.tags.join(", ") || "–"], ["k", trace.k],
    ]),
    el("h3", {}, `Recent history (newest first, ${user.history.length} of ${user.history_len})`),
    history,
  );
}

function renderChannels(trace, hit) {
  stageBody("recall").replaceChildren(...trace.channels.map((channel) => el(
    "div", { "data-channel": channel.name },
    el("h3", {}, `${channel.name} (${channel.kind})`),
    el("div", { class: "muted" }, `returned ${channel.returned}; merged from it ${channel.merged_from}`
      + (channel.quota !== null ? `; quota ${channel.quota}` : "")
      + (channel.weight !== null ? `; rrf weight ${fmt(channel.weight)}` : "")),
    ...preview(`${channel.name} list`, [["#", (r) => r.rank, "num"], ...itemColumns(),
      ["score", (r) => r.score, "num"], ["merged", (r) => r.merged_rank, "num"]], channel.items, hit, 10),
  )));
}

function renderMerge(trace, hit) {
  const merge = trace.merge;
  const settings = merge.method === "rrf"
    ? `weighted RRF: score = Σ weight / (${merge.rrf_k} + rank); weights ${Object.entries(merge.weights).map(([c, w]) => `${c} ${fmt(w)}`).join(", ")}`
    : `quotas (priority order): ${Object.entries(merge.quotas).map(([c, q]) => `${c} ${q}`).join(", ")}`;
  stageBody("merge").replaceChildren(
    keyValues([["method", merge.method], ["settings", settings], ["merge.k", merge.k],
      ["merged", merge.size], ["by source", Object.entries(merge.by_source).map(([c, n]) => `${c} ${n}`).join(", ")],
      ["configured quotas", Object.entries(merge.quotas).map(([c, q]) => `${c} ${q}`).join(", ") || "–"]]),
    ...preview("merged list", [["#", (r) => r.merged_rank, "num"], ...itemColumns(),
      ["source", (r) => r.source], ["source rank", (r) => r.source_rank, "num"],
      ["recall score", (r) => r.recall_score, "num"], ["all sources", (r) => r.sources.join(", ")]],
    merge.items, hit, 15),
  );
}

function renderRank(trace, hit) {
  const rank = trace.rank;
  const columns = [["#", (r) => r.rank, "num"], ...itemColumns(), ["merged", (r) => r.merged_rank, "num"],
    ["status", (r) => r.status],
    ...rank.tasks.map((t) => [`p(${t})`, (r) => r.probabilities[t], "num"]),
    ["score", (r) => r.score, "num"], ["pre-rank score", (r) => r.prerank_score, "num"]];
  stageBody("rank").replaceChildren(
    keyValues([["ranker", rank.enabled ? rank.tasks.join(", ") : "off"], ["fusion", rank.fusion],
      ["score depth", rank.score_depth], ["pre-ranker keeps", rank.prerank_keep],
      ["candidates", Object.entries(rank.counts).map(([s, n]) => `${s} ${n}`).join(", ")]]),
    ...preview("ranked list", columns, rank.items, hit, 15),
  );
}

function renderRerank(trace, hit) {
  const rerank = trace.rerank;
  const changeColumns = [...itemColumns(), ["outcome", (r) => r.outcome], ["ranked", (r) => r.pre_rerank_rank, "num"],
    ["diversified", (r) => r.diversified_rank, "num"], ["shown at", (r) => r.rank, "num"], ["what happened", (r) => r.detail]];
  stageBody("rerank").replaceChildren(
    keyValues([["method", rerank.method], ["pool", rerank.pool], ["slack", rerank.slack],
      ["rules", Object.entries(rerank.rules).map(([k, v]) => `${k}=${fmt(v)}`).join(", ")]]),
    ...rerank.notes.map((n) => el("p", { class: "muted" }, n)),
    el("h3", {}, "Moves (ranked position → final position)"),
    table([["#", (r) => r.rank, "num"], ...itemColumns(), ["ranked", (r) => r.pre_rerank_rank, "num"],
      ["diversified", (r) => r.diversified_rank, "num"], ["fresh", (r) => (r.fresh ? "yes" : "")]],
    rerank.items, hit),
    el("div", { class: "moves" }, rerank.items.map((r) => el("span", {}, `${r.item_id} `, move(r.pre_rerank_rank, r.rank), " "))),
    el("h3", { id: "demoted" }, `Demoted out of the top ${trace.k} for diversity (${rerank.demoted.length})`),
    rerank.demoted.length ? table(changeColumns, rerank.demoted, hit) : el("p", { class: "muted" }, "none"),
    el("h3", { id: "rules-fired" }, `Business rules that fired (${rerank.rules_fired.length})`),
    rerank.rules_fired.length ? table(changeColumns, rerank.rules_fired, hit) : el("p", { class: "muted" }, "none"),
  );
}

function renderFinal(trace, hit) {
  stageBody("final").replaceChildren(
    table([["#", (r) => r.rank, "num"], ...itemColumns(), ["score", (r) => r.score, "num"], ["source", (r) => r.source]],
      trace.final, hit),
    el("h3", {}, "Timings (ms)"),
    el("p", { class: "muted" }, Object.entries(trace.timings_ms).map(([s, ms]) => `${s} ${fmt(ms)}`).join(" · ")),
  );
}

function renderWhyNot(answer) {
  const box = $("#why-not-result");
  box.hidden = !answer;
  if (!answer) { box.removeAttribute("data-verdict"); box.removeAttribute("data-item"); return; }
  box.dataset.verdict = answer.verdict;
  box.dataset.item = answer.item_id;
  box.replaceChildren(
    el("h2", {}, `Why not item ${answer.item_id}? `,
      el("span", { class: `badge verdict-${answer.verdict}`, id: "verdict" }, answer.verdict.replaceAll("_", " "))),
    el("p", { id: "why-not-message" }, `Stage: ${answer.stage}. ${answer.message}.`),
    keyValues([
      ["title / category", [answer.title, answer.category].filter(Boolean).join(" / ") || "–"],
      ["in the user's history", answer.in_history ? "yes" : "no"],
      ["channel ranks", Object.entries(answer.channel_ranks).map(([c, r]) => `${c} #${r}`).join(", ") || "–"],
      ["merged rank", answer.merged_rank], ["ranking", answer.rank_status],
      ["probabilities", Object.entries(answer.probabilities).map(([t, p]) => `${t} ${fmt(p)}`).join(", ") || "–"],
      ["score", answer.score], ["pre-rank score", answer.prerank_score], ["ranked", answer.ranked_rank],
      ["re-rank", answer.rerank_outcome], ["diversified", answer.diversified_rank], ["final rank", answer.final_rank],
    ]),
  );
}

// The first rows (and any highlighted one) in view, the whole list one click away.
function preview(label, columns, rows, hit, n) {
  const shown = rows.filter((row, i) => i < n || (hit && hit(row)));
  const parts = [table(columns, shown, hit)];
  if (rows.length > shown.length) {
    parts.push(el("details", {}, el("summary", {}, `all ${rows.length} rows of the ${label}`), table(columns, rows, hit)));
  }
  return parts;
}

// ---------------------------------------------------------------- wiring
$("#token-submit").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("#token").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("#token").value = "";
  // A #token=... pasted into an open tab changes only the fragment: no reload, so read it here.
window.addEventListener("hashchange", start);
start();
});
$("#forget-token").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showTokenForm(); });
$("#trace-submit").addEventListener("submit", (event) => { event.preventDefault(); runTrace(); });
$("#why-not-submit").addEventListener("submit", (event) => {
  event.preventDefault();
  const item = $("#why-not-id").value.trim();
  if (!item) { showError("Type an item id to explain."); return; }
  runTrace(item);
});
let searchTimer = null;
$("#user-id").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => suggestUsers($("#user-id").value.trim()), 150);
});
// A #token=... pasted into an open tab changes only the fragment: no reload, so read it here.
window.addEventListener("hashchange", start);
start();
