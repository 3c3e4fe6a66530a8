import { assert, assertEquals, assertMatch, assertThrows } from "../testing/assert.ts";
import {
  AF_NETLINK,
  close,
  ErrnoError,
  errnoName,
  NETLINK_ROUTE,
  pageSize,
  SOCK_CLOEXEC,
  SOCK_RAW,
  socket,
} from "./libc.ts";

Deno.test("pageSize comes from sysconf and matches the kernel's", () => {
  const smaps = Deno.readTextFileSync("/proc/self/smaps").match(/^KernelPageSize:\s+(\d+) kB$/m);
  assert(smaps);
  assertEquals(pageSize(), Number(smaps[1]) * 1024);
});

Deno.test("failed calls throw ErrnoError naming the call and errno", () => {
  const err = (() => {
    try {
      socket(999, SOCK_RAW, 0);
    } catch (e) {
      return e;
    }
  })();
  assert(err instanceof ErrnoError);
  assertEquals(err.code, "EAFNOSUPPORT");
  assertMatch(err.message, /^socket\(999\): EAFNOSUPPORT \(Address family not supported by protocol\)$/);
  assertThrows(() => close(-1), /close: EBADF/);
  assertEquals(errnoName(1), "EPERM");
});

Deno.test("a netlink socket opens and closes", () => {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  assert(fd >= 0);
  close(fd);
});
