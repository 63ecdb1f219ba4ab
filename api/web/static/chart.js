// SVG charts drawn here, in a few lines each: a stacked bar histogram, a line chart of series, and
// a ranked bar list. No library: the page must load offline and fast.
import { el } from "./api.js";

const NS = "http://www.w3.org/2000/svg";
export const LEVEL_COLORS = { TRACE: "#9ca3af", DEBUG: "#6b7280", INFO: "#22c55e", WARN: "#f59e0b", ERROR: "#ef4444", FATAL: "#7f1d1d" };
const PALETTE = ["#2357d9", "#ef4444", "#22c55e", "#f59e0b", "#8b5cf6", "#06b6d4", "#db2777", "#65a30d", "#ea580c", "#475569"];

function svg(tag, attrs) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function colorOf(label, i) {
  return LEVEL_COLORS[label] || PALETTE[i % PALETTE.length];
}

// The search histogram: buckets [{start, levels: {LEVEL: n}}], stacked by level.
export function histogram(target, buckets) {
  const n = buckets.length, max = Math.max(1, ...buckets.map((b) => b.total));
  target.setAttribute("viewBox", `0 0 ${Math.max(n, 1)} 100`);
  target.setAttribute("preserveAspectRatio", "none");
  target.replaceChildren();
  buckets.forEach((b, i) => {
    let y = 100;
    for (const lv of ["FATAL", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"]) {
      const c = b.levels[lv] || 0;
      if (!c) continue;
      const h = (c / max) * 100;
      y -= h;
      const r = svg("rect", { x: i + 0.1, y, width: 0.8, height: h, fill: LEVEL_COLORS[lv] });
      r.append(Object.assign(document.createElementNS(NS, "title"), { textContent: `${b.start} ${lv}: ${c}` }));
      target.append(r);
    }
  });
}

function fmt(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
  return Number.isInteger(v) ? String(v) : v.toFixed(2);
}

function timeLabel(sec, span) {
  const d = new Date(sec * 1000);
  return span > 2 * 86400 ? d.toISOString().slice(5, 10) : d.toISOString().slice(11, 16);
}

// Series [{label, points: [[unix_s, value], ...], title?}] as lines over [from_s, to_s], with axes
// and a legend (a series' title shows on hovering its name); `unit` is appended to the y labels.
export function lines(series, from_s, to_s, { unit = "" } = {}) {
  const W = 600, H = 150, L = 42, B = 18, T = 6;
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img" });
  const max = Math.max(1e-9, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const x = (t) => L + ((t - from_s) / Math.max(1, to_s - from_s)) * (W - L - 4);
  const y = (v) => T + (1 - v / max) * (H - T - B);
  root.append(svg("line", { x1: L, x2: W - 4, y1: H - B, y2: H - B, stroke: "#c4cad3" }));
  for (const v of [0, max / 2, max]) {
    const t = svg("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end", "font-size": 10, fill: "#5b6472" });
    t.textContent = fmt(v) + unit;
    root.append(t);
  }
  for (const t of [from_s, (from_s + to_s) / 2, to_s]) {
    const lbl = svg("text", { x: x(t), y: H - 4, "text-anchor": t === from_s ? "start" : t === to_s ? "end" : "middle", "font-size": 10, fill: "#5b6472" });
    lbl.textContent = timeLabel(t, to_s - from_s);
    root.append(lbl);
  }
  series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    if (!pts.length) return;
    const d = pts.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    const path = svg("path", { d, fill: "none", stroke: colorOf(s.label, i), "stroke-width": 1.8 });
    path.append(Object.assign(document.createElementNS(NS, "title"), { textContent: s.title || s.label }));
    root.append(path);
    if (pts.length === 1) root.append(svg("circle", { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 3, fill: colorOf(s.label, i) }));
  });
  // said to a screen reader: a count's total over the range, a rate's latest value
  const said = (s) => unit ? `latest ${fmt(s.points.at(-1)?.[1] ?? 0)}${unit}` : `${fmt(s.points.reduce((a, p) => a + p[1], 0))} in all`;
  root.setAttribute("aria-label", series.map((s) => `${s.label}: ${said(s)}`).join(", ") || "no data");
  const legend = el("div", { class: "legend" },
    series.map((s, i) => el("span", { title: s.title || s.label }, el("i", { style: `background:${colorOf(s.label, i)}` }), s.label)));
  return el("div", {}, root, legend);
}

// A ranked list [{value, count, title?}] as horizontal bars; the title shows on hovering a name.
export function bars(items) {
  const max = Math.max(1, ...items.map((i) => i.count));
  return el("ul", { class: "bars" }, items.map((i) =>
    el("li", {},
      el("span", { class: "name", title: i.title || i.value, text: i.value || "(none)" }),
      el("span", { class: "bar", style: `width:${((i.count / max) * 100).toFixed(1)}%` }),
      el("span", { class: "n", text: fmt(i.count) }))));
}
