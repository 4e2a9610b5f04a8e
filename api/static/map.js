/* Buque gap map: MapLibre GL JS, vector tiles from this server, no external resources. */
"use strict";

const I18N = {
  zh: { title: "基础设施缺口图", colour: "着色", by_gaps: "按缺口数", county: "县", township: "乡镇",
        all: "全部", search: "搜索村名或代码", go: "查找", layers: "图层", list_csv: "缺口村清单 (CSV)",
        list_xlsx: "缺口台账 (XLSX)", no_gap: "无缺口", unverified: "无缺口，待核实",
        transformers: "变压器等", power_lines: "电力线", county_line: "县界", township_line: "乡镇界",
        size_admin: "行政村（大点）", size_natural: "自然村（小点）", failed: "未达标条件",
        gaps: "项缺口", met: "达标", missing: "缺", unknown: "未知", na: "不适用",
        villages: "村", roads: "道路", power: "电力", water: "供水点", clinics: "卫生室", broadband: "通信基站", boundaries: "行政界线",
        admin: "行政村", natural: "自然村", population: "人口", poor: "贫困村", exit_year: "计划退出年份",
        indicator: "指标", status: "状态", distance: "距离 (m)", evidence: "依据", remedy: "补缺项目",
        quantity: "数量", cost: "估算 (元)", none: "无", yes: "是", no: "否", run: "运行",
        road_hard: "硬化路", road_other: "非硬化路", road_unknown: "路面未知", labels: "村名",
        bundle: "报告包 (ZIP)", map_pdf: "打印图 (PDF)", queued: "排队中", position: "第", ready: "已完成，正在下载",
        export_failed: "导出失败", basemap: "底图",
        discrepancy: "台账核对", disc_none: "不筛选", disc_any: "任一不符",
        claimed_met_evidence_missing: "疑似虚报/错退", claimed_met_evidence_unknown: "待核实",
        claimed_missing_evidence_met: "台账未更新", regressions: "反弹", regressed: "反弹（较上次由达标变为缺）",
        chart: "进展图", chart_title: "达标率进展", axis_x: "评估日期", axis_y: "达标率（%）",
        chart_key: "虚线 目标 · 点线 期限", close: "关闭", last_rate: "最新达标率", target: "目标",
        deadline: "期限", reached_on: "按当前进度达标日期", not_at_pace: "按当前进度不能达标",
        more: "另有", villages_n: "个村" },
  en: { title: "Infrastructure gap map", colour: "Colour by", by_gaps: "number of gaps", county: "County",
        township: "Township", all: "all", search: "Search village name or code", go: "Find", layers: "Layers",
        list_csv: "Deficient villages (CSV)", list_xlsx: "Gap ledger (XLSX)", no_gap: "no gap",
        unverified: "no gap, to verify", transformers: "transformers etc.", power_lines: "power lines",
        county_line: "county boundary", township_line: "township boundary",
        size_admin: "administrative village (large dot)", size_natural: "natural village (small dot)",
        failed: "failed condition", gaps: "gaps", met: "met", missing: "missing", unknown: "unknown",
        na: "n/a", villages: "Villages", roads: "Roads", power: "Power", water: "Water points",
        clinics: "Clinics", broadband: "Broadband", boundaries: "Boundaries", admin: "administrative", natural: "natural",
        population: "Population", poor: "Poor village", exit_year: "Planned exit", indicator: "Indicator",
        status: "Status", distance: "Distance (m)", evidence: "Evidence", remedy: "Remedy",
        quantity: "Quantity", cost: "Cost (CNY)", none: "none", yes: "yes", no: "no", run: "Run",
        road_hard: "hardened road", road_other: "other road", road_unknown: "surface unknown",
        labels: "Village names", bundle: "Report bundle (ZIP)", map_pdf: "Print map (PDF)",
        queued: "queued", position: "position", ready: "ready, downloading", export_failed: "export failed",
        basemap: "Basemap",
        discrepancy: "Ledger check", disc_none: "no filter", disc_any: "any discrepancy",
        claimed_met_evidence_missing: "claimed met, evidence missing",
        claimed_met_evidence_unknown: "claimed met, evidence unknown",
        claimed_missing_evidence_met: "claimed missing, evidence met", regressions: "Regressions",
        regressed: "regression (met in the previous run, missing now)",
        chart: "Progress chart", chart_title: "Rate over the runs", axis_x: "Run date", axis_y: "Rate (%)",
        chart_key: "dashed: target · dotted: deadline", close: "Close", last_rate: "Latest rate",
        target: "Target", deadline: "Deadline", reached_on: "Target reached at this pace",
        not_at_pace: "not at this pace", more: "and", villages_n: "more villages" },
};
const GAP_COLOURS = ["#1a9850", "#fee08b", "#fc8d59", "#d73027", "#7f0000", "#40004b"];
let gapColour = null;  /* the style's village colour (by the tile property gap_class), kept at load */
let openPopup = null;  /* one popup at a time */
const STATUS_COLOURS = { met: "#1a9850", missing: "#d73027", unknown: "#9e9e9e" };
let lang = localStorage.getItem("buque-lang") || "zh";
let config = null;
const t = (k) => (I18N[lang] && I18N[lang][k]) || k;

