// Test helper, run as a child process by tracer_test.ts under reduced
// privileges (setpriv) or without libbpf (a mount namespace): starts one BPF
// tracer through the tracing manager and prints its status as JSON.
//
//   deno run -A testing/load_child.ts <bpf-dir> <object.o> [kernel-btf] [--hide-dir DIR]
//
// --hide-dir DIR mounts an empty directory over DIR first (run it under
// `unshare -m`, so only this process sees that): with DIR the directory of
// libbpf.so.1, dlopen finds no libbpf, as on a host without the package.

import { silentLogger } from "../src/log/logger.ts";
import { TracerManager } from "../src/tracing/manager.ts";
import { BpfRuntime, BpfTracer } from "../src/bpf/tracer.ts";

const args = [...Deno.args];
const hide = args.indexOf("--hide-dir");
if (hide !== -1) {
  const [, target] = args.splice(hide, 2);
  const empty = Deno.makeTempDirSync();
  const r = new Deno.Command("mount", { args: ["--bind", empty, target] }).outputSync();
  Deno.removeSync(empty); // the mount keeps it for this process; nothing is left in /tmp
  if (!r.success) throw new Error(`mount --bind over ${target}: ${new TextDecoder().decode(r.stderr)}`);
}
const [dir, object, kernelBtf] = args;
const tracers = new TracerManager(silentLogger);
const name = object.replace(/\.o$/, "");
tracers.add(new BpfTracer({ name, object }, new BpfRuntime(dir, kernelBtf)));
await tracers.startAll();
console.log(JSON.stringify(tracers.state(name)));
await tracers.stopAll();
Deno.exit(0);
