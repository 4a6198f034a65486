// Myriad dashboard: hash-routed views (#overview, #samples?…, #attempt?key=…, #work?…, #models) over the JSON API.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k ?? "")));
  return e;
};
const qs = (obj) => new URLSearchParams(Object.entries(obj).filter(([, v]) => v !== "" && v != null)).toString();
const fmt = (x, d = 2) => (x == null || Number.isNaN(x) ? "–" : Number(x).toFixed(d));
const pct = (x) => (x == null ? "–" : (100 * x).toFixed(1) + "%");
const local = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
function dur(s) {
  if (s == null) return "–";
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${r}s` : `${r}s`;
}

async function api(path, params = {}) {
  const r = await fetch(`api/${path}?${qs(params)}`, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
function status(text, isError = false) {
  const s = $("#status");
  s.textContent = text;
  s.className = isError ? "err" : "muted";
}

// ---- plots ---------------------------------------------------------------------------------------------
function plot(values, t0, step, { title, max = null, unit = "" }) {
  const W = 360, H = 120, L = 34, B = 16, T = 14;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "plot");
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text != null) e.textContent = text;
    svg.append(e);
  };
  const finite = values.filter((v) => v != null);
  const top = max ?? Math.max(1e-9, ...finite) * 1.1;
  const x = (i) => L + ((W - L - 6) * i) / Math.max(values.length - 1, 1);
  const y = (v) => T + (H - T - B) * (1 - v / top);
  add("text", { x: L, y: 10 }, title);
  add("text", { x: 2, y: T + 8 }, fmt(top, top < 10 ? 2 : 0) + unit);
  add("text", { x: 2, y: H - B }, "0" + unit);
  add("line", { x1: L, y1: H - B, x2: W - 6, y2: H - B, stroke: "#ccd" });
  add("text", { x: L, y: H - 3 }, new Date(t0 * 1000).toLocaleTimeString());
  add("text", { x: W - 60, y: H - 3 }, new Date((t0 + step * (values.length - 1)) * 1000).toLocaleTimeString());
  let d = "", pen = false;
  values.forEach((v, i) => {
    if (v == null) { pen = false; return; }
    d += `${pen ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    pen = true;
  });
  add("path", { d, fill: "none", stroke: "#3a8ee6", "stroke-width": 1.5 });
  return svg;
}

