// Every record layout a decoder declares, checked against the struct in the
// compiled object's BTF (_output/bpf/*.o, built by ./build.sh): size and every
// field offset. Needs no root and no kernel feature: a field moved in C
// fails here, in a plain unit test.

import { Btf, BTF_KIND } from "../../ffi/btf.ts";
import { assert, assertEquals } from "../../testing/assert.ts";
import type { RecordLayout } from "./record.ts";
import { CPU_STACK_RECORD } from "../events/kernel_stacks.ts";
import { PROFILE_KEY } from "../profile/cpu_profiler.ts";
import { DROP_RECORD } from "../features/dropwatch/tracer.ts";
import { RECLAIM_RECORD } from "../features/memory_reclaim_events/memory_reclaim_events.ts";
import { NET_RX_RECORD } from "../features/net_rx_latency/net_rx_latency.ts";
import { TXQUEUE_TIMEOUT_RECORD } from "../features/netdev_txqueue_timeout/netdev_txqueue_timeout.ts";
import { OOM_RECORD } from "../features/oom/oom.ts";
import { SOFTIRQ_RECORD } from "../features/softirq_tracing/softirq_tracing.ts";
import { HUNGTASK_RECORD } from "../features/hungtask/hungtask.ts";
import { RAS_RECORD } from "../features/ras/ras.ts";
import { SOFTLOCKUP_RECORD } from "../features/softlockup/softlockup.ts";

const OUT = new URL("../../_output/bpf", import.meta.url).pathname;

/** Every record a BPF program emits to a ring the agent reads. */
export const RECORD_LAYOUTS: readonly RecordLayout[] = [
  CPU_STACK_RECORD,
  DROP_RECORD,
  HUNGTASK_RECORD,
  NET_RX_RECORD,
  OOM_RECORD,
  PROFILE_KEY,
  RAS_RECORD,
  RECLAIM_RECORD,
  SOFTIRQ_RECORD,
  SOFTLOCKUP_RECORD,
  TXQUEUE_TIMEOUT_RECORD,
];

/** What differs between a layout and the BTF of one object that emits it; empty when they agree. */
export function layoutMismatches(layout: RecordLayout, object: string, objectDir = OUT): string[] {
  const btf = Btf.parse(`${objectDir}/${object}`);
  try {
    const id = btf.find(layout.struct, BTF_KIND.STRUCT);
    if (id === undefined) {
      return [`${object} has no struct ${layout.struct} in its BTF (does its program use huatuo_reserve?)`];
    }
    const out: string[] = [];
    const size = btf.size(id);
    if (size !== layout.size) {
      out.push(`sizeof(struct ${layout.struct}) is ${size}, the decoder says ${layout.size}`);
    }
    for (const [path, offset] of Object.entries<number>(layout.fields)) {
      const m = btf.memberOffset(id, path);
      if (!m) out.push(`struct ${layout.struct} has no member ${path}`);
      else if (m.offset !== offset) {
        out.push(`${layout.struct}.${path} is at ${m.offset}, the decoder reads it at ${offset}`);
      }
    }
    return out;
  } finally {
    btf.close();
  }
}

for (const layout of RECORD_LAYOUTS) {
  for (const object of layout.objects) {
    Deno.test(`record layout: struct ${layout.struct} (${object}) matches its decoder`, () => {
      assert(
        (() => {
          try {
            return Deno.statSync(`${OUT}/${object}`).isFile;
          } catch {
            return false;
          }
        })(),
        `${OUT}/${object} is missing: run ./build.sh bpf first`,
      );
      assertEquals(layoutMismatches(layout, object), []);
    });
  }
}

Deno.test("record layouts: one for every HUATUO_RECORD struct in bpf/", () => {
  const declared = new Set<string>();
  const dir = new URL("../../bpf", import.meta.url).pathname;
  for (const e of Deno.readDirSync(dir)) {
    if (!e.isFile || !/\.(c|h)$/.test(e.name)) continue;
    const text = Deno.readTextFileSync(`${dir}/${e.name}`);
    for (const m of text.matchAll(/^HUATUO_RECORD\(struct (\w+),/gm)) declared.add(m[1]);
  }
  const listed = RECORD_LAYOUTS.map((l) => l.struct);
  assertEquals(listed.length, new Set(listed).size, "one layout per struct");
  assertEquals([...declared].sort(), [...listed].sort());
});
