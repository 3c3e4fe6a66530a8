// Read-only state of the mount points matched by
// MetricCollector.MountPointStat.MountPointsIncluded, in the host mount
// namespace (/proc/1/mountinfo): 1 when a key filesystem was remounted ro.

import { parseMountInfo } from "../../host/mountinfo.ts";
import { metricsFeature } from "../feature.ts";
import { NameFilter } from "../../metrics/filter.ts";
import { gauge, type Sample } from "../../core/sample.ts";

export default metricsFeature("mountpoint_perm", ({ fs, config }) => {
  const filter = new NameFilter(config.MetricCollector.MountPointStat.MountPointsIncluded, "");
  return {
    async collect() {
      const path = fs.proc("1/mountinfo");
      const seen = new Map<string, Sample>();
      for (const m of parseMountInfo(await fs.readText(path), path)) {
        if (!filter.accepts(m.mountPoint)) continue;
        const ro = m.options.includes("ro") || m.superOptions.includes("ro") ? 1 : 0;
        // Over-mounts repeat a path; the last one listed is the one visible.
        seen.set(
          m.mountPoint,
          gauge("mountpoint_perm_ro", "whether the mount point is read-only", ro, {
            mountpoint: m.mountPoint,
          }),
        );
      }
      return [...seen.values()];
    },
  };
});