// ---- overview ------------------------------------------------------------------------------------------
let overview = null;
const PHASE_COLOURS = ["#3a8ee6", "#f0a030", "#5cb85c", "#d9534f", "#9b59b6", "#17a2b8", "#e67e22", "#7f8c8d", "#c0ca33"];
function timeBar(t) {
  // Where an attempt's time goes: each phase's mean wall seconds per attempt as one segment of a bar.
  const phases = t && t.attempts ? Object.entries(t.phases).filter(([k]) => k !== "total") : [];
  const sum = phases.reduce((a, [, v]) => a + v, 0);
  if (!(sum > 0)) return "";
  const colour = (i) => PHASE_COLOURS[i % PHASE_COLOURS.length];
  const label = ([k, v]) => `${k} ${fmt(v, 3)} s (${pct(v / sum)})`;
  return el("div", { class: "c-time" },
    el("p", { class: "muted" }, `where an attempt's time goes: ${fmt(sum)} s (mean wall time of the ${t.attempts} `
      + `attempts of the campaign's last ${Math.round(t.window_s / 60)} min)`),
    el("div", { class: "phases" }, ...phases.map((p, i) =>
      el("div", { style: `width:${(100 * p[1] / sum).toFixed(2)}%;background:${colour(i)}`, title: label(p) }))),
    el("p", { class: "legend" }, ...phases.map((p, i) =>
      el("span", { "data-phase": p[0] }, el("i", { style: `background:${colour(i)}` }), label(p)))));
}
function campaignCard(c) {
  const tl = c.timeline, step = tl.bucket_s;
  const rates = tl.attempts.map((n) => n / step);
  const succ = tl.attempts.map((n, i) => (n ? tl.successes[i] / n : null));
  const done = c.target ? Math.min(1, c.attempts / c.target) : 0;
  const items = c.items
    ? `items: ${c.items.done} done · ${c.items.leased} leased · ${c.items.pending} pending (as of ${local(c.items.as_of)})`
    : "items: counting…";
  const outcomes = c.items && c.items.outcomes && Object.keys(c.items.outcomes).length
    ? "outcomes: " + Object.entries(c.items.outcomes).sort().map(([k, n]) => `${k} ${n}`).join(" · ")
      + ` (${c.items.successes} successes of ${c.items.executed} executed grasps)`
    : "";
  const strategies = c.items && c.items.strategies && Object.keys(c.items.strategies).length
    ? "success by strategy: " + Object.entries(c.items.strategies).sort().map(([k, s]) =>
      `${k} ${s.successes}/${s.executed} (${pct(s.executed ? s.successes / s.executed : null)})`).join(" · ")
    : "";
  const card = el("div", { class: "card", "data-campaign": c.name },
    el("h3", {}, c.name, c.finished_at ? el("span", { class: "muted", text: " · finished" }) : ""),
    el("div", { class: "bar" }, el("div", { style: `width:${(100 * done).toFixed(1)}%` })),
    el("div", { class: "stats" },
      el("span", {}, "attempts ", el("b", { class: "c-attempts", text: c.attempts }), ` / ${c.target}`),
      el("span", {}, "success ", el("b", { text: pct(c.success_rate) })),
      el("span", {}, "rate ", el("b", { text: fmt(c.rate) }), " /s"),
      el("span", {}, "ETA ", el("b", { text: c.finished_at ? "done" : dur(c.eta_s) })),
      el("a", { href: `#samples?${qs({ campaign: c.name })}` }, "samples"), " ",
      el("a", { href: `#work?${qs({ campaign: c.name })}` }, "work items")),
    el("p", { class: "muted", text: items }),
    el("p", { class: "muted c-outcomes", text: outcomes }),
    el("p", { class: "muted c-strategies", text: strategies }),
    timeBar(c.items && c.items.time),
    el("div", { class: "plots" },
      plot(rates, tl.t0, step, { title: `attempts/s (per ${step}s)` }),
      plot(succ, tl.t0, step, { title: "success rate", max: 1 })));
  return card;
}
function renderOverview(o) {
  overview = o;
  const cs = o.campaigns || [];
  const sum = (k) => cs.reduce((a, c) => a + (c[k] || 0), 0);
  $("#total-attempts").textContent = o.loading ? "–" : sum("attempts");
  $("#total-successes").textContent = o.loading ? "–" : sum("successes");
  $("#total-rate").textContent = fmt(sum("rate"));
  $("#campaigns").replaceChildren(...(cs.length ? cs.map(campaignCard) : [el("p", { class: "muted", text: o.loading ? "loading…" : "no campaigns" })]));
  const now = Date.parse(o.now);
  $("#backends tbody").replaceChildren(...(o.backends || []).map((b) => el("tr", {},
    el("td", { text: b.backend }), el("td", { text: b.state ?? "" }), el("td", { text: b.host ?? "" }),
    el("td", { text: b.campaign ?? "" }), el("td", { text: b.current_item ?? "" }),
    el("td", { class: "num", text: b.attempts ?? "" }), el("td", { class: "num", text: b.successes ?? "" }),
    el("td", { class: "num", text: fmt(b.rate) }), el("td", { class: "num", text: b.restarts ?? 0 }),
    el("td", { text: b.updated_at ? dur((now - Date.parse(b.updated_at)) / 1000) + " ago" : "–" }),
    el("td", { class: "err", text: b.last_error ?? "" }))));
  fillCampaigns(cs.map((c) => c.name));
  status(o.error ? `database: ${o.error}` : `updated ${new Date().toLocaleTimeString()}`, !!o.error);
}
async function pollOverview() {
  try {
    if (route().view === "overview" || !overview) renderOverview(await api("overview"));
  } catch (e) {
    status(`overview: ${e.message}`, true);
  }
}
function fillCampaigns(names) {
  for (const sel of document.querySelectorAll('select[name="campaign"]')) {
    const have = [...sel.options].map((o) => o.value).filter((v) => v);
    if (have.join() === names.join()) continue;
    const keep = sel.value;
    const any = sel.closest("#filters") ? [el("option", { value: "", text: "any" })] : [];
    sel.replaceChildren(...any, ...names.map((n) => el("option", { value: n, text: n })));
    sel.value = keep && names.includes(keep) ? keep : sel.options[0]?.value ?? "";
  }
}

