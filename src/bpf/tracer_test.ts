// BpfTracer on the real kernel: load and attach, and the error classes the
// tracing manager relies on (failed vs unsupported).
import { silentLogger } from "../log/logger.ts";
import { BpfError, LibbpfUnavailableError, setLibbpfLogger } from "../../ffi/libbpf.ts";
import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "../../testing/assert.ts";
import { type TracerStatus, UnsupportedError } from "../tracing/manager.ts";
import { BpfPermissionError, BpfRuntime, BpfTracer, classifyLoadError, PERMISSION_DENIED } from "./tracer.ts";
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

Deno.test("classifyLoadError: EPERM fails naming the privileges, no libbpf is unsupported, the rest stays", () => {
  const eperm = classifyLoadError(
    new BpfError({ object: "x.o", op: "load program", program: "p", errno: 1 }),
  );
  assert(eperm instanceof BpfPermissionError && !(eperm instanceof UnsupportedError));
  assertEquals(eperm.message, `${PERMISSION_DENIED}: x.o: load program p: EPERM`);
  assertEquals(PERMISSION_DENIED, "permission denied (needs CAP_BPF+CAP_PERFMON or root)");
  const noLib = classifyLoadError(
    new LibbpfUnavailableError(
      "Could not open library: Could not open library: libbpf.so.1: cannot open shared object file: " +
        "No such file or directory",
    ),
  );
  assert(noLib instanceof UnsupportedError);
  assertEquals(
    noLib.message,
    "libbpf.so.1 not found: libbpf.so.1: cannot open shared object file: No such file or directory",
  );
  // A verifier rejection (EACCES) and a missing hook (ENOENT) are not about privileges.
  const eacces = new BpfError({ object: "x.o", op: "load program", program: "p", errno: 13 });
  assertEquals(classifyLoadError(eacces), eacces);
  const enoent = new BpfError({ object: "x.o", op: "attach program", program: "p", errno: 2 });
  assertEquals(classifyLoadError(enoent), enoent);
  const other = new Error("boom");
  assertEquals(classifyLoadError(other), other);
});

/** Runs testing_load_child.ts (through `wrapper`, e.g. setpriv) and returns the tracer status it printed. */
async function childStatus(wrapper: string[], args: string[]): Promise<TracerStatus> {
  const child = new URL("../../testing/load_child.ts", import.meta.url).pathname;
  const out = await new Deno.Command(wrapper[0], {
    args: [...wrapper.slice(1), Deno.execPath(), "run", "-A", "--quiet", child, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  assert(out.success, dec.decode(out.stderr));
  return JSON.parse(dec.decode(out.stdout).trim().split("\n").at(-1)!);
}

const hasTool = (name: string) => {
  try {
    return new Deno.Command("sh", { args: ["-c", `command -v ${name}`] }).outputSync().success;
  } catch {
    return false;
  }
};

Deno.test({
  name: "EPERM (no capabilities, through setpriv): state failed, reason permission denied",
  ignore: ignore || !hasTool("setpriv"),
  async fn() {
    const s = await childStatus(
      ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--"],
      [OUT, "softlockup.o"],
    );
    assertEquals(s.state, "failed");
    assertEquals(s.reason, `${PERMISSION_DENIED}: softlockup.o: load: EPERM`);
  },
});

Deno.test({
  name: "no libbpf.so.1 (hidden in a mount namespace): unsupported naming libbpf, even without kernel BTF",
  ignore: ignore || !hasTool("unshare"),
  async fn() {
    // The directory the dynamic linker finds libbpf.so.1 in (ldconfig's cache).
    const cache = new TextDecoder().decode(
      new Deno.Command("ldconfig", { args: ["-p"] }).outputSync().stdout,
    );
    const lib = /libbpf\.so\.1 \(.*\) => (\S+)/.exec(cache)?.[1];
    assert(lib, "libbpf.so.1 is not in the ldconfig cache");
    const libdir = Deno.realPathSync(lib).replace(/\/[^/]+$/, "");
    const s = await childStatus(
      ["unshare", "-m", "--"],
      [OUT, "softlockup.o", "/nonexistent/vmlinux", "--hide-dir", libdir],
    );
    assertEquals(s.state, "unsupported");
    assertMatch(s.reason ?? "", /^libbpf\.so\.1 not found: .*No such file or directory$/);
  },
});
