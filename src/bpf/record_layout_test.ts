// Every record layout a decoder declares, checked against the struct in the
// compiled object's BTF (_output/bpf/*.o, built by ./build.sh): size and every
// field offset. Needs no root and no kernel feature: a field moved in C
// fails here, in a plain unit test.

import { Btf, BTF_KIND } from "../../ffi/btf.ts";
import { assert, assertEquals } from "../testing/assert.ts";
import type { RecordLayout } from "./record.ts";
import { OOM_RECORD } from "../events/tracers/oom.ts";

const OUT = new URL("../../_output/bpf", import.meta.url).pathname;

/** Every record a BPF program emits to a ring the agent reads. */
export const RECORD_LAYOUTS: readonly RecordLayout[] = [OOM_RECORD];

/** What differs between a layout and its object's BTF; empty when they agree. */
export function layoutMismatches(layout: RecordLayout, objectDir = OUT): string[] {
  const btf = Btf.parse(`${objectDir}/${layout.object}`);
  try {
    const id = btf.find(layout.struct, BTF_KIND.STRUCT);
    if (id === undefined) {
      return [
        `${layout.object} has no struct ${layout.struct} in its BTF (does its program use huatuo_reserve?)`,
      ];
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
  Deno.test(`record layout: struct ${layout.struct} (${layout.object}) matches its decoder`, () => {
    assert(
      (() => {
        try {
          return Deno.statSync(`${OUT}/${layout.object}`).isFile;
        } catch {
          return false;
        }
      })(),
      `${OUT}/${layout.object} is missing: run ./build.sh bpf first`,
    );
    assertEquals(layoutMismatches(layout), []);
  });
}
