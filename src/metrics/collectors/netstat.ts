// Tcp_* (from net/snmp) and TcpExt_* (from net/netstat) of the host net
// namespace; filtered on "Tcp_ActiveOpens"-style names by MetricCollector.Netstat.

import { parseProtoStats } from "../../host/netstat.ts";
import { defineCollector } from "../collector.ts";
import { NameFilter } from "../filter.ts";
import { gauge, type Sample } from "../sample.ts";

const SOURCES = [["1/net/snmp", "Tcp"], ["1/net/netstat", "TcpExt"]] as const;

export default defineCollector("netstat", ({ fs, config }) => {
  const filter = new NameFilter(
    config.MetricCollector.Netstat.Included,
    config.MetricCollector.Netstat.Excluded,
  );
  return {
    async collect() {
      const out: Sample[] = [];
      const texts = await Promise.all(SOURCES.map(([rel]) => fs.readText(fs.proc(rel))));
      SOURCES.forEach(([rel, proto], i) => {
        const fields = parseProtoStats(texts[i], fs.proc(rel)).get(proto);
        if (!fields) throw new Error(`${fs.proc(rel)}: no ${proto} section`);
        for (const [field, value] of fields) {
          const key = `${proto}_${field}`;
          if (filter.accepts(key)) out.push(gauge(`netstat_${key}`, `statistic ${proto}${field}.`, value));
        }
      });
      return out;
    },
  };
});