function applyI18n() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-ph]").forEach((el) => { el.placeholder = t(el.dataset.i18nPh); });
  document.getElementById("lang").textContent = lang === "zh" ? "EN" : "中文";
  document.title = (lang === "zh" ? "补缺 · " : "Buque · ") + t("title");
  if (config) {
    fillIndicators(); fillPlaces(); legend(); runLine(); toggles(); listLinks(); planPanel(); fillDiscrepancy();
    discrepancyList(); if (!document.getElementById("chart-panel").hidden) drawChart();
  }
}

const map = new maplibregl.Map({
  container: "map", style: "styles/gaps.json", attributionControl: false,
  localIdeographFontFamily: "'Noto Sans CJK SC', sans-serif",
});
map.addControl(new maplibregl.NavigationControl(), "top-right");
map.addControl(new maplibregl.ScaleControl({ unit: "metric" }), "bottom-right");

function label(ind) { return lang === "zh" ? ind.label_zh : ind.label_en; }

/* Every text shown comes from input files anyone can edit: the DOM is built with textContent
   and attributes only, never from HTML strings (the server's CSP forbids inline script too). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") el.className = v;
    else if (k === "style") Object.assign(el.style, v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el) el[k] = v;
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function options(sel, items) {  /* items: [value, text]; the first is "all" */
  sel.replaceChildren(...items.map(([value, text]) => h("option", { value }, text)));
}

function fillIndicators() {
  const sel = document.getElementById("colour");
  const cur = sel.value;
  options(sel, [["", t("by_gaps")], ...config.indicators.map((i) => [i.key, label(i)])]);
  sel.value = cur;
}

function runLine() {
  document.getElementById("run").textContent =
    `${t("run")} ${config.run_id} · ${config.profile.name} ${config.profile.version}`;
  const bm = config.basemap && config.basemap.attribution ? [config.basemap.attribution] : [];
  document.getElementById("attribution").textContent = [...config.attribution, ...bm].join(" · ");
}

/* The legend: village colours (as the style draws them), village sizes, then the symbols of
   every layer drawn, their colours read from the live style. */
function paint(id, prop) { return map.getLayer(id) ? map.getPaintProperty(id, prop) : null; }

