// /proc/diskstats: 14-, 18- and 20-field lines (kernels before 4.18, with
// discards, with flushes), every kind of device name, garbled lines rejected.
import { assertEquals, assertThrows } from "../../testing/assert.ts";
import { parseDiskstats } from "./diskstats.ts";

Deno.test("diskstats: the fields diskio reads, from lines of every kernel's length", () => {
  const text =
    `   8       0 sda 240119 61813 14370874 118211 1105262 849180 49728104 1507764 3 1095584 1722447
 259       1 nvme0n1p1 307 0 12750 42 2 0 2 0 0 60 42 0 0 0 0
   9       0 md0 1287 0 10296 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 253       0 dm-0 5567791 0 711184922 1118408 12643969 0 541089766 28044128 1 6153728 29169584 107732 0 88125592 7048 0 0
`;
  const d = parseDiskstats(text);
  assertEquals(d.map((x) => x.name), ["sda", "nvme0n1p1", "md0", "dm-0"]);
  assertEquals(d[0], {
    major: 8,
    minor: 0,
    name: "sda",
    readIos: 240119,
    readSectors: 14370874,
    readTicks: 118211,
    writeIos: 1105262,
    writeSectors: 49728104,
    writeTicks: 1507764,
    inFlight: 3,
    ioTicks: 1095584,
    timeInQueue: 1722447,
  });
  assertEquals([d[3].major, d[3].minor, d[3].writeTicks, d[3].inFlight], [253, 0, 28044128, 1]);
  assertEquals(parseDiskstats(""), [], "a diskless host");
});

Deno.test("diskstats: short and non-numeric lines fail naming the line", () => {
  assertThrows(
    () => parseDiskstats("   8 0 sda 1 2 3\n", "/p/diskstats"),
    /\/p\/diskstats: line 1: expected at least 14/,
  );
  assertThrows(
    () => parseDiskstats("7 0 loop0 0 0 0 0 0 0 0 0 0 0 0\n7 1 loop1 0 0 x 0 0 0 0 0 0 0 0\n"),
    /line 2: field 6 is not a number: "x"/,
  );
});
