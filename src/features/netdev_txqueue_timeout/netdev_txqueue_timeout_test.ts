// The netdev_txqueue_timeout tracer: the record decoder on a hand-built
// record, and (root) its BPF program loading and attaching to the real
// net:net_dev_xmit_timeout raw tracepoint, then run by the kernel on crafted
// arguments (BPF_PROG_TEST_RUN) so a record goes through the ring buffer to
// an event. A real TX timeout cannot be caused here: it needs a driver with
// ndo_tx_timeout whose queue stays stopped (veth, tun, macvlan, ifb have no
// watchdog; netdevsim is not built on this kernel; virtio_net's is eth0).

import { silentLogger } from "../../log/logger.ts";
import type { EventInput } from "../../events/sink.ts";
import { BpfRuntime } from "../../bpf/tracer.ts";
import { assert, assertEquals, assertThrows } from "../../../testing/assert.ts";
import {
  netdevTxqueueTimeoutTracer,
  TXQUEUE_TIMEOUT_RECORD,
  txqueueTimeoutRecord,
  txqueueTimeoutTracerData,
} from "./netdev_txqueue_timeout.ts";
import { exists } from "../../../testing/fs.ts";
import { ShortRecordError } from "../../bpf/record.ts";
import { testTracerContext } from "../../../testing/tracer.ts";

const OUT = new URL("../../../_output/bpf", import.meta.url).pathname;
const TRACEPOINT = "net_dev_xmit_timeout";

const skip = Deno.uid() !== 0
  ? "needs root"
  : !exists(`${OUT}/netdev_txqueue_timeout.o`)
  ? "run ./build.sh bpf first"
  : undefined;
if (skip) console.warn(`netdev_txqueue_timeout_test: real-kernel test skipped (${skip})`);

Deno.test("txqueueTimeoutRecord decodes struct txqueue_timeout_event; tracer_data uses the seed's names", () => {
  const o = 8; // records sit at an offset inside the ring mapping
  const buf = new ArrayBuffer(o + TXQUEUE_TIMEOUT_RECORD.size);
  const v = new DataView(buf);
  const u8 = new Uint8Array(buf);
  u8.fill(0xaa); // garbage after the NULs must not leak into the strings
  const enc = new TextEncoder();
  v.setInt32(o, 3, true);
  u8.set([...enc.encode("eth0"), 0], o + 4);
  u8.set([...enc.encode("ixgbe"), 0], o + 20);
  v.setBigUint64(o + 56, 123456789n, true);
  const r = txqueueTimeoutRecord(v, o, TXQUEUE_TIMEOUT_RECORD.size);
  assertEquals(r, { queueIndex: 3, deviceName: "eth0", driverName: "ixgbe", ts: 123456789n });
  assertEquals(txqueueTimeoutTracerData(r), { queue_index: 3, device_name: "eth0", driver_name: "ixgbe" });

  // A 15-character name fills the kernel's IFNAMSIZ with its NUL; a virtual device has no driver ("").
  u8.set([...enc.encode("enp175s0f1np1xx"), 0], o + 4);
  u8.fill(0, o + 20, o + 52);
  const r2 = txqueueTimeoutRecord(v, o, TXQUEUE_TIMEOUT_RECORD.size);
  assertEquals(r2.deviceName, "enp175s0f1np1xx");
  assertEquals(r2.driverName, "");
  // The ring's length counts: a short record is rejected even inside a large buffer.
  assertThrows(() => txqueueTimeoutRecord(v, o, TXQUEUE_TIMEOUT_RECORD.size - 1), ShortRecordError);
  assertThrows(() => txqueueTimeoutRecord(v, o + 1, TXQUEUE_TIMEOUT_RECORD.size), RangeError);
});

interface PerfAttachment {
  pid: number;
  prog_id: number;
  fd_type: string;
  tracepoint?: string;
}

async function tracepointAttachments(): Promise<PerfAttachment[]> {
  const out = await new Deno.Command("bpftool", { args: ["-j", "perf", "list"], stdout: "piped" }).output();
  assert(out.success, "bpftool perf list");
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test({
  name:
    "netdev_txqueue_timeout: the program loads and attaches to net:net_dev_xmit_timeout, and detaches on stop",
  ignore: skip !== undefined,
  async fn() {
    const tracer = netdevTxqueueTimeoutTracer({ bpf: new BpfRuntime(OUT), log: silentLogger });
    const ac = new AbortController();
    await tracer.start(testTracerContext(ac.signal));
    try {
      const prog = tracer.object.programs.find((p) => p.name === "netdev_txqueue_timeout");
      assert(prog && prog.fd >= 0, "program loaded");
      const mine = (await tracepointAttachments()).filter((a) =>
        a.pid === Deno.pid && a.tracepoint === TRACEPOINT
      );
      assertEquals(mine.length, 1, `one ${TRACEPOINT} attachment held by this process`);
      assertEquals(mine[0].fd_type, "raw_tracepoint");
      assert(tracer.readers.has("netdev_txqueue_timeout_events"), "the ring buffer is being read");
    } finally {
      ac.abort();
      tracer.stop();
    }
    const left = (await tracepointAttachments()).filter((a) =>
      a.pid === Deno.pid && a.tracepoint === TRACEPOINT
    );
    assertEquals(left.length, 0, "nothing stays attached after stop");
  },
});

/**
 * bpf_prog_test_run_opts() of libbpf: runs a raw tracepoint program once on
 * @args (its u64 arguments). Returns the program's return value.
 */
function testRunRawTp(progFd: number, args: BigUint64Array<ArrayBuffer>): number {
  const lib = Deno.dlopen("libbpf.so.1", {
    bpf_prog_test_run_opts: { parameters: ["i32", "buffer"], result: "i32" },
  });
  try {
    // struct bpf_test_run_opts (x86_64): sz@0, ctx_in@32, ctx_size_in@48, retval@56; 80 bytes.
    const opts = new Uint8Array(80);
    const dv = new DataView(opts.buffer);
    dv.setBigUint64(0, 80n, true);
    dv.setBigUint64(32, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(args))), true);
    dv.setUint32(48, args.byteLength, true);
    const err = lib.symbols.bpf_prog_test_run_opts(progFd, opts);
    if (err < 0) throw new Error(`bpf_prog_test_run_opts: ${err}`);
    return dv.getUint32(56, true);
  } finally {
    lib.close();
  }
}

Deno.test({
  name: "netdev_txqueue_timeout: a kernel run of the program on (dev=NULL, queue 5) becomes one event",
  ignore: skip !== undefined,
  async fn() {
    const got: EventInput[] = [];
    const tracer = netdevTxqueueTimeoutTracer({
      bpf: new BpfRuntime(OUT),
      log: silentLogger,
      events: (e) => got.push(e),
    });
    await tracer.start(testTracerContext());
    try {
      const prog = tracer.object.programs.find((p) => p.name === "netdev_txqueue_timeout")!;
      // A NULL net_device: every read faults, so names are empty (as for a device without a parent driver).
      assertEquals(testRunRawTp(prog.fd, new BigUint64Array([0n, 5n])), 0);
      const deadline = Date.now() + 2000;
      while (got.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assertEquals(got, [{
        tracerName: "netdev_txqueue_timeout",
        data: { queue_index: 5, device_name: "", driver_name: "" },
      }]);
    } finally {
      tracer.stop();
    }
  },
});
