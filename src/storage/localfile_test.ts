import { defaultConfig } from "../config/schema.ts";
import { createLogger, type Logger } from "../log/logger.ts";
import { assert, assertEquals, assertMatch, assertStrictEquals } from "../../testing/assert.ts";
import { type EventDocument, newDocument } from "../core/document.ts";
import { localFileOptions, LocalFileStore } from "./localfile.ts";
import { localFileCollector } from "./metrics.ts";

const FIXED = new Date(Date.UTC(2025, 5, 11, 8, 5, 16, 251));

function doc(tracerName: string, seq: number): EventDocument {
  return newDocument({
    hostname: "h",
    region: "r",
    tracerName,
    tracerType: "auto",
    data: { seq },
    now: FIXED,
    offsetMinutes: 480,
  });
}

/** Byte length of a document's line, for picking exact rotation limits. */
function lineBytes(d: EventDocument): number {
  return new TextEncoder().encode(JSON.stringify(d) + "\n").length;
}

function readLines(path: string): EventDocument[] {
  const text = Deno.readTextFileSync(path);
  return text.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as EventDocument);
}

function seqs(path: string): unknown[] {
  return readLines(path).map((d) => d.tracer_data.seq);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function withTempDir(fn: (dir: string) => void | Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-storage-" });
  try {
    await fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** A logger that keeps its lines (Debug and up). */
function captureLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return Object.assign(createLogger({ level: "Debug", write: (l) => lines.push(l) }), { lines });
}

/** A document of about `bytes` bytes (a filler in tracer_data). */
function bigDoc(tracerName: string, seq: number, bytes: number): EventDocument {
  const d = doc(tracerName, seq);
  return { ...d, tracer_data: { seq, pad: "x".repeat(bytes) } };
}

/** Every line of a file parses (no partial or glued lines) and the file ends with a newline. */
function assertWholeLines(path: string): unknown[] {
  const text = Deno.readTextFileSync(path);
  assert(text === "" || text.endsWith("\n"), `${path} ends inside a line`);
  return text.split("\n").filter((l) => l !== "").map((l) =>
    (JSON.parse(l) as EventDocument).tracer_data.seq
  );
}

/** The disk-full tests mount a tmpfs (a disk that really fills up, short writes included): root only. */
const NEEDS_ROOT = Deno.uid() !== 0;
if (NEEDS_ROOT) console.warn("localfile tmpfs tests skipped: mounting a tmpfs needs root");

function run(cmd: string, ...args: string[]): void {
  const out = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).outputSync();
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A tmpfs of `size` (e.g. "64k") mounted on a fresh temp dir: a disk that really fills up. */
async function withTmpfs(size: string, fn: (dir: string) => void | Promise<void>, opts = ""): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-storage-tmpfs-" });
  try {
    run("mount", "-t", "tmpfs", "-o", `size=${size}${opts ? "," + opts : ""}`, "tmpfs", dir);
    try {
      await fn(dir);
    } finally {
      run("umount", dir);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** Writes zeros to `path` until the file system is full. */
function fill(path: string): void {
  const f = Deno.openSync(path, { write: true, create: true });
  const block = new Uint8Array(512);
  try {
    for (;;) f.writeSync(block);
  } catch (err) {
    if (!String(err).includes("No space left")) throw err;
  } finally {
    f.close();
  }
}

Deno.test("documents round-trip as JSON lines and are on disk before write returns", async () => {
  await withTempDir((dir) => {
    const store = new LocalFileStore({ path: dir, rotationSize: 100, maxRotation: 10 });
    const written = [doc("oom", 1), doc("oom", 2), doc("oom", 3)];
    for (const d of written) {
      assertStrictEquals(store.write(d), true);
      // Read back without closing: the line must already be on disk.
      assertEquals(readLines(`${dir}/oom`).at(-1), d);
    }
    assertEquals(readLines(`${dir}/oom`), written);
    store.close();
  });
});

Deno.test("one file per tracer under Path", async () => {
  await withTempDir((dir) => {
    const store = new LocalFileStore({ path: dir, rotationSize: 100, maxRotation: 10 });
    store.write(doc("oom", 1));
    store.write(doc("softlockup", 2));
    store.write(doc("oom", 3));
    store.close();
    assertEquals(seqs(`${dir}/oom`), [1, 3]);
    assertEquals(seqs(`${dir}/softlockup`), [2]);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assertEquals(names, ["oom", "softlockup"]);
  });
});

Deno.test("missing directory is created with mode 0755", async () => {
  await withTempDir((dir) => {
    const path = `${dir}/a/b`;
    const old = Deno.umask(0o022);
    try {
      const store = new LocalFileStore({ path, rotationSize: 1, maxRotation: 1 });
      store.write(doc("oom", 1));
      store.close();
    } finally {
      Deno.umask(old);
    }
    assertStrictEquals((Deno.statSync(path).mode ?? 0) & 0o777, 0o755);
    assertEquals(seqs(`${path}/oom`), [1]);
  });
});

Deno.test("rotation happens exactly when the next write would exceed the limit", async () => {
  await withTempDir((dir) => {
    const n = lineBytes(doc("oom", 1));
    // Room for exactly two lines: the second fills the file to the limit, the third rotates.
    const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 3, rotationBytes: 2 * n });
    store.write(doc("oom", 1));
    store.write(doc("oom", 2));
    assertStrictEquals(Deno.statSync(`${dir}/oom`).size, 2 * n);
    assert(!exists(`${dir}/oom.1`), "a file at exactly the limit is not rotated");
    store.write(doc("oom", 3));
    assertEquals(seqs(`${dir}/oom.1`), [1, 2]);
    assertEquals(seqs(`${dir}/oom`), [3]);
    store.close();
  });
});

Deno.test("one byte short of room rotates", async () => {
  await withTempDir((dir) => {
    const n = lineBytes(doc("oom", 1));
    const store = new LocalFileStore({
      path: dir,
      rotationSize: 1,
      maxRotation: 3,
      rotationBytes: 2 * n - 1,
    });
    store.write(doc("oom", 1));
    store.write(doc("oom", 2));
    assertEquals(seqs(`${dir}/oom.1`), [1]);
    assertEquals(seqs(`${dir}/oom`), [2]);
    store.close();
  });
});

Deno.test("a line larger than the limit is still written to an empty file", async () => {
  await withTempDir((dir) => {
    const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 2, rotationBytes: 10 });
    store.write(doc("oom", 1));
    assertEquals(seqs(`${dir}/oom`), [1]);
    assert(!exists(`${dir}/oom.1`), "an empty file is never rotated");
    store.write(doc("oom", 2));
    assertEquals(seqs(`${dir}/oom.1`), [1]);
    assertEquals(seqs(`${dir}/oom`), [2]);
    store.close();
  });
});

