// vigil console: renders the city view, a region's page and the live alert feed from the JSON
// API of the process that serves it (/api/catalog, /api/overview, /api/alerts, /api/regions/…,
// /api/feed). No framework and no build step: the file is built into the binary as it is.
"use strict";

const RANK = { blue: 1, yellow: 2, orange: 3, red: 4 };
const T = {
  zh: {
    city: "城市", alerts: "预警", footer: "vigil：按区域与时间窗汇总评分，不涉及任何个人。",
    open: "当前预警", none: "无", index: "综合指数", level: "等级", region: "区域", scope: "范围",
    since: "起始", deadline: "处置时限", overdue: "已超时", domains: "领域", categories: "类别",
    indicators: "指标", value: "观测值", expected: "期望值", score: "评分", history: "近期走势",
    episodes: "预警记录", children: "下级区域", all: "全部", domain: "领域", from_level: "最低等级",
    live: "实时更新", evaluated: "评估至", no_alerts: "暂无预警", no_history: "暂无历史（尚未评估或该级不输出评分）",
    opened: "发布", escalated: "升级", deescalated: "降级", resolved: "解除", composite: "综合",
    evidence: "超额证据", response: "处置要求", why: "原因", unknown: "未知区域", token: "请输入 API 令牌",
    reason_score: "评分达到阈值", reason_fast_path: "评分骤升（快速通道）", reason_override: "覆盖规则设定的下限",
    reason_below_clear: "评分回落到解除线以下", reason_evidence: "超额证据", reason_rollup: "下级区域汇总",
    top: "主要贡献指标", floor: "等级下限", agree: "多源同时上升", not_scored: "该级区域不评分",
  },
  en: {
    city: "City", alerts: "Alerts", footer: "vigil scores regions over time windows, never people.",
    open: "Open alerts", none: "none", index: "Index", level: "Level", region: "Region", scope: "Scope",
    since: "Since", deadline: "Deadline", overdue: "overdue", domains: "Domains", categories: "Categories",
    indicators: "Indicators", value: "Value", expected: "Expected", score: "Score", history: "Recent history",
    episodes: "Alert episodes", children: "Sub-regions", all: "all", domain: "Domain", from_level: "From level",
    live: "live", evaluated: "evaluated to", no_alerts: "No alerts", no_history: "No history yet (not evaluated, or this level emits no scores)",
    opened: "opened", escalated: "escalated", deescalated: "lowered", resolved: "resolved", composite: "composite",
    evidence: "evidence (scan)", response: "Response", why: "Why", unknown: "Unknown region", token: "API token",
    reason_score: "score crossed the level's threshold", reason_fast_path: "score jumped (fast path)",
    reason_override: "floor set by an override rule", reason_below_clear: "score fell below the clear line",
    reason_evidence: "evidence of an excess", reason_rollup: "roll-up of the districts",
    top: "Top contributors", floor: "at least", agree: "sources rising together", not_scored: "regions of this level are not scored",
  },
};

const state = {
  lang: localStorage.getItem("vigil.lang") || ((navigator.language || "zh").startsWith("zh") ? "zh" : "en"),
  catalog: null, regions: new Map(), children: new Map(), names: new Map(), grades: new Map(),
  timer: null,
};

const t = (k) => (T[state.lang] && T[state.lang][k]) || T.en[k] || k;
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const nm = (id) => { const n = state.names.get(id); return n ? n[state.lang] || n.en : id; };
const fmt = (v, d = 1) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d));
// A measured value in its own units: counts as integers, small ratios with three digits.
const num = (v) => {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (Number.isInteger(v) || a >= 100) return Math.round(v).toLocaleString("en");
  return a >= 10 ? v.toFixed(1) : v.toPrecision(3).replace(/\.?0+$/, "");
};
const when = (s) => (s ? s.replace("T", " ").replace(/:00(\.\d+)?Z$/, " UTC").replace(/Z$/, " UTC") : "–");

function levelLabel(l) {
  if (!l) return t("none");
  const g = state.grades.get(l);
  return g ? g.label[state.lang] || g.label.en : l;
}
const badge = (l) => `<span class="badge lv-${l || "none"}">${esc(levelLabel(l))}</span>`;
const badgeIf = (l) => (l ? badge(l) : "");

