// Block device I/O from /proc/diskstats: one series per line (whole disks,
// partitions, loop, md, dm, nvme ...), label device = the kernel's name, and
// the host's iowait percent over the same fixed /proc/stat window as cpu_util
// (src/host/stat_window.ts), so every scraper reads the same value. Until the
// first window completes (5 s after start) iowait is the since-boot average.

import { type DiskStat, parseDiskstats, SECTOR_BYTES } from "../../host/diskstats.ts";
import { iowaitPercent, ZERO_CPU_TIMES } from "../../host/stat.ts";
import { acquireCpuWindow } from "../../host/stat_window.ts";
import { counter, gauge, type Sample } from "../../core/sample.ts";
import { metricsFeature } from "../feature.ts";

/** The per-device series of one diskstats line. */
export function diskSamples(d: DiskStat): Sample[] {
  const labels = { device: d.name };
  return [
    counter("diskio_read_requests_total", "Reads completed successfully.", d.readIos, labels),
    counter("diskio_write_requests_total", "Writes completed successfully.", d.writeIos, labels),
    counter(
      "diskio_read_bytes_total",
      "Bytes read (sectors read x 512).",
      d.readSectors * SECTOR_BYTES,
      labels,
    ),
    counter(
      "diskio_written_bytes_total",
      "Bytes written (sectors written x 512).",
      d.writeSectors * SECTOR_BYTES,
      labels,
    ),
    counter(
      "diskio_read_time_seconds_total",
      "Time spent reading, all reads summed.",
      d.readTicks / 1000,
      labels,
    ),
    counter(
      "diskio_write_time_seconds_total",
      "Time spent writing, all writes summed.",
      d.writeTicks / 1000,
      labels,
    ),
    gauge("diskio_io_in_progress", "I/Os currently in flight.", d.inFlight, labels),
  ];
}

export default metricsFeature("diskio", ({ fs }) => {
  const cpu = acquireCpuWindow(fs);
  return {
    async collect() {
      const path = fs.proc("diskstats");
      const disks = parseDiskstats(await fs.readText(path), path);
      const { start, end } = cpu.window();
      // A window whose counters went backwards (never expected) falls back to since boot.
      const iowait = (start && iowaitPercent(start, end)) ?? iowaitPercent(ZERO_CPU_TIMES, end) ?? 0;
      return [
        ...disks.flatMap(diskSamples),
        gauge(
          "diskio_disk_iowait_percent",
          "Percent of CPU time idle with I/O outstanding (all CPUs).",
          iowait,
        ),
      ];
    },
    close: () => cpu.release(),
  };
});
