// iotracing: thresholds (NVMe's MB/s need its util), two polls in a row,
// per-process byte deltas, waits followed across polls, the trigger over the
// fixture host (fixtures/autotracing/host: md arrays and partitions left
// out), and a real capture: a direct-I/O writer listed with its bytes and file.

import { assert, assertEquals } from "../../../testing/assert.ts";
import { defaultConfig } from "../../config/schema.ts";
import { HostFs } from "../../host/fs.ts";
import type { IoStatus } from "../../host/diskstats.ts";
import type { BlockedTask } from "../../autotracing/procs.ts";
import { ioDeltas, ioReasons, iostatusData, IoTracingTrigger, Streaks, WaitTracker } from "./iotracing.ts";

const FIX = new URL("../../../fixtures/autotracing/", import.meta.url).pathname;
const defaults = defaultConfig().AutoTracing.IOTracing;

const status = (s: Partial<IoStatus>): IoStatus => ({
  read_bps: 0,
  read_iops: 0,
  read_await: 0,
  write_bps: 0,
  write_iops: 0,
  write_await: 0,
  io_util: 0,
  queue_size: 0,
  ...s,
});

Deno.test("ioReasons: above its threshold; an NVMe disk's MB/s count only with its util", () => {
  const sda = status({ write_bps: 200, write_iops: 400, write_await: 100, io_util: 98, queue_size: 32 });
  assertEquals(ioReasons(sda, defaults, false), ["ioutil"], "await 100 is not above 100");
  assertEquals(ioReasons(sda, { ...defaults, WbpsThreshold: 150, AwaitThreshold: 99 }, false), [
    "ioutil",
    "write_bps",
    "write_await",
  ]);
  const nvme = status({ write_bps: 2000, write_iops: 400, write_await: 2, io_util: 10 });
  assertEquals(ioReasons(nvme, defaults, true), [], "2000 MB/s on an NVMe disk at 10 % util");
  assertEquals(ioReasons(nvme, defaults, false), ["write_bps"]);
  assertEquals(ioReasons({ ...nvme, io_util: 95 }, defaults, true), ["ioutil", "write_bps"]);
  assertEquals(ioReasons(status({ read_bps: 2100, read_iops: 9, read_await: 150 }), defaults, false), [
    "read_bps",
    "read_await",
  ]);
  // An idle disk with AwaitThreshold 0 has no await to be above it.
  assertEquals(ioReasons(status({}), { ...defaults, AwaitThreshold: 0 }, false), []);
});

Deno.test("Streaks: a reason must hold at two polls in a row, per device; a gap starts over", () => {
  const s = new Streaks();
  assertEquals(s.update("sda", ["ioutil"]), undefined);
  assertEquals(s.update("vdb", ["write_bps"]), undefined);
  assertEquals(s.update("sda", ["write_bps"]), undefined, "ioutil broke off");
  assertEquals(s.update("sda", ["write_bps", "ioutil"]), "write_bps");
  assertEquals(s.update("sda", ["write_bps", "ioutil"]), "ioutil", "the seed's order when several hold");
  assertEquals(s.update("vdb", ["write_bps"]), "write_bps");
  s.keep(new Set(["sda"]));
  assertEquals(s.update("vdb", ["write_bps"]), undefined, "a device that went away starts over");
});

Deno.test("ioDeltas: bytes moved between two snapshots, most disk bytes first; idle processes left out", () => {
  const io = (rchar: number, wchar: number, readBytes: number, writeBytes: number) => ({
    rchar,
    wchar,
    readBytes,
    writeBytes,
  });
  const before = new Map([[1, io(100, 100, 0, 0)], [2, io(0, 0, 0, 4096)], [3, io(5, 5, 5, 5)]]);
  const after = new Map([
    [1, io(1_000_100, 100, 0, 0)], // read from the page cache only
    [2, io(0, 50 << 20, 0, (48 << 20) + 4096)],
    [3, io(5, 5, 5, 5)], // idle
    [4, io(10, 10, 8192, 0)], // started in between: counts from zero
  ]);
  assertEquals(ioDeltas(before, after), [
    { pid: 2, fs_read: 0, fs_write: 50 << 20, disk_read: 0, disk_write: 48 << 20 },
    { pid: 4, fs_read: 10, fs_write: 10, disk_read: 8192, disk_write: 0 },
    { pid: 1, fs_read: 1_000_000, fs_write: 0, disk_read: 0, disk_write: 0 },
  ]);
});