async function api(path) {
  const headers = {};
  const token = localStorage.getItem("vigil.token");
  if (token) headers.Authorization = "Bearer " + token;
  const r = await fetch(path, { headers });
  if (r.status === 401) {
    const given = prompt(t("token"));
    if (given) { localStorage.setItem("vigil.token", given); return api(path); }
  }
  if (!r.ok) { const e = new Error(path + ": " + r.status); e.status = r.status; throw e; }
  return r.json();
}

async function loadCatalog() {
  const c = await api("/api/catalog");
  state.catalog = c;
  state.regions = new Map(c.regions.map((r) => [r.code, r]));
  state.children = new Map();
  for (const r of c.regions) {
    if (!r.parent) continue;
    if (!state.children.has(r.parent)) state.children.set(r.parent, []);
    state.children.get(r.parent).push(r.code);
  }
  state.names = new Map();
  for (const d of c.domains) state.names.set(d.id, d.name);
  for (const x of c.categories) state.names.set(x.id, x.name);
  for (const x of c.indicators) state.names.set(x.id, x.name);
  state.names.set("composite", { zh: T.zh.composite, en: T.en.composite });
  state.names.set("evidence", { zh: T.zh.evidence, en: T.en.evidence });
  state.grades = new Map(c.grades.map((g) => [g.level, g]));
  document.getElementById("ruleset").textContent = `${c.name} · ${c.version}`;
}

// Per region, the highest level of its open episodes; per region, the highest in its subtree.
function levelsOf(open) {
  const own = new Map();
  for (const a of open) if (!own.has(a.region) || RANK[a.level] > RANK[own.get(a.region)]) own.set(a.region, a.level);
  const sub = new Map(own);
  for (const [code, l] of own) {
    let p = state.regions.get(code)?.parent;
    for (let i = 0; p && i < 64; i++, p = state.regions.get(p)?.parent) {
      if (!sub.has(p) || RANK[l] > RANK[sub.get(p)]) sub.set(p, l);
    }
  }
  return { own, sub };
}

function spark(values, expected, w = 140) {
  const h = 26, all = values.concat(expected || []).filter((v) => v !== null && v !== undefined);
  if (values.filter((v) => v !== null).length < 2) return `<span class="muted">–</span>`;
  const lo = Math.min(0, ...all), hi = Math.max(1e-9, ...all);
  const pts = (vs) => vs.map((v, i) => (v === null ? null : `${(i / (vs.length - 1)) * w},${h - 2 - ((v - lo) / (hi - lo)) * (h - 4)}`))
    .filter((p) => p).join(" ");
  const e = expected && expected.some((v) => v !== null) ? `<polyline class="e" points="${pts(expected)}"/>` : "";
  return `<svg class="spark" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${e}<polyline class="v" points="${pts(values)}"/></svg>`;
}

// ---- city view -------------------------------------------------------------------------------

