// The shared cgroup helpers: controller lookup on v1 (joined and split
// hierarchies), v2 and hybrid layouts; file formats; gone vs missing.
import { assert, assertEquals, assertThrows } from "../../../testing/assert.ts";
import { SourceError } from "../../host/fs.ts";
import {
  ContainerGone,
  controllerDir,
  countCpuList,
  parseCpuMax,
  parseIdList,
  parseStartTicks,
  parseTaskState,
  readCgroupFile,
} from "./cgroup.ts";
import { FIXTURES, v1Container } from "../../../testing/containers.ts";

Deno.test("controllerDir: v1 hierarchy naming the controller first, else the unified directory", () => {
  const c = v1Container();
  const joined = { ...c, cgroupPaths: { "cpu,cpuacct": "/a", memory: "/m", unified: "/u" } };
  assertEquals(controllerDir(joined, "cpuacct"), { dir: "/a", v2: false });
  assertEquals(controllerDir(joined, "cpu"), { dir: "/a", v2: false });
  assertEquals(controllerDir(joined, "cpuset"), { dir: "/u", v2: true });
  assertEquals(controllerDir({ ...c, cgroupPaths: { memory: "/m" } }, "cpu"), undefined);
});

Deno.test("formats: cpu lists, cpu.max, task state after the last ')', start time, id lists", () => {
  assertEquals(countCpuList("0-3,8,10-11\n", "x"), 7);
  assertEquals(countCpuList("\n", "x"), 0);
  assertThrows(() => countCpuList("3-1", "x"), SourceError);
  assertEquals(parseCpuMax("max 100000\n", "x"), undefined);
  assertEquals(parseCpuMax("250000 100000\n", "x"), 2.5);
  assertThrows(() => parseCpuMax("max\n", "x"), SourceError);
  const stat = "42 (a) b) (c) D 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0\n";
  assertEquals(parseTaskState(stat, "x"), "D");
  assertEquals(parseStartTicks(stat, "x"), 777);
  assertThrows(() => parseTaskState("garbage", "x"), SourceError);
  assertEquals(parseIdList("1\n22\n", "x"), [1, 22]);
  assertThrows(() => parseIdList("1 2\n", "x"), SourceError);
});

Deno.test("readCgroupFile: missing file → undefined, missing directory → ContainerGone", () => {
  const dir = v1Container().cgroupPaths.memory;
  assert(readCgroupFile(dir, "memory.stat")!.startsWith("cache "));
  assertEquals(readCgroupFile(dir, "memory.events"), undefined);
  assertThrows(() => readCgroupFile(`${FIXTURES}v1/nonexistent`, "memory.stat"), ContainerGone);
});
