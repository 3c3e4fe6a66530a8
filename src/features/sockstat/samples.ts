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

/**
 * `<PROTO>_mem_bytes` for TCP and UDP: the "mem" field of net/sockstat is in
 * pages (the protocol's memory_allocated), so bytes = pages x the page size
 * (sysconf(_SC_PAGESIZE), not an assumed 4096). A protocol line without "mem"
 * (kernels before 2.6.25 for UDP) gives no series.
 */
export function sockstatMemBytes(
  text4: string,
  path4: string,
  pageBytes: number,
  prefix = "sockstat",
): Sample[] {
  const table = parseSockStat(text4, path4);
  const out: Sample[] = [];
  for (const proto of ["TCP", "UDP"]) {
    const pages = table.get(proto)?.get("mem");
    if (pages === undefined) continue;
    out.push(
      gauge(
        `${prefix}_${proto}_mem_bytes`,
        `Memory of ${proto} sockets in bytes (mem pages x page size).`,
        pages * pageBytes,
      ),
    );
  }
  return out;
}
