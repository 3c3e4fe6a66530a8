// The procfs parsers AutoTracing reads (meminfo, diskstats, /proc/<pid>/{io,status,sched,stack}), over
// files copied from a live host (fixtures/autotracing/) plus garbled input.

import { assert, assertEquals, assertThrows } from "../../testing/assert.ts";
import { ioStatus, parseDiskstats, splitDev } from "./diskstats.ts";
import { meminfoValue, parseMeminfo } from "./meminfo.ts";
import { parseExecStartMs, parsePidIo, parsePidStatus, procStackFrames, waitsForIo } from "./proc_pid.ts";

const FIX = new URL("../../fixtures/autotracing/", import.meta.url).pathname;
const fixture = (name: string) => Deno.readTextFileSync(`${FIX}${name}`);

Deno.test("meminfo: kB lines in bytes, counts as they are; a garbled line names itself", () => {
  const m = parseMeminfo(fixture("meminfo"));
  assertEquals(meminfoValue(m, "MemTotal"), 24683772 * 1024);
  assertEquals(meminfoValue(m, "AnonPages"), 57128 * 1024);
  assertEquals(m.get("HugePages_Total"), 0);
  assertEquals(m.get("Hugepagesize"), 2048 * 1024);
  assertThrows(() => meminfoValue(m, "NoSuchLine"), /no NoSuchLine line/);
  assertThrows(() => parseMeminfo("MemTotal: 12 kB\nAnonPages 5\n"), /line 2/);
  assertThrows(() => parseMeminfo(""), /empty/);
});

Deno.test("diskstats: 14-, 18- and 20-field lines; iostat rates between two readings", () => {
  const t0 = parseDiskstats(fixture("diskstats_t0"));
  const t1 = parseDiskstats(fixture("diskstats_t1"));
  assertEquals(t0.map((d) => d.name), ["loop0", "sda", "md0", "nvme0n1", "nvme0n1p1"]);
  assertEquals([t0[1].major, t0[1].minor, t0[1].writeIos, t0[1].inFlight], [8, 0, 8000, 2]);
  const sda = ioStatus(t0[1], t1[1], 5)!;
  assertEquals(sda, {
    read_bps: 0,
    read_iops: 0,
    read_await: 0,
    write_bps: 200,
    write_iops: 400,
    write_await: 100,
    io_util: 98,
    queue_size: 32,
  });
  const nvme = ioStatus(t0[3], t1[3], 5)!;
  assertEquals([nvme.write_bps, nvme.write_await, nvme.io_util], [2000, 2, 10]);
  // Idle: all zero; no time passed: no rates; counters that went back count as 0.
  assertEquals(Object.values(ioStatus(t0[0], t1[0], 5)!).every((v) => v === 0), true);
  assertEquals(ioStatus(t0[1], t1[1], 0), undefined);
  assertEquals(ioStatus(t1[1], t0[1], 5)!.write_bps, 0);
  assertThrows(() => parseDiskstats("   8 0 sda 1 2 3\n"), /line 1: expected at least 14 fields/);
  assertThrows(() => parseDiskstats("   8 0 sda 1 2 3 x 5 6 7 8 9 10 11\n"), /line 1/);
});

Deno.test("splitDev: st_dev as stat(2) reports it → major:minor", () => {
  assertEquals(splitDev(0x0801), { major: 8, minor: 1 }); // sda1
  assertEquals(splitDev(0xfe00), { major: 254, minor: 0 }); // vda
  assertEquals(splitDev(0x700 + 5), { major: 7, minor: 5 }); // loop5
  // minor 256 of major 259 (nvme partitions past 255): minor's high bits go to bits 20+.
  assertEquals(splitDev((259 << 8) | (256 & 0xff) | ((256 & ~0xff) << 12)), { major: 259, minor: 256 });
  // A real st_dev: /proc is an anonymous device (major 0).
  assertEquals(splitDev(Deno.statSync("/proc").dev).major, 0);
});

Deno.test("/proc/<pid>/io, status, sched, stack", () => {
  const io = parsePidIo(fixture("pid_io"));
  assert(io.rchar > 0 && io.wchar > 0 && io.readBytes > 0 && io.writeBytes > 0, JSON.stringify(io));
  assertThrows(() => parsePidIo("rchar: 1\n"), /no wchar line/);

  const st = parsePidStatus(fixture("pid_status"));
  assertEquals(st, { name: "cat", state: "R", tgid: 3969, rssBytes: 1752 * 1024 });
  const kthread = parsePidStatus(fixture("kthread_status"));
  assertEquals([kthread.name, kthread.state, kthread.tgid, kthread.rssBytes], [
    "kthreadd",
    "S",
    2,
    undefined,
  ]);
  // A name with spaces and a colon stays whole.
  assertEquals(
    parsePidStatus("Name:\tmy: worker 1\nState:\tD (disk sleep)\nTgid:\t7\n").name,
    "my: worker 1",
  );
  assertThrows(() => parsePidStatus("Name:\tx\n"), /no Name, State or Tgid/);

  assert(Math.abs(parseExecStartMs(fixture("pid_sched")) - 2897884.134277) < 1e-6);
  assertThrows(() => parseExecStartMs("nr_switches : 3\n"), /se\.exec_start/);

  const frames = procStackFrames(
    "[<0>] submit_bio_wait+0x74/0xc0\n[<0>] __blkdev_direct_IO_simple+0x1c4/0x2b0\n[<0>] vfs_write+0x29c/0x4c0\n",
  );
  assertEquals(frames, [
    "submit_bio_wait+0x74/0xc0",
    "__blkdev_direct_IO_simple+0x1c4/0x2b0",
    "vfs_write+0x29c/0x4c0",
  ]);
  assert(waitsForIo(frames));
  // A writer blocked by a frozen file system waits for a lock, not for I/O.
  assert(
    !waitsForIo(procStackFrames("[<0>] percpu_rwsem_wait+0x10e/0x130\n[<0>] mnt_want_write+0x1f/0x30\n")),
  );
});