Deno.test("keeps exactly MaxRotation old files, newest in .1", async () => {
  await withTempDir((dir) => {
    const n = lineBytes(doc("oom", 1));
    // One line per file, so every write after the first rotates.
    const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 3, rotationBytes: n });
    for (let i = 1; i <= 7; i++) store.write(doc("oom", i));
    store.close();
    assertEquals(seqs(`${dir}/oom`), [7]);
    assertEquals(seqs(`${dir}/oom.1`), [6]);
    assertEquals(seqs(`${dir}/oom.2`), [5]);
    assertEquals(seqs(`${dir}/oom.3`), [4]);
    assert(!exists(`${dir}/oom.4`), "beyond MaxRotation is deleted");
    assertEquals([...Deno.readDirSync(dir)].length, 4);
  });
});

Deno.test("MaxRotation 0 keeps no old files", async () => {
  await withTempDir((dir) => {
    const n = lineBytes(doc("oom", 1));
    const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 0, rotationBytes: n });
    for (let i = 1; i <= 3; i++) store.write(doc("oom", i));
    store.close();
    assertEquals(seqs(`${dir}/oom`), [3]);
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["oom"]);
  });
});

Deno.test("rotation of one tracer leaves others alone", async () => {
  await withTempDir((dir) => {
    const n = lineBytes(doc("oom", 1));
    const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 2, rotationBytes: n });
    store.write(doc("hungtask", 1));
    store.write(doc("oom", 1));
    store.write(doc("oom", 2));
    store.close();
    assertEquals(seqs(`${dir}/hungtask`), [1]);
    assert(!exists(`${dir}/hungtask.1`));
    assertEquals(seqs(`${dir}/oom.1`), [1]);
  });
});

