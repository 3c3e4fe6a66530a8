import { assert, assertEquals, assertMatch } from "../../testing/assert.ts";
import { createLogger, formatLine } from "./logger.ts";

Deno.test("formatLine: logfmt with quoting only where needed", () => {
  const t = new Date("2025-01-02T03:04:05.000Z");
  assertEquals(
    formatLine(t, "Info", "hello world", { a: 1, b: "x y", c: undefined, d: true }),
    'time=2025-01-02T03:04:05.000Z level=info msg="hello world" a=1 b="x y" d=true\n',
  );
});

Deno.test("reopen: after the file is moved away (logrotate), new lines go to a new file at the path", () => {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-log-" });
  const path = `${dir}/agent.log`;
  const console: string[] = [];
  const log = createLogger({ level: "Info", file: path, write: (l) => console.push(l) });
  try {
    log.info("before rotation");
    Deno.renameSync(path, `${path}.1`);
    log.info("still to the moved file");
    log.reopen();
    log.info("after rotation");
    const old = Deno.readTextFileSync(`${path}.1`);
    const fresh = Deno.readTextFileSync(path);
    assertMatch(old, /before rotation[\s\S]*still to the moved file/);
    assert(!old.includes("after rotation"));
    assertMatch(fresh, /msg="log file reopened" file=\S+agent\.log\n.*msg="after rotation"/);
    assertEquals(console.length, 4);
  } finally {
    log.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("reopen: a path that cannot be opened leaves stderr logging on; a later reopen recovers", () => {
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-log-" });
  const path = `${dir}/sub/agent.log`;
  Deno.mkdirSync(`${dir}/sub`);
  const console: string[] = [];
  const log = createLogger({ level: "Info", file: path, write: (l) => console.push(l) });
  try {
    Deno.removeSync(`${dir}/sub`, { recursive: true });
    log.reopen();
    assertMatch(console.at(-1)!, /level=error msg="cannot reopen log file"/);
    log.info("stderr only");
    Deno.mkdirSync(`${dir}/sub`);
    log.reopen();
    log.info("back in the file");
    assertMatch(Deno.readTextFileSync(path), /log file reopened[\s\S]*back in the file/);
  } finally {
    log.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("reopen without Log.File, or after close, does nothing", () => {
  const console: string[] = [];
  const log = createLogger({ level: "Info", write: (l) => console.push(l) });
  log.reopen();
  assertEquals(console, []);
  const dir = Deno.makeTempDirSync({ prefix: "huatuo-log-" });
  const path = `${dir}/agent.log`;
  const filed = createLogger({ level: "Info", file: path, write: () => {} });
  filed.close();
  Deno.removeSync(path);
  filed.reopen();
  let exists = true;
  try {
    Deno.statSync(path);
  } catch {
    exists = false;
  }
  assert(!exists, "closed logger recreated its file");
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("formatLine: a field named like time, level or msg never repeats the key", () => {
  const t = new Date("2026-01-02T03:04:05.000Z");
  const line = formatLine(t, "Debug", "libbpf", {
    level: "warn",
    msg: "libbpf: x",
    time: 1,
    libbpf_level: "debug",
  });
  const keys = [...line.trimEnd().matchAll(/(?:^| )([a-z_]+)=/g)].map((m) => m[1]);
  assertEquals(keys, ["time", "level", "msg", "field_level", "field_msg", "field_time", "libbpf_level"]);
  assertEquals(new Set(keys).size, keys.length);
});
