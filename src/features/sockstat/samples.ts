// The sockstat series, built from what was read: shared by the host and the container part.

import { parseSockStat } from "../../host/sockstat.ts";
import { gauge, type Labels, type Sample } from "../../core/sample.ts";

/**
 * `<prefix>_<PROTO>_<state>` and `<prefix>_sockets_used` from net/sockstat
 * and (when IPv6 is on) net/sockstat6; `keep` drops fields by protocol and
 * key. Shared with sockstat_container_*.
 */
export function sockstatSamples(
  text4: string,
  path4: string,
  text6: string | undefined,
  path6: string,
  prefix = "sockstat",
  labels?: Labels,
  keep: (proto: string, key: string) => boolean = () => true,
): Sample[] {
  const out: Sample[] = [];
  const tables = [parseSockStat(text4, path4), ...(text6 === undefined ? [] : [parseSockStat(text6, path6)])];
  for (const table of tables) {
    for (const [proto, fields] of table) {
      for (const [key, value] of fields) {
        if (!keep(proto, key)) continue;
        if (proto === "sockets" && key === "used") {
          out.push(gauge(`${prefix}_sockets_used`, "Number of IPv4 sockets in use.", value, labels));
        } else {
          out.push(
            gauge(`${prefix}_${proto}_${key}`, `Number of ${proto} sockets in state ${key}.`, value, labels),
          );
        }
      }
    }
  }
  return out;
}
