// A CPU profile captured for a trigger, as the seed's flamedata (built by
// src/profile/flamegraph.ts: root "all", a level per process name, then its
// stack frames from the outermost).

import { flamedata } from "../profile/flamegraph.ts";
import type { FlameFrame, Profile, Profiler, ProfileScope } from "../profile/profile.ts";

export { flamedata };

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