Deno.test("WaitTracker: a wait lasts while se.exec_start stays; the longest block-I/O wait per task", () => {
  const w = new WaitTracker();
  const task = (tid: number, execStartMs: number): BlockedTask => ({
    tgid: 100,
    tid,
    comm: "dd",
    execStartMs,
  });
  const io = ["submit_bio_wait+0x74/0xc0", "__blkdev_direct_IO_simple+0x1c4/0x2b0"];
  const lock = ["percpu_rwsem_wait+0x10e/0x130"];
  let reads = 0;
  const stack = (t: BlockedTask) => (reads++, t.tid === 101 ? io : t.tid === 102 ? lock : undefined);
  w.observe([task(101, 5), task(102, 7), task(103, 9)], 0, stack);
  w.observe([task(101, 5), task(102, 7)], 200, stack);
  w.observe([task(101, 5)], 450, stack);
  w.observe([task(101, 60)], 650, stack); // ran in between: a new wait
  w.observe([task(101, 60)], 700, stack);
  assertEquals(reads, 4, "a stack is read once per wait (103 had none: it left D)");
  assertEquals(w.ioWaits(0), [{ tgid: 100, tid: 101, comm: "dd", ms: 450, frames: io }]);
  assertEquals(w.ioWaits(451), []);
});

/** The fixture host with its diskstats replaced by `name` (diskstats_t0/1/2). */
function host() {
  const root = Deno.makeTempDirSync({ prefix: "huatuo-iotracing-" });
  Deno.mkdirSync(`${root}/proc`);
  new Deno.Command("cp", { args: ["-a", `${FIX}host/sys`, root] }).outputSync();
  const stats = (name: string) => Deno.copyFileSync(`${FIX}${name}`, `${root}/proc/diskstats`);
  return { fs: new HostFs(root), stats, cleanup: () => Deno.removeSync(root, { recursive: true }) };
}

Deno.test("iotracing trigger: diskstats every 5 s, whole disks only, fires at the second poll over a threshold", () => {
  const h = host();
  try {
    let now = 0;
    const t = new IoTracingTrigger(h.fs, defaults, undefined, () => now);
    assertEquals([t.intervalMs, t.cooldownMs, t.captureMs], [5000, 1_800_000, 10_000]);
    h.stats("diskstats_t0");
    t.prepare();
    now += 5000;
    h.stats("diskstats_t1");
    assertEquals(t.poll(), [], "sda is over UtilThreshold once");
    now += 5000;
    h.stats("diskstats_t2");
    const fired = t.poll();
    assertEquals(fired, [{
      key: "host",
      data: {
        reason_snapshot: {
          type: "ioutil",
          device: "sda",
          iostatus: {
            read_bps: 0,
            read_iops: 0,
            read_await: 0,
            write_bps: 200,
            write_iops: 400,
            write_await: 100,
            io_util: 98,
            queue_size: 32,
          },
        },
      },
    }]);
    // md0 writes ~8800 MB/s and nvme0n1p1 2000 MB/s: neither is a disk iotracing watches.
    // On demand: the busiest disk of the last poll stands in as the reason.
    assertEquals((t.manualData().reason_snapshot as { type: string; device: string }).device, "sda");
    assertEquals(iostatusData(status({ io_util: 97.123 })).io_util, 97.12);
  } finally {
    h.cleanup();
  }
});

Deno.test("iotracing capture on the real host: a direct-I/O writer is listed with its bytes and its file", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-iotracing-", dir: "/var/tmp" });
  const file = `${dir}/direct.out`;
  const dd = new Deno.Command("dd", {
    args: ["if=/dev/zero", `of=${file}`, "bs=1M", "count=100000", "oflag=direct", "status=none"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await new Promise((r) => setTimeout(r, 200));
    const t = new IoTracingTrigger(new HostFs(""), { ...defaults, MaxProcDump: 50 }, undefined);
    const r = await t.capture({ key: "host", data: { reason_snapshot: { device: "" } } }, {
      durationMs: 1000,
      signal: new AbortController().signal,
    });
    const rows = r.data.process_io_data as Record<string, unknown>[];
    const me = rows.find((p) => p.pid === dd.pid);
    assert(me, `dd (${dd.pid}) not listed: ${JSON.stringify(rows)}`);
    assertEquals([me.comm, me.container_hostname, me.file_stat, me.file_count], ["dd", "", [file], 1]);
    assert((me.disk_write as number) >= 1 << 20, `disk_write ${me.disk_write}`);
    // The two counters move at different moments of one 1 MiB write (write_bytes at submit, wchar at
    // return): with one write in flight at each end of the window they may differ by two writes.
    assert(
      (me.fs_write as number) >= (me.disk_write as number) - (2 << 20),
      `fs ${me.fs_write} disk ${me.disk_write}`,
    );
    assertEquals(rows.indexOf(me) < 10, true, "among the top writers");
    assert(Array.isArray(r.data.timeout_io_stack));
  } finally {
    dd.kill("SIGKILL");
    await dd.status;
    Deno.removeSync(dir, { recursive: true });
  }
});
