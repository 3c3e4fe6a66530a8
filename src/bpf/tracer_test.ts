// BpfTracer on the real kernel: load and attach, and the error classes the
// tracing manager relies on (failed vs unsupported).
import { silentLogger } from "../log/logger.ts";
import { setLibbpfLogger } from "../../ffi/libbpf.ts";
import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "../testing/assert.ts";
import { UnsupportedError } from "../tracing/manager.ts";
import { BpfRuntime, BpfTracer } from "./tracer.ts";
import { readCounter } from "./zones.ts";

const OUT = new URL("../../_output/bpf", import.meta.url).pathname;
const root = Deno.uid() === 0;
const built = (() => {
  try {
    return Deno.statSync(`${OUT}/softlockup.o`).isFile && Deno.statSync(`${OUT}/test/broken.o`).isFile;
  } catch {
    return false;
  }
})();
if (!root || !built) {
  console.warn(`tracer_test: skipped (${!root ? "needs root" : "run ./build.sh bpf first"})`);
}
const ignore = !root || !built;
// Verifier logs of the deliberately broken object would flood the test output.
if (!ignore) setLibbpfLogger(() => {});

const ctx = () => ({ log: silentLogger, signal: new AbortController().signal, fail: () => {} });

Deno.test({
  name: "a tracer loads, attaches and counts real kernel events (softlockup on printk)",
  ignore,
  async fn() {
    const t = new BpfTracer({ name: "softlockup", object: "softlockup.o" }, new BpfRuntime(OUT));
    await t.start(ctx());
    try {
      const map = t.object.map("softlockup_count");
      const before = readCounter(map);
      await Deno.writeTextFile(
        "/dev/kmsg",
        "<3>watchdog: BUG: soft lockup - CPU#1 stuck for 22s! [tracer-test:1]\n",
      );
      await Deno.writeTextFile("/dev/kmsg", "<6>tracer-test: an ordinary line\n");
      assertEquals(readCounter(map) - before, 1);
    } finally {
      t.stop();
    }
    assertThrows(() => t.object, /not running: stopped/);
  },
});

Deno.test({
  name: "a verifier rejection is a failure naming the program; a missing object names the path",
  ignore,
  async fn() {
    const rt = new BpfRuntime(`${OUT}/test`);
    const broken = new BpfTracer({ name: "broken", object: "broken.o" }, rt);
    const err = await broken.start(ctx()).then(() => undefined, (e) => e);
    assert(err instanceof Error && !(err instanceof UnsupportedError), String(err));
    assertMatch(err.message, /load program hb_broken_prog: EACCES/);
    assertMatch(err.message, /invalid mem access/);
    broken.stop();
    const missing = new BpfTracer({ name: "x", object: "nope.o" }, rt);
    await assertRejects(() => missing.start(ctx()), /nope\.o not found/);
  },
});

Deno.test({
  name: "no kernel BTF and no shipped BTF file: unsupported, not failed",
  ignore,
  async fn() {
    const t = new BpfTracer(
      { name: "softlockup", object: "softlockup.o" },
      new BpfRuntime(OUT, "/nonexistent/vmlinux"),
    );
    const err = await t.start(ctx()).then(() => undefined, (e) => e);
    assert(err instanceof UnsupportedError, String(err));
    assertMatch(err.message, /kernel has no BTF/);
  },
});

Deno.test({
  name: "alternatives: the first implementation the kernel rejects falls back to the next",
  ignore,
  async fn() {
    const t = new BpfTracer({
      name: "broken",
      object: "broken.o",
      alternatives: [["hb_broken_prog"], ["hb_ok_prog"]],
    }, new BpfRuntime(`${OUT}/test`));
    await t.start(ctx());
    try {
      const loaded = t.object.programs.filter((p) => p.fd >= 0).map((p) => p.name);
      assertEquals(loaded, ["hb_ok_prog"]);
    } finally {
      t.stop();
    }
  },
});
