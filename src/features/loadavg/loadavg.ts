import { parseLoadAvg } from "../../host/loadavg.ts";
import { metricsFeature } from "../feature.ts";
import { loadavgContainer } from "./container.ts";
import { gauge } from "../../core/sample.ts";

export default metricsFeature("loadavg", ({ fs }) => ({
  async collect() {
    const path = fs.proc("loadavg");
    const l = parseLoadAvg(await fs.readText(path), path);
    return [
      gauge("loadavg_load1", "system load average, 1 minute", l.load1),
      gauge("loadavg_load5", "system load average, 5 minutes", l.load5),
      gauge("loadavg_load15", "system load average, 15 minutes", l.load15),
    ];
  },
}), { container: loadavgContainer });
