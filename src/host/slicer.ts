// Cooperative time slicing for loops of synchronous file reads. An async Deno
// fs op costs 2-3x the CPU of its sync twin (~39 vs ~15 µs per small cgroup
// file, ~80 vs ~33 µs per readdir, measured on the CI VM), so walks over
// hundreds of cgroups read synchronously and hand the event loop back every
// `sliceMs` so HTTP, SSE and BPF buffers are still served.

export const DEFAULT_SLICE_MS = 4;

export class Slicer {
  private since = performance.now();
  constructor(private readonly sliceMs = DEFAULT_SLICE_MS) {}

  /** Yields to the event loop when the current slice is used up. */
  async tick(): Promise<void> {
    if (performance.now() - this.since < this.sliceMs) return;
    await new Promise((r) => setTimeout(r, 0));
    this.since = performance.now();
  }
}