function legend() {
  const key = document.getElementById("colour").value;
  const rows = key
    ? ["met", "missing", "unknown"].map((s) => [STATUS_COLOURS[s], t(s)])
    : [[GAP_COLOURS[0], t("no_gap")], [gapUnverified(), t("unverified")],
       ...GAP_COLOURS.slice(1).map((c, i) => [c, `${i + 1}${i === 4 ? "+" : ""} ${t("gaps")}`])];
  const row = (cls, style, text) =>
    h("div", { class: "legend-row" }, h("span", { class: cls, style }), text);
  const dot = (colour, size = 14) => ({ background: colour, width: `${size}px`, height: `${size}px` });
  const out = rows.map(([c, l]) => row("swatch", dot(c), l));
  out.push(row("swatch", dot("#fff", 14), t("size_admin")), row("swatch", dot("#fff", 9), t("size_natural")));
  const on = new Set(config ? config.layers : []);
  if (on.has("roads")) {
    out.push(row("line-swatch", { background: paint("roads-hard", "line-color") }, t("road_hard")),
      row("line-swatch", { background: paint("roads-other", "line-color") }, t("road_other")),
      row("line-swatch", { background: paint("roads-unknown", "line-color") }, t("road_unknown")));
  }
  if (on.has("power")) {
    out.push(row("line-swatch dashed", { borderColor: paint("power-lines", "line-color") }, t("power_lines")),
      row("swatch", dot(paint("power-points", "circle-color"), 8), t("transformers")));
  }
  for (const kind of ["water", "clinics", "broadband"]) {
    if (on.has(kind)) out.push(row("swatch", dot(paint(kind, "circle-color"), 10), t(kind)));
  }
  if (on.has("boundaries")) {
    const c = paint("boundaries", "line-color");
    out.push(row("line-swatch dashed thick", { borderColor: c }, t("county_line")),
      row("line-swatch dashed", { borderColor: c }, t("township_line")));
  }
  if (regressed.length) {
    out.push(row("swatch ring", { borderColor: REGRESSION_COLOUR }, `${t("regressed")} (${regressed.length})`));
  }
  document.getElementById("legend").replaceChildren(...out);
}

/* the unverified colour as the style's gap_class match gives it */
function gapUnverified() {
  const e = gapColour || [];
  const i = e.indexOf("unverified");
  return i > 0 ? e[i + 1] : "#a6a6a6";
}

function colourVillages() {
  const key = document.getElementById("colour").value;
  const expr = key
    ? ["match", ["coalesce", ["get", key], "na"], "met", STATUS_COLOURS.met, "missing", STATUS_COLOURS.missing,
       "unknown", STATUS_COLOURS.unknown, "#ffffff"]
    : gapColour;
  map.setPaintProperty("villages", "circle-color", expr);
  legend();
  listLinks();
}

/* The villages drawn: of the county/township chosen and, when a ledger class is chosen, only
   those with such a discrepancy; the regression rings follow the same choice. */
function placeFilter() {
  const county = document.getElementById("county").value;
  const town = document.getElementById("township").value;
  const f = ["all"];
  if (county) f.push(["==", ["get", "county"], county]);
  if (town) f.push(["==", ["get", "township"], town]);
  const codes = discrepancyCodes();
  if (codes) f.push(["in", ["to-string", ["get", "code"]], ["literal", codes]]);
  map.setFilter("villages", f.length > 1 ? f : null);
  if (map.getLayer("regressions")) {
    map.setFilter("regressions", [...f, ["in", ["to-string", ["get", "code"]],
                                         ["literal", [...new Set(regressed.map((r) => r.village_code))]]]]);
  }
  discrepancyList();
  if (!document.getElementById("chart-panel").hidden) drawChart();
  map.once("idle", drawLabels);
  listLinks();
}

function listLinks() {
  const p = new URLSearchParams();
  const key = document.getElementById("colour").value;
  p.set("missing", key || config.indicators.map((i) => i.key).join(","));
  const county = document.getElementById("county").value;
  const town = document.getElementById("township").value;
  if (county) p.set("county", county);
  if (town) p.set("township", town);
  document.getElementById("list-csv").href = `collections/villages/items?${p}&f=csv`;
  if (lang !== "zh") p.set("lang", lang);
  document.getElementById("list-xlsx").href = `collections/villages/items?${p}&f=xlsx`;
  document.querySelectorAll("a[data-export]").forEach((a) => {
    const q = new URLSearchParams(exportBody(a.dataset.export));
    q.delete("format");
    const qs = q.toString();
    a.href = `exports/${a.dataset.export}${qs ? `?${qs}` : ""}`;
  });
}

/* Exports run as jobs on the server (POST exports): the link shows the queue position and
   progress of its job, then downloads the file; the job goes on if the page is closed. */
function exportBody(format) {
  const body = { format };
  const county = document.getElementById("county").value;
  const town = document.getElementById("township").value;
  if (county) body.county = county;
  if (town) body.township = town;
  if (lang !== "zh") body.lang = lang;
  return body;
}