// ---- samples -------------------------------------------------------------------------------------------
const FILTERS = ["campaign", "backend", "label", "outcome", "object", "source", "since", "until"];
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}
async function showSamples(p) {
  const form = $("#filters");
  for (const k of FILTERS) {
    const f = form.elements[k];
    if (k === "campaign" && p[k] && ![...f.options].some((o) => o.value === p[k])) f.append(el("option", { value: p[k], text: p[k] }));
    f.value = k === "since" || k === "until" ? toLocalInput(p[k]) : p[k] ?? "";
  }
  const skip = Number(p.skip || 0), limit = Number(p.limit || 50);
  const body = await api("samples", { ...Object.fromEntries(FILTERS.map((k) => [k, p[k]])), skip, limit });
  $("#samples tbody").replaceChildren(...body.items.map((a) => el("tr", { "data-key": a.attempt_key },
    el("td", {}, el("a", { href: `#attempt?${qs({ key: a.attempt_key })}`, class: "attempt-link" }, a.attempt_key)),
    el("td", { text: a.campaign }), el("td", { text: a.backend ?? "" }),
    el("td", { class: a.success ? "ok label" : "fail label", text: a.success ? "success" : "failure" }),
    el("td", { text: a.outcome ?? "" }), el("td", { text: (a.objects || []).join(", ") }),
    el("td", { class: "num", text: fmt(a.lift_height, 3) }), el("td", { text: local(a.created_at) }))));
  $("#page-info").textContent = body.items.length ? `${skip + 1}–${skip + body.items.length}` : "no attempts match";
  $("#prev").disabled = skip === 0;
  $("#next").disabled = !body.has_more;
  $("#prev").onclick = () => go("samples", { ...p, skip: Math.max(0, skip - limit) });
  $("#next").onclick = () => go("samples", { ...p, skip: skip + limit });
}
$("#filters").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target.elements, p = {};
  for (const k of FILTERS) {
    const v = f[k].value.trim();
    p[k] = v && (k === "since" || k === "until") ? new Date(v).toISOString() : v;
  }
  go("samples", p);
});

// ---- one attempt ---------------------------------------------------------------------------------------
async function showAttempt(p) {
  const doc = await api("attempt", { key: p.key });
  $("#attempt-key").textContent = doc.attempt_key;
  $("#attempt-label").className = doc.success ? "ok" : "fail";
  $("#attempt-label").textContent = doc.success ? "success" : "failure";
  const ims = doc.images || {};
  const fig = (src, caption, id) => el("figure", {}, el("img", { src, alt: caption, id, loading: "eager" }), el("figcaption", { text: caption }));
  const figs = [];
  if (ims.pre_rgb) figs.push(fig(`api/image?${qs({ id: ims.pre_rgb })}`, "pre-grasp RGB", "img-pre-rgb"));
  if (ims.pre_rgb && doc.grasp) figs.push(fig(`api/render?${qs({ key: doc.attempt_key, kind: "grasp" })}`, "grasp", "img-grasp"));
  if (ims.pre_depth) figs.push(fig(`api/render?${qs({ key: doc.attempt_key, kind: "depth" })}`, "depth", "img-depth"));
  if (ims.pre_segmentation) figs.push(fig(`api/render?${qs({ key: doc.attempt_key, kind: "segmentation" })}`, "segmentation", "img-seg"));
  if (ims.post_rgb) figs.push(fig(`api/image?${qs({ id: ims.post_rgb })}`, "post-grasp RGB", "img-post-rgb"));
  $("#images").replaceChildren(...(figs.length ? figs : [el("p", { class: "muted", text: "no images stored" })]));
  $("#attempt-doc").textContent = JSON.stringify(doc, null, 2);
}

