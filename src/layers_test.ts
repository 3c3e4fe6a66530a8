// The house's rules, checked over the real module graph (`deno info --json
// main.ts`): every import points down a floor (or stays in its own folder),
// ffi/ holds bindings that import nothing of the agent, the ground-floor
// vocabulary imports nothing at all, and no two modules import each other
// through any path. docs/architecture.md draws the same floors.

import { assertEquals } from "../testing/assert.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/**
 * Floors, lowest first. A module may import modules of its own folder and of
 * lower floors only. Folders on the same floor are independent of each other.
 */
export const FLOORS: readonly (readonly string[])[] = [
  ["ffi/"],
  ["src/core/", "src/log/", "src/io/"],
  ["src/host/", "src/config/", "src/cli/", "src/tracing/"],
  ["src/bpf/", "src/pod/", "src/storage/", "src/metrics/", "src/runtime/"],
  ["src/events/", "src/profile/"],
  ["src/autotracing/"],
  ["src/features/", "src/server/"],
  ["src/agent/"],
  ["main.ts"],
];

/** The folder (or top-level file) a module belongs to, and its floor. */
export function placeOf(path: string): { place: string; floor: number } | undefined {
  for (let floor = 0; floor < FLOORS.length; floor++) {
    for (const place of FLOORS[floor]) if (path === place || path.startsWith(place)) return { place, floor };
  }
  return undefined;
}

export interface ModuleGraph {
  /** Repository-relative path → the repository-relative paths it imports. */
  readonly edges: ReadonlyMap<string, readonly string[]>;
}

interface DenoInfoModule {
  specifier: string;
  dependencies?: { code?: { specifier?: string }; type?: { specifier?: string } }[];
}

export async function moduleGraph(root = "main.ts"): Promise<ModuleGraph> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`deno info: ${new TextDecoder().decode(out.stderr)}`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: DenoInfoModule[] };
  const local = (spec: string | undefined) =>
    spec?.startsWith("file://") ? decodeURIComponent(new URL(spec).pathname).slice(ROOT.length) : undefined;
  const edges = new Map<string, string[]>();
  for (const m of info.modules) {
    const from = local(m.specifier);
    if (!from || !from.endsWith(".ts")) continue; // deno.json (the import map) is no module of ours
    const to = new Set<string>();
    for (const d of m.dependencies ?? []) {
      for (const s of [d.code?.specifier, d.type?.specifier]) {
        const p = local(s);
        if (p?.endsWith(".ts")) to.add(p);
      }
    }
    edges.set(from, [...to].sort());
  }
  return { edges };
}

/** Imports that break the floors, as "from -> to (why)". */
export function upwardImports(graph: ModuleGraph): string[] {
  const bad: string[] = [];
  for (const [from, tos] of graph.edges) {
    const a = placeOf(from);
    if (!a) {
      bad.push(`${from}: on no floor (add its folder to FLOORS in src/layers_test.ts)`);
      continue;
    }
    for (const to of tos) {
      const b = placeOf(to);
      if (!b) continue; // reported as its own module
      if (a.place === b.place) continue;
      if (b.floor >= a.floor) {
        bad.push(`${from} -> ${to} (${a.place} is on floor ${a.floor}, ${b.place} on floor ${b.floor})`);
      }
    }
  }
  return bad.sort();
}

/** Groups of modules that import each other through some path (Tarjan's strongly connected components). */
export function importCycles(graph: ModuleGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const group: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        group.push(w);
      } while (w !== v);
      if (group.length > 1) cycles.push(group.sort());
    }
  };
  for (const v of graph.edges.keys()) if (!index.has(v)) visit(v);
  return cycles;
}

Deno.test("layers: every import of the agent points down a floor", async () => {
  assertEquals(upwardImports(await moduleGraph()), []);
});

Deno.test("layers: no import cycles", async () => {
  assertEquals(importCycles(await moduleGraph()), []);
});

Deno.test("layers: the checks see an upward import and a cycle", () => {
  const graph: ModuleGraph = {
    edges: new Map([
      ["ffi/libc.ts", ["src/host/fs.ts"]],
      ["src/host/fs.ts", ["src/core/sample.ts"]],
      ["src/core/sample.ts", []],
      ["src/server/a.ts", ["src/server/b.ts"]],
      ["src/server/b.ts", ["src/server/a.ts"]],
    ]),
  };
  assertEquals(upwardImports(graph), [
    "ffi/libc.ts -> src/host/fs.ts (ffi/ is on floor 0, src/host/ on floor 2)",
  ]);
  assertEquals(importCycles(graph), [["src/server/a.ts", "src/server/b.ts"]]);
});
