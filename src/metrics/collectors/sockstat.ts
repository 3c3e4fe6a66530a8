// Socket usage of the host net namespace from net/sockstat (and net/sockstat6
// when IPv6 is enabled): sockstat_sockets_used, sockstat_TCP_inuse, ...

import { parseSockStat } from "../../host/sockstat.ts";
import { defineCollector } from "../collector.ts";
import { gauge, type Sample } from "../sample.ts";

export default defineCollector("sockstat", ({ fs }) => ({
  async collect() {
    const out: Sample[] = [];
    const v4 = fs.proc("1/net/sockstat");
    const v6 = fs.proc("1/net/sockstat6");
    const [text4, text6] = await Promise.all([fs.readText(v4), fs.readText(v6).catch(() => undefined)]);
    const tables = [parseSockStat(text4, v4), ...(text6 === undefined ? [] : [parseSockStat(text6, v6)])];
    for (const table of tables) {
      for (const [proto, fields] of table) {
        for (const [key, value] of fields) {
          if (proto === "sockets" && key === "used") {
            out.push(gauge("sockstat_sockets_used", "Number of IPv4 sockets in use.", value));
          } else {
            out.push(gauge(`sockstat_${proto}_${key}`, `Number of ${proto} sockets in state ${key}.`, value));
          }
        }
      }
    }
    return out;
  },
}));
