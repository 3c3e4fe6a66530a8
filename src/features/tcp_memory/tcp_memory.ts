// TCP memory: the limit is the third value of net.ipv4.tcp_mem (pages); usage
// is the "TCP: mem" page count of net/sockstat.

import { SourceError } from "../../host/fs.ts";
import { parseSockStat } from "../../host/sockstat.ts";
import { pageSize } from "../../../ffi/libc.ts";
import { metricsFeature } from "../feature.ts";
import { gauge } from "../../core/sample.ts";

export function parseTcpMem(text: string, path = "tcp_mem"): number {
  const f = text.trim().split(/\s+/);
  if (f.length !== 3 || f.some((x) => !/^\d+$/.test(x))) {
    throw new SourceError(path, `expected "min pressure max" pages, found ${JSON.stringify(text.trim())}`);
  }
  return Number(f[2]);
}

export default metricsFeature("tcp_memory", ({ fs }) => {
  const page = pageSize();
  return {
    async collect() {
      const memPath = fs.proc("sys/net/ipv4/tcp_mem");
      const sockPath = fs.proc("1/net/sockstat");
      const [memText, sockText] = await Promise.all([fs.readText(memPath), fs.readText(sockPath)]);
      const limit = parseTcpMem(memText, memPath);
      const usage = parseSockStat(sockText, sockPath).get("TCP")?.get("mem");
      if (usage === undefined) throw new SourceError(sockPath, 'no "TCP: ... mem N" field');
      return [
        gauge("tcp_memory_limit_pages", "tcp memory pages limit", limit),
        gauge("tcp_memory_usage_bytes", "tcp memory bytes usage", usage * page),
        gauge("tcp_memory_usage_pages", "tcp memory pages usage", usage),
        gauge("tcp_memory_usage_percent", "tcp memory usage percent", limit > 0 ? usage / limit * 100 : 0),
      ];
    },
  };
});