function showJob(job, message) {
  const box = document.getElementById("export-status");
  box.hidden = false;
  const bar = document.getElementById("export-progress");
  const step = document.getElementById("export-step");
  if (!job) { bar.value = 0; step.textContent = message; return; }
  bar.value = job.progress.fraction;
  box.dataset.state = job.state;
  if (job.state === "queued") step.textContent = `${t("queued")} (${t("position")} ${job.position ?? 1})`;
  else if (job.state === "running") step.textContent = `${Math.round(job.progress.fraction * 100)}% · ${job.progress.step}`;
  else if (job.state === "done") step.textContent = `100% · ${t("ready")}`;
  else step.textContent = `${t("export_failed")}: ${(job.error && job.error.detail) || ""}`;
}

const pause = (ms) => new Promise((done) => setTimeout(done, ms));

async function runExport(ev) {
  ev.preventDefault();
  const r = await fetch("exports", { method: "POST", headers: { "Content-Type": "application/json" },
                                     body: JSON.stringify(exportBody(ev.currentTarget.dataset.export)) });
  if (!r.ok) { showJob(null, `${t("export_failed")}: ${(await r.json()).detail || r.status}`); return; }
  let job = await r.json();
  while (job.state === "queued" || job.state === "running") {
    showJob(job);
    await pause(job.state === "queued" ? 1000 : 400);
    const s = await fetch(`exports/jobs/${job.id}`);
    if (!s.ok) { showJob(null, `${t("export_failed")}: ${s.status}`); return; }
    job = await s.json();
  }
  showJob(job);
  if (job.state !== "done") return;
  const a = h("a", { href: `exports/jobs/${job.id}/download`, download: job.result.filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
}
document.querySelectorAll("a[data-export]").forEach((a) => { a.onclick = runExport; });

function fillPlaces() {
  const county = document.getElementById("county");
  const town = document.getElementById("township");
  const keep = [county.value, town.value];
  const towns = () => {
    options(town, [["", t("all")], ...(config.places[county.value] || []).map((x) => [x, x])]);
  };
  options(county, [["", t("all")], ...Object.keys(config.places).sort().map((c) => [c, c])]);
  county.value = keep[0];
  towns();
  town.value = keep[1];
  county.onchange = () => { towns(); placeFilter(); };
  document.getElementById("township").onchange = placeFilter;
}

function toggles() {
  const box = document.getElementById("toggles");
  box.replaceChildren(h("legend", {}, t("layers")),
    ...config.layers.map((l) => h("label", {},
      h("input", { type: "checkbox", checked: true, dataset: { layer: l } }), " ", t(l))),
    h("label", {}, h("input", { type: "checkbox", id: "show-labels", checked: showLabels }), " ",
      t("labels")),
    ...(config.basemap ? [h("label", {}, h("input", { type: "checkbox", id: "show-basemap",
      checked: showBasemap }), " ", t("basemap"))] : []));
  if (config.basemap) {
    document.getElementById("show-basemap").onchange = (e) => {
      showBasemap = e.target.checked;
      config.basemap.style_layers.forEach((id) =>
        map.setLayoutProperty(id, "visibility", showBasemap ? "visible" : "none"));
    };
  }
  box.querySelectorAll("input[data-layer]").forEach((el) => {
    el.onchange = () => {
      config.style_layers[el.dataset.layer].forEach((id) =>
        map.setLayoutProperty(id, "visibility", el.checked ? "visible" : "none"));
      map.once("idle", drawLabels);
    };
  });
  document.getElementById("show-labels").onchange = (e) => { showLabels = e.target.checked; drawLabels(); };
}

/* Village names as HTML labels: MapLibre's text layers need glyph files (PBF) from a server;
   these use the browser's own fonts (Noto CJK and the like), so names show with no internet.
   From LABEL_ZOOM up, at most LABEL_MAX, villages with the most gaps first, none overlapping. */
const LABEL_ZOOM = 11;
const LABEL_MAX = 250;
const LABEL_FONT = '12px "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif';
let showLabels = true;
let showBasemap = true;  /* the server's own basemap (buque serve --basemap), when it has one */
let labelMarkers = [];
const measure = document.createElement("canvas").getContext("2d");

function drawLabels() {
  labelMarkers.forEach((m) => m.remove());
  labelMarkers = [];
  if (!showLabels || !map.getLayer("villages") || map.getZoom() < LABEL_ZOOM) return;
  measure.font = LABEL_FONT;
  const boxes = [];
  const seen = new Set();
  const feats = map.queryRenderedFeatures({ layers: ["villages"] })
    .sort((a, b) => (b.properties.n_missing || 0) - (a.properties.n_missing || 0));
  for (const f of feats) {
    if (labelMarkers.length >= LABEL_MAX) break;
    const p = f.properties;
    if (!p.name || seen.has(p.code) || f.geometry.type !== "Point") continue;
    seen.add(p.code);
    const at = map.project(f.geometry.coordinates);
    const w = measure.measureText(p.name).width + 6;
    const box = [at.x + 5, at.y - 9, at.x + 5 + w, at.y + 9];
    if (boxes.some((b) => box[0] < b[2] && box[2] > b[0] && box[1] < b[3] && box[3] > b[1])) continue;
    boxes.push(box);
    const el = document.createElement("div");
    el.className = "village-label";
    el.textContent = p.name;
    el.dataset.code = p.code;
    labelMarkers.push(new maplibregl.Marker({ element: el, anchor: "left", offset: [5, 0] })
      .setLngLat(f.geometry.coordinates).addTo(map));
  }
}

function fmt(v, digits = 0) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toLocaleString(undefined, { maximumFractionDigits: digits });
}

async function popup(code, lngLat) {
  const r = await fetch(`map/villages/${encodeURIComponent(code)}`);
  if (!r.ok) return;
  const v = await r.json();
  const ind = Object.fromEntries(config.indicators.map((i) => [i.key, i]));
  const tr = (cells, tag = "td") => h("tr", {}, cells.map((c) => h(tag, {}, c)));
  const gaps = v.gaps.map((g) => h("tr", {},
    h("td", {}, label(ind[g.indicator] || { label_zh: g.indicator, label_en: g.indicator })),
    h("td", { class: `status-${String(g.status).replace(/[^a-z]/g, "")}` }, t(g.status)),
    h("td", {}, fmt(g.distance_m)),
    h("td", {}, g.evidence_id || g.candidate_id || "",
      g.failed ? h("div", { class: "failed muted", title: t("failed") }, g.failed) : null)));
  const rem = v.projects.length
    ? v.projects.map((p) => tr([p.item, `${fmt(p.quantity, 2)} ${p.unit ?? ""}`, fmt(p.cost)]))
    : [h("tr", {}, h("td", { colSpan: 3 }, t("none")))];
  const a = v.village;
  const poor = a.poor === true ? t("yes") : a.poor === false ? t("no") : "–";
  const box = h("div", { class: "popup" },
    h("b", {}, a.name || a.code), " ", h("span", { class: "muted" }, `${a.code} · ${t(a.level)}`),
    h("br"), `${a.county || ""} ${a.township || ""}`, h("br"),
    `${t("population")}: ${fmt(a.population)} · ${t("poor")}: ${poor}` +
      (a.exit_year ? ` · ${t("exit_year")}: ${a.exit_year}` : ""),
    h("table", {}, tr([t("indicator"), t("status"), t("distance"), t("evidence")], "th"), gaps),
    h("table", {}, tr([t("remedy"), t("quantity"), t("cost")], "th"), rem),
    ...(discrepancies || []).filter((d) => d.village_code === a.code).map((d) =>
      h("div", { class: "discrepancy" }, `${t("discrepancy")}: ${label(ind[d.indicator] || { label_zh: d.indicator, label_en: d.indicator })} · ${t(d.class)}`)),
    ...regressed.filter((r) => r.village_code === a.code).map((r) =>
      h("div", { class: "regression" }, `${t("regressions")}: ${label(ind[r.indicator] || { label_zh: r.indicator, label_en: r.indicator })} · ${r.detail || r.cause}`)));
  if (openPopup) openPopup.remove();
  openPopup = new maplibregl.Popup({ maxWidth: "360px" }).setLngLat(lngLat).setDOMContent(box).addTo(map);
}

async function search(ev) {
  ev.preventDefault();
  const q = document.getElementById("q").value.trim();
  if (!q) return;
  const r = await fetch(`collections/villages/items?q=${encodeURIComponent(q)}&limit=10&f=json`);
  const fc = await r.json();
  const ul = document.getElementById("results");
  ul.replaceChildren();
  (fc.features || []).forEach((f) => {
    const li = document.createElement("li");
    const p = f.properties;
    li.textContent = `${p.name || ""} ${p.code || f.id} (${p.township || ""})`;
    li.onclick = () => flyTo(p.code || f.id);
    ul.appendChild(li);
  });
}

/* ---- The ledger against the evidence (/discrepancies) and regressions (/progress/regressions).
   The filter is offered only for a run checked against a ledger (checked: true) and to a role
   allowed to read it; regressions into the shown run are ringed on the map. */
const CLASSES = ["claimed_met_evidence_missing", "claimed_met_evidence_unknown", "claimed_missing_evidence_met"];
const REGRESSION_COLOUR = "#e7298a";
let discrepancies = null;  /* rows of /discrepancies, null when the run was not checked */
let regressed = [];        /* rows of /progress/regressions whose later run is the one shown */

async function getJson(url) {
  try {
    const r = await fetch(url);
    return r.ok ? await r.json() : null;
  } catch (e) {
    return null;
  }
}

async function loadDiscrepancies() {
  const body = await getJson(`discrepancies?run=${encodeURIComponent(config.run_id)}&f=json`);
  discrepancies = body && body.checked ? body.discrepancies : null;
  document.getElementById("discrepancy-box").hidden = !discrepancies;
  fillDiscrepancy();
  document.getElementById("discrepancy").onchange = placeFilter;
}

function fillDiscrepancy() {
  if (!discrepancies) return;
  const sel = document.getElementById("discrepancy");
  const cur = sel.value;
  const n = (c) => new Set(discrepancies.filter((d) => c === "any" || d.class === c).map((d) => d.village_code)).size;
  options(sel, [["", t("disc_none")], ["any", `${t("disc_any")} (${n("any")})`],
    ...CLASSES.map((c) => [c, `${t(c)} (${n(c)})`])]);
  sel.value = cur;
}

/* the chosen discrepancy rows (of the place chosen), or null when no class is chosen */
function discrepancyRows() {
  const cls = discrepancies ? document.getElementById("discrepancy").value : "";
  if (!cls) return null;
  const county = document.getElementById("county").value;
  const town = document.getElementById("township").value;
  return discrepancies.filter((d) => (cls === "any" || d.class === cls) &&
    (!county || d.county === county) && (!town || d.township === town));
}

function discrepancyCodes() {
  const rows = discrepancyRows();
  return rows ? [...new Set(rows.map((d) => String(d.village_code)))] : null;
}

const LIST_MAX = 200;

function discrepancyList() {
  const ul = document.getElementById("discrepancy-list");
  const rows = discrepancyRows();
  ul.hidden = !rows;
  if (!rows) { ul.replaceChildren(); return; }
  const ind = Object.fromEntries(config.indicators.map((i) => [i.key, i]));
  const by = new Map();
  rows.forEach((d) => { if (!by.has(d.village_code)) by.set(d.village_code, []); by.get(d.village_code).push(d); });
  const items = [...by.entries()].slice(0, LIST_MAX).map(([code, ds]) => {
    const li = h("li", { dataset: { code } }, h("b", {}, ds[0].name || code), ` ${code} · `,
      ds.map((d) => `${ind[d.indicator] ? label(ind[d.indicator]) : d.indicator}: ${t(d.class)}`).join("; "));
    li.onclick = () => flyTo(code);
    return li;
  });
  if (by.size > LIST_MAX) items.push(h("li", { class: "muted" }, `${t("more")} ${by.size - LIST_MAX} ${t("villages_n")}`));
  ul.replaceChildren(...items);
}

async function flyTo(code) {
  const r = await fetch(`map/villages/${encodeURIComponent(code)}`);
  if (!r.ok) return;
  const v = (await r.json()).village;
  const c = [v.ref_lon, v.ref_lat];
  map.flyTo({ center: c, zoom: 14 });
  popup(v.code, c);
}

async function loadRegressions() {
  const body = await getJson("progress/regressions?f=json");
  regressed = body ? body.regressions.filter((r) => r.run_b === config.run_id) : [];
  if (!regressed.length) return;
  const base = map.getStyle().layers.find((l) => l.id === "villages");
  map.addLayer({ id: "regressions", type: "circle", source: base.source, "source-layer": base["source-layer"],
                 filter: ["in", ["to-string", ["get", "code"]], ["literal", []]],
                 paint: { "circle-radius": 9, "circle-color": "rgba(0,0,0,0)",
                          "circle-stroke-color": REGRESSION_COLOUR, "circle-stroke-width": 2.5 } });
  config.layers.push("regressions");
  config.style_layers.regressions = ["regressions"];
  toggles();
  legend();
  placeFilter();
}

/* ---- Progress over the runs of the project (/progress), drawn as an SVG with DOM calls. */
const CHART_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                       "#7f7f7f", "#bcbd22", "#17becf"];
const SVG = "http://www.w3.org/2000/svg";
let progressData = null;

