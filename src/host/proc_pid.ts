// Per-process files AutoTracing reads: /proc/<pid>/io (I/O accounting),
// /proc/<pid>/status (name, state, RSS), /proc/<pid>/sched (when the task last
// ran) and /proc/<pid>/stack (kernel frames).

import { SourceError } from "./fs.ts";

/** /proc/<pid>/io, bytes. */
export interface PidIo {
  /** Bytes passed to read()/write()-like calls (the file-system view; page cache hits included). */
  rchar: number;
  wchar: number;
  /** Bytes this process caused to be fetched from / sent to the block layer. */
  readBytes: number;
  writeBytes: number;
}

export function parsePidIo(text: string, path = "io"): PidIo {
  const kv = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^(\w+):\s+(\d+)$/.exec(line.trim());
    if (m) kv.set(m[1], Number(m[2]));
  }
  const get = (k: string) => {
    const v = kv.get(k);
    if (v === undefined) throw new SourceError(path, `no ${k} line`);
    return v;
  };
  return {
    rchar: get("rchar"),
    wchar: get("wchar"),
    readBytes: get("read_bytes"),
    writeBytes: get("write_bytes"),
  };
}

/** What /proc/<pid>/status says about a process. */
export interface PidStatus {
  /** comm, at most 15 bytes. */
  name: string;
  /** One letter (R, S, D, ...). */
  state: string;
  tgid: number;
  /** VmRSS in bytes; undefined for kernel threads (no mm). */
  rssBytes?: number;
}

export function parsePidStatus(text: string, path = "status"): PidStatus {
  let name: string | undefined, state: string | undefined, tgid: number | undefined, rss: number | undefined;
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    // Name is escaped by the kernel (\n, \\), never holds a tab; everything after the tab is the name.
    const value = line.slice(colon + 1).replace(/^\t/, "");
    if (key === "Name") name = value;
    else if (key === "State") state = value.trim().charAt(0);
    else if (key === "Tgid") tgid = Number(value.trim());
    else if (key === "VmRSS") {
      const m = /^(\d+) kB$/.exec(value.trim());
      if (m) rss = Number(m[1]) * 1024;
    }
  }
  if (name === undefined || !state || tgid === undefined || !Number.isInteger(tgid)) {
    throw new SourceError(path, "no Name, State or Tgid line");
  }
  return rss === undefined ? { name, state, tgid } : { name, state, tgid, rssBytes: rss };
}

/**
 * se.exec_start of /proc/<pid>/sched, in ms of the scheduler clock: for a
 * sleeping task, when it last stopped running (update_curr stamps it as the
 * task leaves the CPU). Printed whether or not CONFIG_SCHEDSTATS is built.
 */
export function parseExecStartMs(text: string, path = "sched"): number {
  const m = /^se\.exec_start\s+:\s+(\d+(?:\.\d+)?)$/m.exec(text);
  if (!m) throw new SourceError(path, "no se.exec_start line");
  return Number(m[1]);
}

/** /proc/<pid>/stack lines "[<0>] io_schedule+0x12/0x40" → ["io_schedule+0x12/0x40", ...], innermost first. */
export function procStackFrames(text: string): string[] {
  return text.split("\n").map((l) => l.replace(/^\[<[0-9a-fx]*>\]\s*/, "").trim()).filter((l) => l !== "");
}

/**
 * Functions a task sleeps under while it waits for block I/O. The kernel
 * marks such a sleep (in_iowait, set by io_schedule()) but exports that flag
 * nowhere per task, and /proc/<pid>/stack leaves out the scheduler functions
 * (io_schedule included), so the callers that wait are matched instead:
 * synchronous bios and direct I/O, request tags, page and buffer I/O waits,
 * writeback throttling, a journal commit.
 */
const IO_WAIT = new RegExp(
  "^(?:io_schedule|submit_bio_wait|__blkdev_direct_IO|blkdev_direct_IO|__iomap_dio_rw|iomap_dio_rw|" +
    "blk_mq_get_tag|__bio_queue_enter|blk_queue_enter|rq_qos_wait|wbt_wait|folio_wait_bit|" +
    "folio_wait_writeback|wait_on_page_bit|wait_on_page_writeback|__wait_on_buffer|bit_wait_io|" +
    "__lock_buffer|balance_dirty_pages|jbd2_log_wait_commit|filemap_fdatawait|__filemap_fdatawait)",
);

/** Whether a kernel stack (procStackFrames) waits for block I/O. */
export function waitsForIo(frames: readonly string[]): boolean {
  return frames.some((f) => IO_WAIT.test(f));
}
