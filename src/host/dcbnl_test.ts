// DCB netlink: the request's bytes, the captured error answers (veth:
// EOPNOTSUPP, a missing device: ENODEV), a PFC answer in the kernel's layout
// (fixtures/netlink/README.md), answers without PFC, and truncated ones.
import { assertEquals, assertThrows } from "../../testing/assert.ts";
import { ErrnoError } from "../../ffi/libc.ts";
import { parseMessages } from "../../ffi/nlmsg.ts";
import {
  buildDcbIeeeReply,
  DCB_ATTR_IEEE_PFC,
  dcbIeeeGetRequest,
  parseDcbIeeeReply,
  parseIeeePfc,
  RTM_GETDCB,
} from "./dcbnl.ts";

const DIR = new URL("../../fixtures/netlink/", import.meta.url);
const bin = (name: string) => Deno.readFileSync(new URL(name, DIR));

function caught(fn: () => unknown): ErrnoError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ErrnoError) return err;
    throw err;
  }
  throw new Error("no error");
}

Deno.test("dcbIeeeGetRequest: nlmsghdr, dcbmsg (AF_UNSPEC, DCB_CMD_IEEE_GET), DCB_ATTR_IFNAME with its NUL", () => {
  const req = dcbIeeeGetRequest("eth0", 9);
  assertEquals([...req], [
    ...[32, 0, 0, 0, 78, 0, 5, 0, 9, 0, 0, 0, 0, 0, 0, 0], // len 32, RTM_GETDCB, NLM_F_REQUEST|NLM_F_ACK, seq 9
    ...[0, 21, 0, 0], // struct dcbmsg
    ...[9, 0, 1, 0, 101, 116, 104, 48, 0, 0, 0, 0], // DCB_ATTR_IFNAME "eth0\0", padded
  ]);
});

Deno.test("captured answers: EOPNOTSUPP for veth, ENODEV for a missing device", () => {
  const e = caught(() => parseDcbIeeeReply([bin("dcb_eopnotsupp.bin")]));
  assertEquals([e.code, e.call], ["EOPNOTSUPP", "RTM_GETDCB DCB_CMD_IEEE_GET"]);
  assertEquals(caught(() => parseDcbIeeeReply([bin("dcb_enodev.bin")])).code, "ENODEV");
});

Deno.test("PFC answer: requests = sent, indications = received, per priority; then the ACK", () => {
  const chunk = bin("dcb_ieee_pfc.bin");
  assertEquals(parseMessages(chunk).map((m) => m.type), [RTM_GETDCB, 2]);
  const pfc = parseDcbIeeeReply([chunk])!;
  assertEquals(pfc.pfcCap, 8);
  assertEquals(pfc.pfcEn, 0b1000);
  assertEquals(pfc.requests, [0n, 0n, 0n, 48213n, 0n, 0n, 0n, 2n]);
  assertEquals(pfc.indications, [0n, 0n, 0n, 1902774n, 0n, 0n, 0n, 95367431640625n]);
});

Deno.test("an answer without PFC is undefined; a short ieee_pfc and a reply-less ACK are errors", () => {
  const full = buildDcbIeeeReply("x", {
    pfcCap: 0,
    pfcEn: 0,
    requests: Array(8).fill(1n),
    indications: Array(8).fill(2n),
  });
  // Rename DCB_ATTR_IEEE_PFC to an unknown nested type: the driver answered without PFC.
  const noPfc = new Uint8Array(full);
  const dv = new DataView(noPfc.buffer);
  for (let off = 0; off + 4 < noPfc.byteLength; off += 4) {
    if (dv.getUint16(off, true) === 140 && dv.getUint16(off + 2, true) === DCB_ATTR_IEEE_PFC) {
      dv.setUint16(off + 2, 30, true);
    }
  }
  assertEquals(parseDcbIeeeReply([noPfc]), undefined);
  assertThrows(() => parseIeeePfc(new Uint8Array(100)), /struct ieee_pfc needs 136/);
  const ackOnly = full.subarray(full.byteLength - 36);
  assertThrows(() => parseDcbIeeeReply([ackOnly]), /no reply message/);
});
