import { defaultConfig } from "../config/schema.ts";
import { assert, assertEquals, assertStrictEquals, assertThrows } from "../testing/assert.ts";
import { type EventDocument, newDocument } from "./document.ts";
import { localFileOptions, LocalFileStore } from "./localfile.ts";

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

Deno.test("errors name the path", async () => {
  await withTempDir((dir) => {
    // A regular file where the directory should be makes mkdir fail.
    const blocker = `${dir}/blocker`;
    Deno.writeTextFileSync(blocker, "");
    const store = new LocalFileStore({ path: `${blocker}/sub`, rotationSize: 1, maxRotation: 1 });
    assertThrows(() => store.write(doc("oom", 1)), /localfile: mkdir .*blocker\/sub/);
    store.close();
  });
});

Deno.test("unsafe tracer names are rejected", async () => {
  await withTempDir((dir) => {
    const store = new LocalFileStore({ path: dir, rotationSize: 1, maxRotation: 1 });
    for (const name of ["", ".", "..", "../x", "a/b"]) {
      assertThrows(() => store.write(doc(name, 1)), /invalid tracer name/);
    }
    store.close();
    assertEquals([...Deno.readDirSync(dir)].length, 0);
  });
});

Deno.test("options come from config.Storage.LocalFile", () => {
  const config = defaultConfig();
  assertEquals(localFileOptions(config), { path: "huatuo-local", rotationSize: 100, maxRotation: 10 });
  assertStrictEquals(LocalFileStore.fromConfig(config).enabled, true);
});
