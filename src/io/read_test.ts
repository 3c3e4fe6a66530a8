import { assert, assertEquals, assertMatch, assertRejects, assertThrows } from "../../testing/assert.ts";
import {
  fileKind,
  formatBytes,
  NotRegularFileError,
  readFileBounded,
  readFileBoundedSync,
  ReadLimitError,
  readRegularFile,
  readRegularFileSync,
} from "./read.ts";
import { HostFs, MAX_PROC_FILE_BYTES, SourceError } from "../host/fs.ts";

function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("did not throw");
}

async function rejected(fn: () => Promise<unknown>): Promise<Error> {
  try {
    await fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error("did not reject");
}

function tempDir(): string {
  return Deno.makeTempDirSync({ prefix: "huatuo-read-" });
}

Deno.test("formatBytes writes limits as people do", () => {
  assertEquals(formatBytes(16 * 1024 * 1024), "16 MiB");
  assertEquals(formatBytes(4096), "4 KiB");
  assertEquals(formatBytes(1000), "1000 bytes");
});

Deno.test("bounded reads return whole files up to the limit, across the scratch buffer and chunk sizes", async () => {
  const dir = tempDir();
  try {
    for (const size of [0, 1, 4095, 65536, 65537, 200_000]) {
      const data = new Uint8Array(size).map((_, i) => i % 251);
      const path = `${dir}/f${size}`;
      Deno.writeFileSync(path, data);
      assertEquals(readFileBoundedSync(path, size), data, `sync ${size}`);
      assertEquals(await readFileBounded(path, size), data, `async ${size}`);
      assertEquals(readFileBoundedSync(path, size + 10), data);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("one byte past the limit is refused; /dev/zero stops at the limit", async () => {
  const dir = tempDir();
  try {
    const path = `${dir}/f`;
    Deno.writeFileSync(path, new Uint8Array(100_001));
    const e = caught(() => readFileBoundedSync(path, 100_000));
    assert(e instanceof ReadLimitError && e.limit === 100_000, String(e));
    await assertRejects(() => readFileBounded(path, 100_000), ReadLimitError);
    // An endless file: the read ends at the bound instead of growing the heap.
    assertThrows(() => readFileBoundedSync("/dev/zero", 1024 * 1024), /larger than 1 MiB/);
    await assertRejects(() => readFileBounded("/dev/zero", 1024 * 1024), ReadLimitError);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("procfs files (size 0 in stat) are read whole", () => {
  const text = new TextDecoder().decode(readFileBoundedSync("/proc/self/status", MAX_PROC_FILE_BYTES));
  assertMatch(text, /^Name:/);
});

Deno.test("HostFs reads are bounded and name the path", async () => {
  const fs = new HostFs();
  const sync = caught(() => fs.readTextSync("/dev/zero"));
  assert(sync instanceof SourceError);
  assertEquals(sync.message, "/dev/zero: larger than 16 MiB");
  const async = await rejected(() => fs.readText("/dev/zero"));
  assert(async instanceof SourceError);
  assertEquals(async.message, "/dev/zero: larger than 16 MiB");
  assertThrows(() => fs.readTextSync("/nonexistent/x"), /no such file or directory/);
  assertMatch(await fs.readText("/proc/self/stat"), /^\d+ \(/);
});

Deno.test("readRegularFile refuses devices, FIFOs and directories without opening them", async () => {
  const dir = tempDir();
  const fifo = `${dir}/fifo`;
  try {
    const mk = new Deno.Command("mkfifo", { args: [fifo] }).outputSync();
    assert(mk.success, "mkfifo");
    for (
      const [path, kind] of [["/dev/zero", "a character device"], [fifo, "a FIFO"], [dir, "a directory"]]
    ) {
      const e = caught(() => readRegularFileSync(path, 1024));
      assert(e instanceof NotRegularFileError && e.kind === kind, String(e));
      // Opening a FIFO for reading blocks until a writer comes: this must return at once.
      const a = await rejected(() => readRegularFile(path, 1024));
      assert(a instanceof NotRegularFileError);
      assertEquals(a.message, `not a regular file (${kind})`);
    }
    assertEquals(fileKind(Deno.statSync("/dev/null")), "a character device");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("readRegularFile refuses a file over the limit from its size alone (a 1 GB sparse file)", async () => {
  const dir = tempDir();
  try {
    const path = `${dir}/big`;
    const f = Deno.openSync(path, { write: true, create: true });
    f.truncateSync(1024 * 1024 * 1024);
    f.close();
    const t0 = performance.now();
    await assertRejects(() => readRegularFile(path, 1024 * 1024), /larger than 1 MiB/);
    assertThrows(() => readRegularFileSync(path, 1024 * 1024), ReadLimitError);
    assert(performance.now() - t0 < 500, "refused without reading");
    Deno.writeTextFileSync(`${dir}/ok`, "a = 1\n");
    assertEquals(new TextDecoder().decode(await readRegularFile(`${dir}/ok`, 1024)), "a = 1\n");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
