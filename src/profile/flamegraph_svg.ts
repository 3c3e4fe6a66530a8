// A flame graph as one self-contained SVG document: no script, no stylesheet,
// no font or anything else fetched, so it opens from a file, a browser tab or
// an <img>. Classic orientation (root at the bottom, callees above); each
// frame is a <g> with a <title>, which browsers show on hover; its text is
// the label cut to the frame's width; its colour comes from a hash of the
// label, so a function has the same colour in every graph.
//
// Bounded: frames narrower than minFrameWidthPx (0.1 px) are not drawn, nor
// anything above them, and at most maxFrames frames are; what was left out is
// said in a note under the graph. Pure: a tree in, a string out.

import type { FlameNode } from "./flamegraph.ts";

export interface SvgOptions {
  /** The heading, and the document's <title>. */
  title?: string;
  /** A second line under the heading (e.g. tracer, time, container). */
  subtitle?: string;
  /** Image width in px (1200). */
  width?: number;
  /** Frames narrower than this many px are not drawn (0.1). */
  minFrameWidthPx?: number;
  /** At most this many frames are drawn, the widest first (20000). */
  maxFrames?: number;
}

const FRAME_HEIGHT = 16;
const FONT_SIZE = 12;
/** Advance of one character of a 12 px monospace font; text is cut to fit with it. */
const CHAR_WIDTH = FONT_SIZE * 0.6;
const PAD = 10;
const HEADER = 52;
const FOOTER = 28;