Deno.test("reopening an existing file continues its size accounting", async () => {
  await withTempDir((dir) => {
    const n = lineBytes(doc("oom", 1));
    const opts = { path: dir, rotationSize: 1, maxRotation: 2, rotationBytes: 2 * n };
    const first = new LocalFileStore(opts);
    first.write(doc("oom", 1));
    first.close();
    const second = new LocalFileStore(opts);
    second.write(doc("oom", 2));
    assert(!exists(`${dir}/oom.1`), "still within the limit after reopen");
    second.write(doc("oom", 3));
    second.close();
    assertEquals(seqs(`${dir}/oom.1`), [1, 2]);
    assertEquals(seqs(`${dir}/oom`), [3]);
  });
});

Deno.test("size is tracked in memory, not re-stat'ed per write", async () => {
  await withTempDir((dir) => {
    const n = lineBytes(doc("oom", 1));
    const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 2, rotationBytes: 2 * n });
    store.write(doc("oom", 1));
    // Growth behind the store's back is invisible until the next open.
    Deno.writeTextFileSync(`${dir}/oom`, "x".repeat(10 * n), { append: true });
    store.write(doc("oom", 2));
    assert(!exists(`${dir}/oom.1`));
    store.close();
  });
});

Deno.test("empty Path disables the store", async () => {
  await withTempDir((dir) => {
    const store = new LocalFileStore({ path: "", rotationSize: 100, maxRotation: 10 });
    assertStrictEquals(store.enabled, false);
    assertStrictEquals(store.write(doc("oom", 1)), false);
    store.close();
    assertEquals([...Deno.readDirSync(dir)].length, 0);
    assert(!exists("oom"), "nothing written to the working directory");
  });
});

Deno.test("a failed write names the path, is counted and never throws", async () => {
  await withTempDir((dir) => {
    // A regular file where the directory should be makes mkdir fail.
    const blocker = `${dir}/blocker`;
    Deno.writeTextFileSync(blocker, "");
    const log = captureLog();
    const store = new LocalFileStore({ path: `${blocker}/sub`, rotationSize: 1, maxRotation: 1, log });
    assertStrictEquals(store.write(doc("oom", 1)), false);
    assertEquals(store.stats().get("oom"), { written: 0, failed: 1 });
    assertEquals(log.lines.length, 1);
    assertMatch(log.lines[0], /level=error .*tracer=oom .*localfile: mkdir .*blocker\/sub/);
    store.close();
  });
});

Deno.test("unsafe tracer names are rejected", async () => {
  await withTempDir((dir) => {
    const log = captureLog();
    const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 1, log });
    for (const name of ["", ".", "..", "../x", "a/b"]) {
      assertStrictEquals(store.write(doc(name, 1)), false);
      assertEquals(store.stats().get(name)?.failed, 1);
    }
    assert(log.lines.every((l) => l.includes("invalid tracer name")), log.lines.join(""));
    store.close();
    assertEquals([...Deno.readDirSync(dir)].length, 0);
  });
});

Deno.test("options come from config.Storage.LocalFile", () => {
  const config = defaultConfig();
  assertEquals(localFileOptions(config), { path: "huatuo-local", rotationSize: 100, maxRotation: 10 });
  assertStrictEquals(LocalFileStore.fromConfig(config).enabled, true);
});

Deno.test({
  name: "ENOSPC (64k tmpfs): a short write is cut back, failures counted and logged once per streak",
  ignore: NEEDS_ROOT,
  async fn() {
    await withTmpfs("64k", (dir) => {
      const log = captureLog();
      const store = new LocalFileStore({ path: dir, rotationSize: 100, maxRotation: 1, log });
      // ~1.5 KB lines: the disk fills inside a line, so the first failure is a short write.
      let seq = 0;
      const ok: number[] = [];
      let firstFailure = 0;
      while (firstFailure === 0) {
        seq++;
        if (store.write(bigDoc("oom", seq, 1500))) ok.push(seq);
        else firstFailure = seq;
      }
      assert(ok.length > 10, `${ok.length} lines fit in 64k`);
      assertEquals(assertWholeLines(`${dir}/oom`), ok, "the failed line left no part behind");
      // More failures: counted, not logged again.
      for (let i = 0; i < 20; i++) assertStrictEquals(store.write(bigDoc("oom", ++seq, 1500)), false);
      assertEquals(store.stats().get("oom"), { written: ok.length, failed: 21 });
      assertEquals(assertWholeLines(`${dir}/oom`), ok);
      const errors = log.lines.filter((l) => l.includes("level=error"));
      assertEquals(errors.length, 1, log.lines.join(""));
      assertMatch(errors[0], new RegExp(`tracer=oom path=${dir}/oom .*No space left on device`));

      // Free space (rotation to .1 keeps the old lines; deleting them makes room).
      Deno.truncateSync(`${dir}/oom`, 0);
      assertStrictEquals(store.write(bigDoc("oom", ++seq, 1500)), true);
      assertStrictEquals(store.write(bigDoc("oom", ++seq, 1500)), true);
      assertEquals(assertWholeLines(`${dir}/oom`), [seq - 1, seq]);
      const info = log.lines.filter((l) => l.includes("level=info"));
      assertEquals(info.length, 1, log.lines.join(""));
      assertMatch(info[0], /msg="local file written again" tracer=oom .* lost=21/);
      assertEquals(store.stats().get("oom"), { written: ok.length + 2, failed: 21 });
      store.close();
    });
  },
});

