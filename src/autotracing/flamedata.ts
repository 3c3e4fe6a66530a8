// The seed's flamedata from a CPU profile: frames depth-first from the root
// "all" (level 0), one level per process name, then its stack frames from the
// outermost; a node's value is its own samples plus its children's.
//
// A minimal local builder: src/profile/flamegraph.ts (flamedata and the
// flame graph formats) replaces it when that lands.

import type { FlameFrame, Profile, Profiler, ProfileScope, StackSample } from "../profile/profile.ts";

interface Node {
  self: number;
  value: number;
  readonly children: Map<string, Node>;
}

const node = (): Node => ({ self: 0, value: 0, children: new Map() });

export function flamedata(samples: readonly StackSample[]): FlameFrame[] {
  const root = node();
  for (const s of samples) {
    if (s.count <= 0) continue;
    let n = root;
    n.value += s.count;
    for (const label of [s.process, ...s.frames]) {
      let child = n.children.get(label);
      if (!child) n.children.set(label, child = node());
      child.value += s.count;
      n = child;
    }
    n.self += s.count;
  }
  const out: FlameFrame[] = [];
  const walk = (n: Node, label: string, level: number) => {
    out.push({ level, value: n.value, self: n.self, label });
    // Siblings by label: the same profile always gives the same list.
    for (const [l, c] of [...n.children].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      walk(c, l, level + 1);
    }
  };
  walk(root, "all", 0);
  return out;
}

/** A CPU profile of `scope` for `durationMs`, as flamedata and its sample count. */
export async function profileCapture(
  profiler: Profiler,
  scope: ProfileScope,
  durationMs: number,
  signal: AbortSignal,
): Promise<{ flamedata: FlameFrame[]; profile: Profile }> {
  const profile = await profiler.capture({ durationMs, scope, signal });
  return { flamedata: flamedata(profile.samples), profile };
}
