// Parsing of Prometheus text exposition for tests: series are keyed by name and
// sorted labels so expected lines match regardless of label order.

export interface ParsedSeries {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/g;

export function parseSeriesLine(line: string): ParsedSeries {
  const m = LINE.exec(line.trim());
  if (!m) throw new Error(`not a sample line: ${line}`);
  const labels: Record<string, string> = {};
  for (const l of (m[2] ?? "").matchAll(LABEL)) {
    labels[l[1]] = l[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
  }
  const v = m[3];
  const value = v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v);
  return { name: m[1], labels, value };
}

export function seriesKey(s: { name: string; labels: Record<string, string> }): string {
  const keys = Object.keys(s.labels).sort();
  return `${s.name}{${keys.map((k) => `${k}=${JSON.stringify(s.labels[k])}`).join(",")}}`;
}

/** All samples of an exposition, by series key. */
export function parseExposition(text: string): Map<string, ParsedSeries> {
  const out = new Map<string, ParsedSeries>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const s = parseSeriesLine(line);
    out.set(seriesKey(s), s);
  }
  return out;
}

/** Expected-metrics file lines: non-empty, non-comment. */
export function readExpected(text: string): ParsedSeries[] {
  return text.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#")).map(parseSeriesLine);
}

export function sameNumber(a: number, b: number): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  return a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));
}

/** Problems found comparing expected samples with a scrape; empty when all match. */
export function compareExpected(expected: ParsedSeries[], got: Map<string, ParsedSeries>): string[] {
  const problems: string[] = [];
  for (const e of expected) {
    const key = seriesKey(e);
    const g = got.get(key);
    if (!g) problems.push(`missing ${key}`);
    else if (!sameNumber(g.value, e.value)) problems.push(`${key}: expected ${e.value}, got ${g.value}`);
  }
  return problems;
}
