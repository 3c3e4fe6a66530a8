// sockstat (host): the TCP and UDP "mem" pages in bytes at the page size given
// (64 KiB pages as on some arm64 and ppc64 kernels), no series for a protocol
// without a "mem" field, and the agent's own page size from sysconf.
import { assertEquals } from "../../../testing/assert.ts";
import { pageSize } from "../../../ffi/libc.ts";
import { context } from "../../../testing/containers.ts";
import { sockstatMemBytes } from "./samples.ts";
import sockstat from "./sockstat.ts";

const TEXT = `sockets: used 21
TCP: inuse 2 orphan 0 tw 16 alloc 2 mem 217
UDP: inuse 0 mem 3
UDPLITE: inuse 0
`;

Deno.test("sockstatMemBytes: mem pages x the page size, TCP and UDP", () => {
  assertEquals(
    sockstatMemBytes(TEXT, "sockstat", 65536).map((s) => [s.name, s.type, s.value]),
    [["sockstat_TCP_mem_bytes", "gauge", 217 * 65536], ["sockstat_UDP_mem_bytes", "gauge", 3 * 65536]],
  );
  const oldUdp = "TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 5\nUDP: inuse 0\n";
  assertEquals(sockstatMemBytes(oldUdp, "sockstat", 4096).map((s) => s.name), ["sockstat_TCP_mem_bytes"]);
});

Deno.test("sockstat: the fixture's mem pages at this machine's page size", async () => {
  const samples = await sockstat.create(context("fixtures")).collector!.collect();
  const get = (n: string) => samples.find((s) => s.name === n)?.value;
  assertEquals(get("sockstat_TCP_mem"), 271);
  assertEquals(get("sockstat_TCP_mem_bytes"), 271 * pageSize());
  assertEquals(get("sockstat_UDP_mem_bytes"), 0);
});