async function viewCity(el) {
  const [overview, open] = await Promise.all([api("/api/overview"), api("/api/alerts")]);
  const latest = new Map(overview.map((o) => [o.region, o]));
  const { own, sub } = levelsOf(open);
  const root = state.catalog.regions.find((r) => !r.parent);
  const legend = state.catalog.grades.map((g) => `<span><i class="swatch lv-${g.level}"></i>${esc(g.label[state.lang])}</span>`).join("");
  const counts = Object.keys(RANK).reverse().map((l) => `${badge(l)} ${open.filter((a) => a.level === l).length}`).join(" ");
  const tile = (code) => {
    const r = state.regions.get(code), o = latest.get(code), l = own.get(code), s = sub.get(code);
    const kids = (state.children.get(code) || []).map((k) => {
      const kr = state.regions.get(k), kl = sub.get(k);
      return `<a class="chip lv-${kl || "none"}" href="#/region/${encodeURIComponent(k)}" title="${esc(k)}">${esc(kr.name)}</a>`;
    }).join("");
    return `<div class="region-tile b-${s || "none"}" data-code="${esc(code)}" data-level="${l || ""}">
      <span class="index" title="${esc(t("index"))}">${fmt(o?.composite)}</span>
      <div class="name">${esc(r.name)}</div>
      <div class="muted">${esc(code)} · ${esc(r.level)} ${badgeIf(l)}</div>
      <div class="chips">${kids}</div></div>`;
  };
  const districts = state.children.get(root.code) || [];
  el.innerHTML = `
    <div class="root-line"><h1 id="city-title">${esc(root.name)}</h1>${badge(own.get(root.code))}
      <span class="muted">${esc(t("index"))} ${fmt(latest.get(root.code)?.composite)}</span>
      <a href="#/region/${encodeURIComponent(root.code)}">→</a></div>
    <div class="legend">${legend}</div>
    <div class="card" style="margin-bottom:12px"><b>${esc(t("open"))}</b> ${counts}</div>
    <div class="tiles" id="city">${districts.map(tile).join("")}</div>`;
  // A click on a tile (not on one of its chips, which are links) opens the district.
  document.getElementById("city").onclick = (ev) => {
    const t = ev.target.closest(".region-tile");
    if (t && !ev.target.closest("a")) location.hash = "#/region/" + encodeURIComponent(t.dataset.code);
  };
}

// ---- region page -----------------------------------------------------------------------------

async function viewRegion(el, code) {
  const r = state.regions.get(code);
  if (!r) { el.innerHTML = `<h1>${esc(t("unknown"))}: ${esc(code)}</h1>`; return; }
  const q = encodeURIComponent(code);
  const [open, view, hist, feed] = await Promise.all([
    api("/api/alerts"),
    api(`/api/regions/${q}`).catch(() => null),
    api(`/api/regions/${q}/history`).catch(() => null),
    api(`/api/feed?region=${q}&limit=50`),
  ]);
  const mine = open.filter((a) => a.region === code);
  const { own } = levelsOf(open);
  const crumbs = [];
  for (let p = r.parent, i = 0; p && i < 64; p = state.regions.get(p)?.parent, i++) crumbs.unshift(p);
  const crumbHtml = crumbs.map((c) => `<a href="#/region/${encodeURIComponent(c)}">${esc(state.regions.get(c).name)}</a>`).join(" › ");
  const col = (m, id) => (m && m[id]) || [];
  const openRows = mine.map((a) => `<tr><td>${badge(a.level)}</td><td>${esc(nm(a.scope))}</td><td>${when(a.since)}</td>
      <td>${when(a.deadline)} ${a.overdue ? `<span class="overdue">${esc(t("overdue"))}</span>` : ""}</td></tr>`).join("");
  const domainRows = state.catalog.domains.map((d) => `<tr><td>${esc(nm(d.id))}</td>
      <td class="num">${fmt(view?.domains?.[d.id])}</td><td>${badgeIf(view?.grades?.[d.id])}</td>
      <td>${spark(col(hist?.domains, d.id))}</td></tr>`).join("");
  const catRows = state.catalog.categories.map((c) => `<tr><td>${esc(nm(c.id))}</td><td class="muted">${esc(nm(c.domain))}</td>
      <td class="num">${fmt(view?.categories?.[c.id])}</td><td>${spark(col(hist?.categories, c.id))}</td></tr>`).join("");
  const indRows = (view?.indicators || []).map((s) => {
    const h = hist?.indicators?.[s.indicator];
    return `<tr><td title="${esc(s.indicator)}">${esc(nm(s.indicator))}</td><td class="num">${num(s.value)}</td>
      <td class="num">${num(s.expected)}</td><td class="num">${fmt(s.score)}</td>
      <td>${h ? spark(h.value, h.expected) : ""}</td></tr>`;
  }).join("");
  const kids = (state.children.get(code) || []).map((k) => `<a class="chip lv-${own.get(k) || "none"}" href="#/region/${encodeURIComponent(k)}">${esc(state.regions.get(k).name)}</a>`).join("");
  el.innerHTML = `
    <div class="crumbs">${crumbHtml}</div>
    <h1 id="region-title">${esc(r.name)} <span class="muted">${esc(code)} · ${esc(r.level)}</span> ${badge(own.get(code))}</h1>
    <div class="muted">${r.scored ? `${esc(t("index"))} <b id="region-index">${fmt(view?.composite)}</b> · ${esc(t("evaluated"))} ${when(view?.window_end)}` : esc(t("not_scored"))}</div>
    <h2>${esc(t("open"))}</h2>
    ${mine.length ? `<table><tr><th>${t("level")}</th><th>${t("scope")}</th><th>${t("since")}</th><th>${t("deadline")}</th></tr>${openRows}</table>` : `<p class="muted">${esc(t("no_alerts"))}</p>`}
    <h2>${esc(t("history"))} · ${esc(t("composite"))}</h2>
    <div class="card">${hist ? spark(hist.composite, null, 600) + ` <span class="muted">${when(hist.window_end[0])} → ${when(hist.window_end[hist.window_end.length - 1])}</span>` : `<span class="muted">${esc(t("no_history"))}</span>`}</div>
    <div class="grid2">
      <div><h2>${esc(t("domains"))}</h2><table id="domains"><tr><th></th><th>${t("score")}</th><th>${t("level")}</th><th>${t("history")}</th></tr>${domainRows}</table></div>
      <div><h2>${esc(t("categories"))}</h2><table id="categories"><tr><th></th><th>${t("domain")}</th><th>${t("score")}</th><th>${t("history")}</th></tr>${catRows}</table></div>
    </div>
    <h2>${esc(t("indicators"))}</h2>
    <table id="indicators"><tr><th></th><th>${t("value")}</th><th>${t("expected")}</th><th>${t("score")}</th><th>${t("history")}</th></tr>${indRows}</table>
    ${kids ? `<h2>${esc(t("children"))}</h2><div class="chips">${kids}</div>` : ""}
    <h2>${esc(t("episodes"))}</h2>
    <div id="episodes">${feed.records.map(alertItem).join("") || `<p class="muted">${esc(t("no_alerts"))}</p>`}</div>`;
}