Deno.test({
  name: "ENOSPC: every failed line is cut, whatever its size and wherever the disk fills",
  ignore: NEEDS_ROOT,
  async fn() {
    await withTmpfs("64k", (dir) => {
      const store = new LocalFileStore({ path: dir, rotationSize: 100, maxRotation: 1 });
      // Sizes that do and do not fit what is left of the last page, interleaved.
      const sizes = [3000, 200, 5000, 50, 900, 7000, 10, 2500];
      const ok: number[] = [];
      for (let seq = 1; seq <= 400; seq++) {
        if (store.write(bigDoc("oom", seq, sizes[seq % sizes.length]))) ok.push(seq);
      }
      const s = store.stats().get("oom")!;
      assertEquals(s.written + s.failed, 400);
      assert(s.failed > 0 && s.written > 0, JSON.stringify(s));
      assertEquals(assertWholeLines(`${dir}/oom`), ok);
      store.close();
    });
  },
});

Deno.test("an unterminated last line (crash mid-write) is cut when the file is opened", async () => {
  await withTempDir((dir) => {
    const first = JSON.stringify(doc("oom", 1)) + "\n";
    Deno.writeTextFileSync(`${dir}/oom`, first + '{"hostname":"h","trac');
    const log = captureLog();
    const store = new LocalFileStore({ path: dir, rotationSize: 100, maxRotation: 1, log });
    store.write(doc("oom", 2));
    assertEquals(assertWholeLines(`${dir}/oom`), [1, 2]);
    assertMatch(
      log.lines.join(""),
      /level=warn msg="local file: cut an unterminated last line" path=\S+\/oom bytes=21/,
    );
    store.close();
    // No newline at all: the whole file is a partial line.
    Deno.writeTextFileSync(`${dir}/dropwatch`, "x".repeat(200_000));
    const again = new LocalFileStore({ path: dir, rotationSize: 100, maxRotation: 1 });
    again.write(doc("dropwatch", 3));
    again.close();
    assertEquals(assertWholeLines(`${dir}/dropwatch`), [3]);
    // A newline far back (more than one read chunk): cut right after it.
    Deno.writeTextFileSync(`${dir}/hungtask`, first + "y".repeat(150_000));
    const third = new LocalFileStore({ path: dir, rotationSize: 100, maxRotation: 1 });
    third.write(doc("hungtask", 4));
    third.close();
    assertEquals(assertWholeLines(`${dir}/hungtask`), [1, 4]);
  });
});

Deno.test("failure streaks: ERROR once, INFO with the lost count, a flapping file logs at most once a minute", async () => {
  await withTempDir((dir) => {
    const log = captureLog();
    let now = 0;
    const store = new LocalFileStore({ path: dir, rotationSize: 100, maxRotation: 1, log, now: () => now });
    const level = (l: string) => /level=(\w+)/.exec(l)![1];
    const levels = () => log.lines.map(level).filter((l) => l !== "debug");
    // A directory where the tracer's file should be: open fails until it is removed.
    const block = () => {
      store.close();
      Deno.removeSync(`${dir}/oom`);
      Deno.mkdirSync(`${dir}/oom`);
    };
    const unblock = () => Deno.removeSync(`${dir}/oom`);
    assertStrictEquals(store.write(doc("oom", 1)), true);
    block();
    for (let i = 0; i < 5; i++) assertStrictEquals(store.write(doc("oom", 2)), false);
    // Another tracer is unaffected and has its own streak.
    assertStrictEquals(store.write(doc("softlockup", 1)), true);
    unblock();
    assertStrictEquals(store.write(doc("oom", 3)), true);
    assertEquals(levels(), ["error", "info"]);
    assertMatch(log.lines.at(-1)!, /lost=5/);
    // Fails again 10 s later: a new streak, but its ERROR is suppressed (and so is its recovery).
    now += 10_000;
    block();
    assertStrictEquals(store.write(doc("oom", 4)), false);
    assertStrictEquals(store.write(doc("oom", 5)), false);
    unblock();
    assertStrictEquals(store.write(doc("oom", 6)), true);
    assertEquals(levels(), ["error", "info"]);
    // A minute after the first ERROR: logged again; its INFO counts the quiet streak's losses too.
    now += 60_000;
    block();
    assertStrictEquals(store.write(doc("oom", 7)), false);
    unblock();
    assertStrictEquals(store.write(doc("oom", 8)), true);
    assertEquals(levels(), ["error", "info", "error", "info"]);
    assertMatch(log.lines.at(-1)!, /lost=3/);
    assertEquals(store.stats().get("oom"), { written: 4, failed: 8 });
    assertEquals(store.stats().get("softlockup"), { written: 1, failed: 0 });
    store.close();
  });
});

