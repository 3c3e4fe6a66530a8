import { parseBuddyInfo } from "../../host/buddyinfo.ts";
import { metricsFeature } from "../feature.ts";
import { gauge, type Sample } from "../../core/sample.ts";

export default metricsFeature("memory_buddyinfo", ({ fs }) => ({
  async collect() {
    const path = fs.proc("buddyinfo");
    const out: Sample[] = [];
    for (const z of parseBuddyInfo(await fs.readText(path), path)) {
      z.blocks.forEach((n, order) => {
        out.push(
          gauge("memory_buddyinfo_blocks", "buddy info", n, {
            node: z.node,
            zone: z.zone,
            order: String(order),
          }),
        );
      });
    }
    return out;
  },
}));