/** Characters XML 1.0 cannot carry at all (C0 controls but tab/LF/CR, lone surrogates, U+FFFE/F). */
const XML_INVALID =
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Text safe in XML character data and attribute values. */
export function xmlEscape(s: string): string {
  return s.replace(XML_INVALID, "\ufffd").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** 32-bit FNV-1a of the label's UTF-16 code units: stable across runs and hosts. */
export function labelHash(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** flamegraph.pl's "hot" palette, picked by the label's hash: reds, oranges, yellows. */
export function frameColor(label: string): string {
  const h = labelHash(label);
  const v1 = (h & 0xff) / 255;
  const v2 = ((h >>> 8) & 0xff) / 255;
  const v3 = ((h >>> 16) & 0xff) / 255;
  const r = 205 + Math.round(50 * v3);
  const g = Math.round(230 * v1);
  const b = Math.round(55 * v2);
  return `rgb(${r},${g},${b})`;
}

/** The label cut to `px` of width ("name.." when it does not fit); "" when not even 3 characters fit. */
export function fitText(label: string, px: number): string {
  const room = Math.floor((px - 6) / CHAR_WIDTH);
  if (room < 3) return "";
  // Code points, never a half of a surrogate pair; at most room + 1 of them are looked at.
  const chars: string[] = [];
  for (const ch of label) {
    if (chars.push(ch) > room) break;
  }
  return chars.length <= room ? label : chars.slice(0, room - 2).join("") + "..";
}

/** Labels in hover titles are cut here: a drawing holds up to maxFrames of them. */
const MAX_TITLE_CHARS = 1000;

function clip(label: string): string {
  return label.length <= MAX_TITLE_CHARS ? label : Array.from(label).slice(0, MAX_TITLE_CHARS).join("") + "…";
}

function num(n: number): string {
  return String(Math.round(n * 100) / 100);
}

function percent(part: number, whole: number): string {
  return whole > 0 ? `${(100 * part / whole).toFixed(2)}%` : "0%";
}

function plural(n: number, one: string, many = one + "s"): string {
  return `${n.toLocaleString("en-US")} ${n === 1 ? one : many}`;
}

interface Placed {
  node: FlameNode;
  level: number;
  /** Left edge and width, in samples. */
  x: number;
  w: number;
  /** Index of the parent in Layout.frames (-1 for the root). */
  parent: number;
}

export interface Layout {
  frames: Placed[];
  /** Frames left out (each with whatever is above it), and their samples. */
  droppedFrames: number;
  droppedSamples: number;
  maxLevel: number;
}

/**
 * Where each frame goes, in samples: a frame's children sit side by side from
 * its left edge in their order, its self samples are the gap at the right.
 * Children are never wider than their parent (flameTree settles values), so
 * dropping a narrow frame drops only narrower ones with it.
 */
export function layout(root: FlameNode, pxPerSample: number, minPx: number, maxFrames: number): Layout {
  let frames: Placed[] = [];
  let droppedFrames = 0;
  let droppedSamples = 0;
  const todo: Placed[] = [{ node: root, level: 0, x: 0, w: root.value, parent: -1 }];
  while (todo.length > 0) {
    const p = todo.pop()!;
    if (p.w * pxPerSample < minPx) {
      droppedFrames++;
      droppedSamples += p.w;
      continue;
    }
    const index = frames.push(p) - 1;
    let x = p.x;
    for (const c of p.node.children) {
      todo.push({ node: c, level: p.level + 1, x, w: c.value, parent: index });
      x += c.value;
    }
  }
  if (frames.length > maxFrames) {
    // Keep the widest: the root and the frames strictly wider than the (maxFrames+1)-th widest whose
    // parent is kept (a parent is at least as wide as its child, so that is nearly all of them).
    const cut = frames.map((f) => f.w).sort((a, b) => b - a)[Math.max(1, maxFrames)];
    const newIndex = frames.map(() => -1);
    const kept: Placed[] = [];
    frames.forEach((f, i) => {
      if (f.parent < 0 || (f.w > cut && newIndex[f.parent] >= 0)) {
        newIndex[i] = kept.push({ ...f, parent: f.parent < 0 ? -1 : newIndex[f.parent] }) - 1;
      } else if (newIndex[f.parent] >= 0) {
        // The lowest frame of a dropped branch: counted once, with its samples.
        droppedFrames++;
        droppedSamples += f.w;
      }
    });
    frames = kept;
  }
  const maxLevel = frames.reduce((m, f) => Math.max(m, f.level), 0);
  return { frames, droppedFrames, droppedSamples, maxLevel };
}

/** The flame graph of a tree as an SVG document. */
export function flameSvg(root: FlameNode, opts: SvgOptions = {}): string {
  const width = opts.width ?? 1200;
  const minPx = opts.minFrameWidthPx ?? 0.1;
  const maxFrames = opts.maxFrames ?? 20000;
  const title = opts.title ?? "Flame Graph";
  const total = root.value;
  const inner = width - 2 * PAD;
  const scale = total > 0 ? inner / total : 0;
  const lay = total > 0 ? layout(root, scale, minPx, maxFrames) : undefined;
  const levels = lay ? lay.maxLevel + 1 : 1;
  const height = HEADER + levels * FRAME_HEIGHT + FOOTER;
  const out: string[] = [];
  out.push(
    `<?xml version="1.0" encoding="UTF-8" standalone="no"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${width}" height="${height}" ` +
      `viewBox="0 0 ${width} ${height}" font-family="monospace" font-size="${FONT_SIZE}">`,
    `<title>${xmlEscape(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="16" fill="#000000">${
      xmlEscape(title)
    }</text>`,
  );
  const legend = [plural(total, "sample"), lay ? plural(lay.frames.length, "frame") : "", opts.subtitle ?? ""]
    .filter((s) => s !== "").join(" · ");
  out.push(`<text x="${width / 2}" y="38" text-anchor="middle" fill="#555555">${xmlEscape(legend)}</text>`);
  if (!lay) {
    out.push(
      `<text x="${width / 2}" y="${HEADER + 12}" text-anchor="middle" fill="#555555">no samples</text>`,
    );
  } else {
    for (const f of lay.frames) {
      const x = PAD + f.x * scale;
      const y = HEADER + (lay.maxLevel - f.level) * FRAME_HEIGHT;
      const w = f.w * scale;
      const tip =
        `${clip(f.node.label)} (${plural(f.node.value, "sample")}, ${percent(f.node.value, total)}` +
        (f.node.self > 0 ? `; self ${plural(f.node.self, "sample")}` : "") + ")";
      const text = fitText(f.node.label, w);
      out.push(
        `<g><title>${xmlEscape(tip)}</title>` +
          `<rect x="${num(x)}" y="${y}" width="${num(w)}" height="${FRAME_HEIGHT - 1}" rx="2" ` +
          `fill="${frameColor(f.node.label)}"/>` +
          (text ? `<text x="${num(x + 3)}" y="${y + FRAME_HEIGHT - 4}">${xmlEscape(text)}</text>` : "") +
          `</g>`,
      );
    }
    if (lay.droppedFrames > 0) {
      const note = `${plural(lay.droppedFrames, "frame")} narrower than ${minPx} px or past ${maxFrames} ` +
        `frames not drawn, with what is above them (${plural(lay.droppedSamples, "sample")}, ` +
        `${percent(lay.droppedSamples, total)})`;
      out.push(`<text x="${PAD}" y="${height - 10}" fill="#555555">${xmlEscape(note)}</text>`);
    }
  }
  out.push("</svg>");
  return out.join("\n") + "\n";
}
