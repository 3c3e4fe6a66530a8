import { assert, assertEquals } from "../../testing/assert.ts";
import { Registry } from "../metrics/registry.ts";
import { silentLogger } from "../log/logger.ts";
import { parseMaxFds, parseProcStat, parseVmRss, processCollector } from "./process.ts";

Deno.test("parseProcStat: comm with spaces and parentheses", () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  fields[14 - 3] = "250"; // utime
  fields[15 - 3] = "50"; // stime
  fields[22 - 3] = "12345"; // starttime
  fields[23 - 3] = "1048576"; // vsize
  const s = parseProcStat(`42 (a (b) c) ${fields.join(" ")}\n`);
  assertEquals(s, { cpuSeconds: 3, startAfterBootSeconds: 123.45, virtualBytes: 1048576 });
});

Deno.test("parseVmRss and parseMaxFds", () => {
  assertEquals(parseVmRss("Name:\tx\nVmRSS:\t    2048 kB\n"), 2 * 1024 * 1024);
  assertEquals(
    parseMaxFds("Max open files            1024                 524288               files\n"),
    1024,
  );
  assertEquals(
    parseMaxFds("Max open files            unlimited            unlimited            files\n"),
    Infinity,
  );
});

Deno.test("process collector: unprefixed standard names from this process", async () => {
  const reg = new Registry({ host: "h" }, silentLogger);
  reg.register(processCollector());
  const { text } = await reg.scrape();
  for (
    const name of [
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "process_virtual_memory_bytes",
      "process_start_time_seconds",
      "process_open_fds",
      "process_max_fds",
    ]
  ) {
    assert(new RegExp(`^${name}\\{host="h"\\} [0-9.e+]+$`, "m").test(text), `${name} in\n${text}`);
  }
  const start = Number(/^process_start_time_seconds\{[^}]*\} (\S+)$/m.exec(text)![1]);
  // This process started within the last hour, not at boot or in the future.
  assert(Math.abs(Date.now() / 1000 - start) < 3600, `start ${start}`);
  // The registry's own series stay prefixed.
  assert(/^huatuo_bamai_scrape_collector_success\{collector="process",host="h"\} 1$/m.test(text), text);
});
