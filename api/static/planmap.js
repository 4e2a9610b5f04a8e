/* Buque gap map: a plan's works (buque plan) as a vector tile layer, coloured by phase; a click
   on a work lists the villages it serves. Loaded after map.js and uses its helpers (h, t, fmt,
   map); the DOM is built with textContent only. */
"use strict";

Object.assign(I18N.zh, { plan: "规划项目", plan_none: "未安排资金", phase: "期次",
  served: "受益村", work: "项目", action: "类型", build: "新建", upgrade: "改造",
  extend: "延伸", length: "长度 (km)" });
Object.assign(I18N.en, { plan: "Planned works", plan_none: "unfunded", phase: "Phase",
  served: "Villages served", work: "Work", action: "Action", build: "build", upgrade: "upgrade",
  extend: "extend", length: "Length (km)" });

const PHASE_COLOURS = ["#1f78b4", "#33a02c", "#ff7f00", "#6a3d9a", "#e31a1c", "#b15928", "#01665e"];
const UNFUNDED = "#9e9e9e";
const PLAN_LAYERS = ["plan-lines", "plan-sites"];
let plans = [];      /* [{name, plan_id, budgets}] from /plans */
let planOn = null;   /* the plan drawn, or null */

function phaseColours(plan) {
  return (plan.budgets || []).map((b, i) => [String(b.phase), PHASE_COLOURS[i % PHASE_COLOURS.length]]);
}

function phaseExpr(plan) {
  const pairs = phaseColours(plan).flat();
  return pairs.length ? ["match", ["get", "phase"], ...pairs, UNFUNDED] : UNFUNDED;
}

function removePlan() {
  PLAN_LAYERS.forEach((id) => { if (map.getLayer(id)) map.removeLayer(id); });
  if (map.getSource("plan-works")) map.removeSource("plan-works");
  planOn = null;
}

function showPlan(plan) {
  removePlan();
  const base = new URL("plans/", location.href).href;
  map.addSource("plan-works", { type: "vector", maxzoom: 16,
    tiles: [`${base}${encodeURIComponent(plan.name)}/tiles/{z}/{x}/{y}.mvt`] });
  const colour = phaseExpr(plan);
  map.addLayer({ id: "plan-lines", type: "line", source: "plan-works", "source-layer": "works",
    filter: ["==", ["geometry-type"], "LineString"],
    paint: { "line-color": colour, "line-width": ["interpolate", ["linear"], ["zoom"], 8, 2, 14, 5],
             "line-opacity": ["case", ["get", "funded"], 0.95, 0.6] } });
  map.addLayer({ id: "plan-sites", type: "circle", source: "plan-works", "source-layer": "works",
    filter: ["==", ["geometry-type"], "Point"],
    paint: { "circle-color": colour, "circle-radius": 6, "circle-stroke-color": "#000",
             "circle-stroke-width": 1.5 } });
  planOn = plan;
}

function planLegend() {
  const box = document.getElementById("plan-legend");
  if (!box) return;
  if (!planOn) { box.replaceChildren(); return; }
  const row = (c, text) => h("div", { class: "legend-row" },
    h("span", { class: "line-swatch", style: { background: c, height: "5px" } }), text);
  box.replaceChildren(...phaseColours(planOn).map(([p, c]) => row(c, `${t("phase")} ${p}`)),
    row(UNFUNDED, t("plan_none")));
}

function planPanel() {
  const box = document.getElementById("plan-box");
  if (!box || !plans.length) return;
  const sel = h("select", { id: "plan-select" },
    plans.map((p) => h("option", { value: p.name }, p.name)));
  const check = h("input", { type: "checkbox", id: "plan-toggle", checked: planOn !== null });
  if (planOn) sel.value = planOn.name;
  const apply = () => {
    if (check.checked) showPlan(plans.find((p) => p.name === sel.value));
    else removePlan();
    planLegend();
  };
  check.onchange = apply;
  sel.onchange = () => { if (check.checked) apply(); };
  box.replaceChildren(h("legend", {}, t("plan")),
    h("label", { class: "plan-toggle" }, check, " ", t("plan")), sel,
    h("div", { id: "plan-legend" }));
  box.hidden = false;
  planLegend();
}

async function workPopup(workId, lngLat) {
  const r = await fetch(`plans/${encodeURIComponent(planOn.name)}/works/${encodeURIComponent(workId)}`);
  if (!r.ok) return;
  const w = await r.json();
  const tr = (cells, tag = "td") => h("tr", {}, cells.map((c) => h(tag, {}, c)));
  const served = w.served.map((v) => tr([v.name || "", v.village_code, v.indicator]));
  const box = h("div", { class: "popup work-popup" },
    h("b", {}, w.item), " ", h("span", { class: "muted" }, w.work_id), h("br"),
    `${t("action")}: ${t(w.action)} · ${t("phase")}: ${w.phase ?? t("plan_none")} · ` +
      `${t("cost")}: ${fmt(w.cost)}` + (w.line_m ? ` · ${t("length")}: ${fmt(w.line_m / 1000, 2)}` : ""),
    h("table", {}, tr([t("served"), "", t("indicator")], "th"), served));
  if (openPopup) openPopup.remove();
  openPopup = new maplibregl.Popup({ maxWidth: "360px" }).setLngLat(lngLat).setDOMContent(box).addTo(map);
}

/* a click on a drawn work (the village popup then stays closed: see onPlanWork) */
function onPlanWork(point) {
  if (!planOn) return null;
  const f = map.queryRenderedFeatures(point, { layers: PLAN_LAYERS.filter((id) => map.getLayer(id)) });
  return f.length ? f[0] : null;
}

async function initPlans() {
  try {
    const r = await fetch("plans");
    plans = r.ok ? (await r.json()).plans : [];
  } catch (e) {
    plans = [];
  }
  window.buquePlans = plans;
  planPanel();
  map.on("click", (e) => {
    const f = onPlanWork(e.point);
    if (f) workPopup(f.properties.work_id, e.lngLat);
  });
}