Deno.test("check(): creates a missing Path; an unwritable one is one WARN naming the path and cause", async () => {
  await withTempDir((dir) => {
    const log = captureLog();
    const fresh = new LocalFileStore({ path: `${dir}/new/sub`, rotationSize: 1, maxRotation: 1, log });
    assertStrictEquals(fresh.check(), undefined);
    assert(Deno.statSync(`${dir}/new/sub`).isDirectory);
    assertEquals([...Deno.readDirSync(`${dir}/new/sub`)], [], "the probe file is removed");
    assertEquals(log.lines, []);

    Deno.writeTextFileSync(`${dir}/blocker`, "");
    const blocked = new LocalFileStore({ path: `${dir}/blocker/sub`, rotationSize: 1, maxRotation: 1, log });
    assertMatch(blocked.check()!, /cannot create the directory/);
    assertEquals(log.lines.length, 1);
    assertMatch(
      log.lines[0],
      new RegExp(`level=warn msg="Storage.LocalFile.Path is not writable.*" path=${dir}/blocker/sub error=`),
    );
    assertStrictEquals(
      new LocalFileStore({ path: "", rotationSize: 1, maxRotation: 1, log }).check(),
      undefined,
    );
  });
});

Deno.test({
  name: "check(): a read-only or full Path is reported",
  ignore: NEEDS_ROOT,
  async fn() {
    await withTmpfs("64k", (dir) => {
      const log = captureLog();
      const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 1, log });
      assertMatch(store.check()!, /cannot write a file in it: .*[Rr]ead-only/);
      assertMatch(log.lines.join(""), /level=warn .*Read-only file system/);
    }, "ro");
    await withTmpfs("64k", (dir) => {
      fill(`${dir}/filler`);
      const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 1 });
      assertMatch(store.check()!, /No space left on device/);
      assertEquals([...Deno.readDirSync(dir)].map((e) => e.name), ["filler"], "no probe file left behind");
    });
  },
});

Deno.test("storage_local metrics: written and failed per tracer; none when disabled", async () => {
  await withTempDir(async (dir) => {
    const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 1 });
    store.write(doc("oom", 1));
    store.write(doc("oom", 2));
    store.write(doc("a/b", 3));
    const samples = await localFileCollector(store).collect();
    assertEquals(samples.map((s) => [s.name, s.type, s.labels?.tracer, s.value]), [
      ["storage_local_written_total", "counter", "a/b", 0],
      ["storage_local_failed_total", "counter", "a/b", 1],
      ["storage_local_written_total", "counter", "oom", 2],
      ["storage_local_failed_total", "counter", "oom", 0],
    ]);
    // Enabled tracers are there at 0 before their first document.
    const listed = await localFileCollector(store, ["hungtask", "oom"]).collect();
    assertEquals(listed.map((s) => [s.name, s.labels?.tracer, s.value]), [
      ["storage_local_written_total", "a/b", 0],
      ["storage_local_failed_total", "a/b", 1],
      ["storage_local_written_total", "hungtask", 0],
      ["storage_local_failed_total", "hungtask", 0],
      ["storage_local_written_total", "oom", 2],
      ["storage_local_failed_total", "oom", 0],
    ]);
    store.close();
    const off = new LocalFileStore({ path: "", rotationSize: 1, maxRotation: 1 });
    off.write(doc("oom", 1));
    assertEquals(await localFileCollector(off).collect(), []);
  });
});