// ---- alerts ----------------------------------------------------------------------------------

function why(a) {
  if (a.evidence) {
    const e = a.evidence;
    const agree = e.sources && e.sources.length ? ` · ${esc(t("agree"))}: ${e.sources.map(esc).join(", ")}` : "";
    return `${esc(e.summary)}${agree}`;
  }
  const reason = t("reason_" + a.reason.split(":")[0]);
  const top = (a.top_contributors || []).slice(0, 3).map((c) => {
    const n = c.name ? c.name[state.lang] || c.name.en : nm(c.indicator);
    return `${esc(n)} ${num(c.value)} (${esc(t("expected"))} ${num(c.expected)}, ${esc(t("score"))} ${fmt(c.score, 0)})`;
  });
  // A level an override set: the rule and what triggered it.
  const f = a.floor;
  const floor = f ? ` · ${esc(t("floor"))} ${esc(levelLabel(f.level))}: ${esc(nm(f.trigger))} ${esc(levelLabel(f.trigger_level))} (${esc(f.rule)})` : "";
  return `${esc(reason)}${floor}${top.length ? ` · ${esc(t("top"))}: ${top.join("; ")}` : ""}`;
}

function alertItem(a) {
  const l = a.level || a.previous_level;
  const todo = a.response ? `<div class="todo"><b>${esc(t("response"))}:</b> ${esc(a.response)}${a.deadline ? ` · ${esc(t("deadline"))} ${when(a.deadline)}` : ""}</div>` : "";
  return `<div class="alert-item b-${l || "none"}" data-alert="${esc(a.alert_id)}" data-level="${esc(a.level || "")}">
    <div class="head">${badge(l)} <b>${esc(t(a.event))}</b>
      <a href="#/region/${encodeURIComponent(a.region)}">${esc(a.region_name)}</a>
      <span class="muted">${esc(a.region)} · ${esc(nm(a.scope))} · ${fmt(a.score)}</span>
      <span class="muted" style="margin-left:auto">${when(a.window_end)}</span></div>
    <div class="why">${why(a)}</div>${todo}</div>`;
}

