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
        export_failed: "导出失败", basemap: "底图" },
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
        queued: "queued", position: "position", ready: "ready, downloading", export_failed: "export failed", basemap: "Basemap" },
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
  if (config) { fillIndicators(); fillPlaces(); legend(); runLine(); toggles(); listLinks(); planPanel(); }
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

function placeFilter() {
  const county = document.getElementById("county").value;
  const town = document.getElementById("township").value;
  const f = ["all"];
  if (county) f.push(["==", ["get", "county"], county]);
  if (town) f.push(["==", ["get", "township"], town]);
  map.setFilter("villages", f.length > 1 ? f : null);
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
    h("table", {}, tr([t("remedy"), t("quantity"), t("cost")], "th"), rem));
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
    li.onclick = async () => {
      const r2 = await fetch(`map/villages/${encodeURIComponent(p.code || f.id)}`);
      if (!r2.ok) return;
      const v = (await r2.json()).village;
      const c = [v.ref_lon, v.ref_lat];
      map.flyTo({ center: c, zoom: 14 });
      popup(v.code, c);
    };
    ul.appendChild(li);
  });
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
  await initPlans();
  window.buqueReady = true;
});
document.getElementById("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; localStorage.setItem("buque-lang", lang); applyI18n(); };
applyI18n();