function s(tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== null) el.textContent = text;
  return el;
}

async function loadProgress() {
  progressData = await getJson("progress?by=county&f=json");
  document.getElementById("chart-open").hidden = !progressData || progressData.runs.length < 2;
  document.getElementById("chart-open").onclick = () => {
    const panel = document.getElementById("chart-panel");
    panel.hidden = !panel.hidden;
    if (!panel.hidden) drawChart();
  };
  document.getElementById("chart-close").onclick = () => { document.getElementById("chart-panel").hidden = true; };
}

/* per indicator, one point per run: met / assessed over the counties chosen (all, or one) */
function chartSeries() {
  const county = document.getElementById("county").value;
  const order = new Map(progressData.runs.map((r, i) => [r, i]));
  const out = new Map();
  progressData.series.filter((x) => !county || x.county === county).forEach((x) => {
    if (!out.has(x.indicator)) out.set(x.indicator, new Map());
    const runs = out.get(x.indicator);
    const p = runs.get(x.run_id) || { run: x.run_id, date: x.date, met: 0, assessed: 0 };
    p.met += x.met; p.assessed += x.assessed; p.target = x.target; p.deadline = x.deadline;
    runs.set(x.run_id, p);
  });
  return [...out.entries()].map(([key, runs]) => ({
    key, points: [...runs.values()].filter((p) => p.assessed > 0)
      .map((p) => ({ ...p, rate: p.met / p.assessed })).sort((a, b) => order.get(a.run) - order.get(b.run)),
  }));
}