async function viewAlerts(el, params) {
  const level = params.get("level") || "", domain = params.get("domain") || "", region = params.get("region") || "";
  const opt = (v, label, cur) => `<option value="${esc(v)}"${v === cur ? " selected" : ""}>${esc(label)}</option>`;
  el.innerHTML = `
    <h1>${esc(t("alerts"))} <span class="muted" style="font-size:13px">● ${esc(t("live"))}</span></h1>
    <div class="filters">
      <label>${esc(t("from_level"))} <select id="f-level">${opt("", t("all"), level)}${Object.keys(RANK).map((l) => opt(l, levelLabel(l), level)).join("")}</select></label>
      <label>${esc(t("domain"))} <select id="f-domain">${opt("", t("all"), domain)}${state.catalog.domains.map((d) => opt(d.id, nm(d.id), domain)).join("")}</select></label>
      <label>${esc(t("region"))} <select id="f-region">${opt("", t("all"), region)}${state.catalog.regions.filter((r) => r.scored).map((r) => opt(r.code, `${r.name} (${r.code})`, region)).join("")}</select></label>
    </div>
    <div id="feed"></div>`;
  const apply = () => {
    const p = new URLSearchParams();
    for (const k of ["level", "domain", "region"]) { const v = document.getElementById("f-" + k).value; if (v) p.set(k, v); }
    location.hash = "#/alerts" + (p.toString() ? "?" + p : "");
  };
  for (const k of ["level", "domain", "region"]) document.getElementById("f-" + k).onchange = apply;
  const feed = document.getElementById("feed");
  let last = 0;
  const poll = async () => {
    const p = new URLSearchParams({ after: String(last), limit: "200" });
    if (level) p.set("level", level);
    if (domain) p.set("domain", domain);
    if (region) p.set("region", region);
    const f = await api("/api/feed?" + p);
    last = f.last;
    if (f.records.length) feed.insertAdjacentHTML("afterbegin", f.records.map(alertItem).join(""));
    while (feed.children.length > 500) feed.lastElementChild.remove();
    if (!feed.children.length) feed.innerHTML = `<p class="muted" id="feed-empty">${esc(t("no_alerts"))}</p>`;
    else document.getElementById("feed-empty")?.remove();
  };
  await poll();
  state.timer = setInterval(() => poll().catch(() => {}), 3000);
}

// ---- shell -----------------------------------------------------------------------------------

async function status() {
  try {
    const [overview, open] = await Promise.all([api("/api/overview"), api("/api/alerts")]);
    const last = overview.map((o) => o.window_end).sort().pop();
    document.getElementById("status").textContent = `${t("evaluated")} ${when(last)} · ${t("open")} ${open.length}`;
  } catch (e) { document.getElementById("status").textContent = e.message; }
}

async function route() {
  if (state.timer) { clearInterval(state.timer); state.timer = null; }
  const el = document.getElementById("view");
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active",
    (a.dataset.nav === "alerts") === path.startsWith("/alerts")));
  try {
    if (path.startsWith("/region/")) await viewRegion(el, decodeURIComponent(path.slice(8)));
    else if (path.startsWith("/alerts")) await viewAlerts(el, params);
    else await viewCity(el);
    document.body.dataset.view = path.split("/")[1] || "city";
    document.body.dataset.ready = "1";
  } catch (e) {
    el.innerHTML = `<p class="overdue">${esc(e.message)}</p>`;
  }
}

function applyLang() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((n) => { n.textContent = t(n.dataset.i18n); });
  document.getElementById("lang").textContent = state.lang === "zh" ? "English" : "中文";
}

async function main() {
  const forced = new URLSearchParams(location.search).get("lang");
  if (forced === "zh" || forced === "en") state.lang = forced;
  applyLang();
  document.getElementById("lang").onclick = () => {
    state.lang = state.lang === "zh" ? "en" : "zh";
    localStorage.setItem("vigil.lang", state.lang);
    applyLang(); route(); status();
  };
  try { await loadCatalog(); } catch (e) { document.getElementById("view").innerHTML = `<p class="overdue">${esc(e.message)}</p>`; return; }
  window.addEventListener("hashchange", route);
  await route();
  status();
  setInterval(status, 5000);
}

main();
