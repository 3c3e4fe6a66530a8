// Prometheus text exposition format 0.0.4. Families are sorted by name and
// series by their label set, as the Go client does, so output is stable for
// golden files and diffs.

import type { Labels, MetricType } from "../core/sample.ts";

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export interface Series {
  readonly labels: Labels;
  readonly value: number;
}

export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly series: Series[];
}

export function renderFamilies(families: Iterable<Family>): string {
  const sorted = [...families].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const f of sorted) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}\n`);
    const lines = f.series.map((s) => `${f.name}${renderLabels(s.labels)} ${formatValue(s.value)}\n`);
    lines.sort();
    for (const l of lines) out.push(l);
  }
  return out.join("");
}

// Rendered label sets by object: label objects reused across scrapes (the
// registry's merged container labels) are sorted and escaped once.
const rendered = new WeakMap<Labels, string>();

export function renderLabels(labels: Labels): string {
  let s = rendered.get(labels);
  if (s === undefined) {
    s = renderLabelsUncached(labels);
    rendered.set(labels, s);
  }
  return s;
}

function renderLabelsUncached(labels: Labels): string {
  const keys = Object.keys(labels);
  if (keys.length === 0) return "";
  keys.sort();
  let s = "{";
  for (let i = 0; i < keys.length; i++) {
    if (i > 0) s += ",";
    s += `${keys[i]}="${escapeLabelValue(labels[keys[i]])}"`;
  }
  return s + "}";
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function escapeLabelValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") : v;
}

function escapeHelp(v: string): string {
  return /[\\\n]/.test(v) ? v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n") : v;
}