function drawChart() {
  if (!progressData) return;
  const W = 620, H = 320, L = 52, R = 16, T = 14, B = 58;
  const day = (d) => Date.parse(`${d}T00:00:00Z`);
  const lines = chartSeries();
  const ind = Object.fromEntries(config.indicators.map((i) => [i.key, i]));
  const dates = lines.flatMap((l) => l.points.map((p) => day(p.date)));
  const deadlines = lines.map((l) => l.points.length && l.points[l.points.length - 1].deadline)
    .filter((d) => d && !Number.isNaN(day(d))).map(day);
  let x0 = Math.min(...dates), x1 = Math.max(...dates, ...deadlines);
  if (!(x1 > x0)) { x0 -= 86400e3; x1 += 86400e3; }
  const X = (v) => L + ((v - x0) / (x1 - x0)) * (W - L - R);
  const Y = (r) => T + (1 - r / 1.05) * (H - T - B);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img" });
  svg.append(s("title", {}, t("chart_title")));
  for (let r = 0; r <= 1.0001; r += 0.2) {
    svg.append(s("line", { x1: L, x2: W - R, y1: Y(r), y2: Y(r), class: "grid" }),
      s("text", { x: L - 6, y: Y(r) + 4, "text-anchor": "end", class: "tick" }, String(Math.round(r * 100))));
  }
  const ticks = [...new Set(dates)].sort((a, b) => a - b);
  const step = Math.ceil(ticks.length / 6);
  ticks.filter((_, i) => i % step === 0).forEach((v) => {
    const d = new Date(v).toISOString().slice(0, 10);
    svg.append(s("text", { x: X(v), y: H - B + 16, "text-anchor": "middle", class: "tick" }, d));
  });
  svg.append(s("line", { x1: L, x2: W - R, y1: Y(0), y2: Y(0), class: "axis" }),
    s("line", { x1: L, x2: L, y1: T, y2: Y(0), class: "axis" }),
    s("text", { x: (L + W - R) / 2, y: H - 18, "text-anchor": "middle", class: "axis-label" }, t("axis_x")),
    s("text", { x: 14, y: (T + Y(0)) / 2, "text-anchor": "middle", class: "axis-label",
                transform: `rotate(-90 14 ${(T + Y(0)) / 2})` }, t("axis_y")));
  const key = [];
  lines.forEach((l, i) => {
    const c = CHART_COLOURS[i % CHART_COLOURS.length];
    const name = ind[l.key] ? label(ind[l.key]) : l.key;
    const last = l.points[l.points.length - 1];
    if (!last) return;
    const g = s("g", { class: "series", "data-indicator": l.key });
    if (last.target !== null && last.target !== undefined) {
      g.append(s("line", { x1: L, x2: W - R, y1: Y(last.target), y2: Y(last.target), stroke: c,
                           "stroke-dasharray": "6 3", class: "target" }));
    }
    if (last.deadline && !Number.isNaN(day(last.deadline))) {
      g.append(s("line", { x1: X(day(last.deadline)), x2: X(day(last.deadline)), y1: T, y2: Y(0), stroke: c,
                           "stroke-dasharray": "2 3", class: "deadline" }));
    }
    g.append(s("polyline", { points: l.points.map((p) => `${X(day(p.date))},${Y(p.rate)}`).join(" "),
                             stroke: c, fill: "none", "stroke-width": 2 }));
    l.points.forEach((p) => {
      const pt = s("circle", { cx: X(day(p.date)), cy: Y(p.rate), r: 4, fill: c, class: "chart-point",
                               "data-run": p.run, "data-indicator": l.key, "data-rate": p.rate });
      pt.append(s("title", {}, `${name} · ${p.date} · ${(p.rate * 100).toFixed(1)}%`));
      g.append(pt);
    });
    svg.append(g);
    key.push(h("div", { class: "legend-row" }, h("span", { class: "line-swatch", style: { background: c } }), name));
  });
  key.push(h("div", { class: "muted" }, t("chart_key")));
  document.getElementById("chart").replaceChildren(svg, h("div", { class: "chart-key" }, key));
  paceTable(ind);
}