// ---- work items ----------------------------------------------------------------------------------------
async function showWork(p) {
  const form = $("#work-filters");
  const names = (overview?.campaigns || []).map((c) => c.name);
  const campaign = p.campaign || names[0];
  if (!campaign) { $("#work-counts").textContent = "no campaigns"; return; }
  if (![...form.elements.campaign.options].some((o) => o.value === campaign)) form.elements.campaign.append(el("option", { value: campaign, text: campaign }));
  form.elements.campaign.value = campaign;
  form.elements.state.value = p.state || "";
  const skip = Number(p.skip || 0), limit = 50;
  const body = await api("work_items", { campaign, state: p.state, skip, limit });
  const now = Date.parse(body.now), c = body.counts;
  $("#work-counts").textContent = `target ${body.campaign.target}` +
    (c ? ` · ${c.pending} pending · ${c.leased} leased · ${c.done} done (as of ${local(c.as_of)})` : " · counting…");
  $("#work tbody").replaceChildren(...body.items.map((w) => {
    const exp = w.lease_expires ? Date.parse(w.lease_expires) : null;
    const lease = exp == null ? "" : exp > now ? `in ${dur((exp - now) / 1000)}` : `expired ${dur((now - exp) / 1000)} ago`;
    return el("tr", {},
      el("td", { class: "num", text: w.index }), el("td", { text: w.item_id }), el("td", { text: w.state }),
      el("td", { text: w.lease_owner ?? "" }), el("td", { text: lease }), el("td", { class: "num", text: w.claims ?? 0 }),
      el("td", {}, w.attempt_key ? el("a", { href: `#attempt?${qs({ key: w.attempt_key })}` }, w.attempt_key) : ""),
      el("td", {}, el("code", { class: "params", text: JSON.stringify(w.params) })));
  }));
  $("#work-page").textContent = body.items.length ? `${skip + 1}–${skip + body.items.length}` : "none";
  $("#work-prev").disabled = skip === 0;
  $("#work-next").disabled = !body.has_more;
  $("#work-prev").onclick = () => go("work", { ...p, campaign, skip: Math.max(0, skip - limit) });
  $("#work-next").onclick = () => go("work", { ...p, campaign, skip: skip + limit });
}
$("#work-filters").addEventListener("change", (ev) => {
  const f = ev.currentTarget.elements;
  go("work", { campaign: f.campaign.value, state: f.state.value });
});

// ---- models --------------------------------------------------------------------------------------------
async function showModels() {
  const models = await api("models");
  const num = (text) => el("td", { class: "num", text });
  $("#models tbody").replaceChildren(...(models.length ? models.map((m) => {
    const v = m.metrics?.validation || {}, c = m.collected;
    return el("tr", { "data-version": m.version },
      el("td", {}, el("b", { text: m.version })), el("td", { text: local(m.created_at) }),
      el("td", { text: (m.campaigns || []).join(", ") }),
      num(`${m.attempts ?? "–"} (${m.train ?? "–"} / ${m.validation ?? "–"})`),
      num(`${fmt(v.accuracy)} (${fmt(v.majority)})`), num(fmt(v.auc)), num(fmt(v.brier, 3)), num(fmt(v.ece, 3)),
      num(`${c.successes}/${c.executed} (${pct(c.success_rate)})`),
      num(c.interval ? `${pct(c.interval[0])}–${pct(c.interval[1])}` : "–"), num(c.attempts),
      el("td", { class: "m-campaigns", text: c.campaigns.join(", ") || "–" }));
  }) : [el("tr", {}, el("td", { colspan: 12, class: "muted", text: "no models yet" }))]));
}

// ---- routing -------------------------------------------------------------------------------------------
function route() {
  const [view, query] = (location.hash.slice(1) || "overview").split("?");
  return { view, params: Object.fromEntries(new URLSearchParams(query || "")) };
}
function go(view, params) {
  location.hash = `${view}?${qs(params)}`;
}
async function render() {
  const { view, params } = route();
  const section = view === "attempt" ? "attempt" : ["samples", "work", "models"].includes(view) ? view : "overview";
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${section}`;
  for (const a of document.querySelectorAll("header nav a")) a.classList.toggle("active", a.id === `nav-${section === "attempt" ? "samples" : section}`);
  try {
    if (section === "overview") await pollOverview();
    if (section === "samples") await showSamples(params);
    if (section === "attempt") await showAttempt(params);
    if (section === "work") await showWork(params);
    if (section === "models") await showModels();
    document.body.dataset.view = section;
    document.body.dataset.ready = String(Date.now());
  } catch (e) {
    status(`${section}: ${e.message}`, true);
  }
}
window.addEventListener("hashchange", render);
render();
setInterval(pollOverview, 1000);
