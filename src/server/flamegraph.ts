// GET /v1/flamegraph/{tracer_id}: the flame graph of one AutoTracing
// document in the local store (its tracer_data.flamedata), as an SVG image
// (default), collapsed stacks (?format=folded, for flamegraph.pl or inferno)
// or a speedscope file (?format=speedscope). Read-only, open to any peer like
// GET /metrics. The store finds the document through its index
// (src/storage/localfile.ts); rendering is src/profile/.
//
// Errors are JSON: 400 for a bad query, 404 for an unknown id or a document
// without flamedata, 422 when the stored flamedata is malformed or too large
// to render in the format asked for.

import type { EventDocument } from "../core/document.ts";
import { VERSION } from "../core/version.ts";
import {
  FlameDataError,
  type FlameNode,
  flameTree,
  foldedFromTree,
  TooLargeError,
} from "../profile/flamegraph.ts";
import { flameSvg } from "../profile/flamegraph_svg.ts";
import { speedscopeFromTree } from "../profile/speedscope.ts";
import { jsonResponse } from "./json.ts";

/** Where stored documents are looked up by tracer_id (LocalFileStore). */
export interface DocumentFinder {
  find(tracerId: string): Promise<EventDocument | undefined>;
}

export const FLAMEGRAPH_PATH = /^\/v1\/flamegraph\/([A-Za-z0-9_.-]{1,128})$/;

export const FORMATS = ["svg", "folded", "speedscope"] as const;
export type FlameFormat = typeof FORMATS[number];

/** The format asked for, or the 400's message. */
export function parseFlamegraphQuery(params: URLSearchParams): { format: FlameFormat } | { error: string } {
  let format: FlameFormat = "svg";
  const seen = new Set<string>();
  for (const [key, value] of params) {
    if (key !== "format") return { error: `unknown query parameter "${key}" (accepted: format)` };
    if (seen.has(key)) return { error: `query parameter "${key}" given twice` };
    seen.add(key);
    if (!(FORMATS as readonly string[]).includes(value)) {
      return { error: `format must be one of ${FORMATS.join(", ")}, got ${JSON.stringify(value)}` };
    }
    format = value as FlameFormat;
  }
  return { format };
}

const encoder = new TextEncoder();

function body(status: number, text: string, headers: Record<string, string>): Response {
  const bytes = encoder.encode(text);
  return new Response(bytes, {
    status,
    headers: { ...headers, "content-length": String(bytes.length), "x-content-type-options": "nosniff" },
  });
}

/** A file name for content-disposition: the tracer and the id, nothing a header could trip on. */
function fileName(doc: EventDocument, ext: string): string {
  return `${doc.tracer_name}-${doc.tracer_id}`.replace(/[^A-Za-z0-9_.-]/g, "_") + ext;
}

/** One line under the SVG's heading: which capture this is. */
function subtitle(doc: EventDocument): string {
  return [
    `tracer_id ${doc.tracer_id}`,
    doc.hostname,
    doc.container_hostname ? `container ${doc.container_hostname}` : "",
  ].filter((s) => typeof s === "string" && s !== "").join(" · ");
}

/** The rendering of a document's flame tree in `format`. Throws TooLargeError. */
export function renderFlamegraph(doc: EventDocument, tree: FlameNode, format: FlameFormat): Response {
  switch (format) {
    case "svg":
      return body(
        200,
        flameSvg(tree, { title: `${doc.tracer_name} ${doc.tracer_time}`, subtitle: subtitle(doc) }),
        {
          "content-type": "image/svg+xml; charset=utf-8",
          "content-disposition": `inline; filename="${fileName(doc, ".svg")}"`,
          // The image has no script and fetches nothing; should a label ever slip through, it cannot run.
          "content-security-policy": "default-src 'none'; sandbox",
        },
      );
    case "folded":
      return body(200, foldedFromTree(tree), {
        "content-type": "text/plain; charset=utf-8",
        "content-disposition": `inline; filename="${fileName(doc, ".folded")}"`,
      });
    case "speedscope": {
      const name = `${doc.tracer_name} ${doc.tracer_time} ${doc.tracer_id}`;
      const file = speedscopeFromTree(tree, { name, exporter: `huatuo-bamai ${VERSION}` });
      return body(200, JSON.stringify(file), {
        "content-type": "application/json; charset=utf-8",
        "content-disposition": `inline; filename="${fileName(doc, ".speedscope.json")}"`,
      });
    }
  }
}

/** Answers GET/HEAD /v1/flamegraph/{tracer_id}; undefined for any other path. */
export async function flamegraphRoute(
  req: Request,
  path: string,
  docs: DocumentFinder | undefined,
): Promise<Response | undefined> {
  const m = FLAMEGRAPH_PATH.exec(path);
  if (!m) return undefined;
  if (req.method !== "GET" && req.method !== "HEAD") {
    const res = jsonResponse(405, { error: "method not allowed", method: req.method, allow: "GET" });
    res.headers.set("allow", "GET");
    return res;
  }
  const q = parseFlamegraphQuery(new URL(req.url).searchParams);
  if ("error" in q) return jsonResponse(400, { error: q.error });
  const id = m[1];
  const doc = await docs?.find(id);
  if (!doc) {
    return jsonResponse(404, { error: `no AutoTracing document with tracer_id "${id}" in the local store` });
  }
  const flamedata = (doc.tracer_data as Record<string, unknown> | undefined)?.flamedata;
  if (!Array.isArray(flamedata)) {
    return jsonResponse(404, {
      error: `document "${id}" (tracer ${doc.tracer_name}) has no tracer_data.flamedata`,
      tracer_name: doc.tracer_name,
    });
  }
  try {
    return renderFlamegraph(doc, flameTree(flamedata), q.format);
  } catch (err) {
    if (err instanceof FlameDataError) {
      return jsonResponse(422, { error: `document "${id}" has malformed flamedata: ${err.message}` });
    }
    if (err instanceof TooLargeError) {
      return jsonResponse(422, { error: `document "${id}": ${err.message}`, format: q.format });
    }
    throw err;
  }
}