/* the pace of one county (the chosen one, or the only one) per indicator */
function paceTable(ind) {
  const county = document.getElementById("county").value || (Object.keys(config.places).length === 1 ? Object.keys(config.places)[0] : "");
  const rows = progressData.pace.filter((p) => county && p.county === county);
  const tr = (cells, tag = "td") => h("tr", {}, cells.map((c) => h(tag, {}, c)));
  const pct = (v) => (v === null || v === undefined ? "–" : `${(v * 100).toFixed(1)}%`);
  document.getElementById("chart-pace").replaceChildren(...(rows.length ? [
    h("caption", {}, county),
    tr([t("indicator"), t("last_rate"), t("target"), t("deadline"), t("reached_on")], "th"),
    ...rows.map((p) => tr([ind[p.indicator] ? label(ind[p.indicator]) : p.indicator, pct(p.last_rate),
                           pct(p.target), p.deadline || "–", p.reached_on || t("not_at_pace")])),
  ] : []));
}

map.on("load", async () => {
  config = await (await fetch("map/config.json")).json();
  window.buqueConfig = config;
  window.buqueMap = map;
  gapColour = map.getPaintProperty("villages", "circle-color");
  applyI18n();
  colourVillages();
  if (config.bounds) map.fitBounds(config.bounds, { padding: 30, duration: 0 });
  document.getElementById("colour").onchange = colourVillages;
  document.getElementById("search").onsubmit = search;
  map.on("click", "villages", (e) => { if (!onPlanWork(e.point)) popup(e.features[0].properties.code, e.lngLat); });
  map.on("mouseenter", "villages", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "villages", () => { map.getCanvas().style.cursor = ""; });
  map.on("moveend", drawLabels);
  map.once("idle", drawLabels);
  await Promise.all([initPlans(), loadDiscrepancies(), loadRegressions(), loadProgress()]);
  window.buqueReady = true;
});
document.getElementById("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("buque-lang", lang); applyI18n(); };
applyI18n();
