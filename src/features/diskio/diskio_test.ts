// diskio: every diskstats line becomes seven series (bytes = sectors x 512,
// seconds = ms / 1000), iowait is the fixture's since-boot value and the same
// for back-to-back scrapes; a missing diskstats fails naming it. Every test
// closes its collector (it holds the shared /proc/stat sampler).
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import { context } from "../../../testing/containers.ts";
import diskio from "./diskio.ts";

Deno.test("diskio: the fixture's devices and iowait, identical for back-to-back scrapes", async () => {
  const c = diskio.create(context("fixtures")).collector!;
  try {
    const samples = await c.collect();
    const sda = samples.filter((s) => s.labels?.device === "sda");
    assertEquals(
      sda.map((s) => [s.name, s.type, s.value]),
      [
        ["diskio_read_requests_total", "counter", 240119],
        ["diskio_write_requests_total", "counter", 1105262],
        ["diskio_read_bytes_total", "counter", 14370874 * 512],
        ["diskio_written_bytes_total", "counter", 49728104 * 512],
        ["diskio_read_time_seconds_total", "counter", 118.211],
        ["diskio_write_time_seconds_total", "counter", 1507.764],
        ["diskio_io_in_progress", "gauge", 3],
      ],
    );
    const devices = new Set(samples.map((s) => s.labels?.device).filter((d) => d !== undefined));
    assertEquals(devices.size, 10);
    const iowait = samples.filter((s) => s.name === "diskio_disk_iowait_percent");
    assertEquals(iowait.map((s) => [s.labels, s.value]), [[undefined, 499 / 139297 * 100]]);
    assertEquals(await c.collect(), samples);
  } finally {
    c.close?.();
  }
});

Deno.test("diskio: a missing diskstats fails the collector naming the file", async () => {
  const c = diskio.create(context("fixtures/edge/missing")).collector!;
  try {
    await assertRejects(() => c.collect(), /fixtures\/edge\/missing\/proc\/diskstats: no such file/);
  } finally {
    c.close?.();
  }
});
