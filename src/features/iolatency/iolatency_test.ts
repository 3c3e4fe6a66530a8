// iolatency without BPF: a quiet disk has all six zones of both kinds at 0,
// a measured one its map values; a container gets zeros for each disk its
// io.stat (v2) or blkio.throttle.io_serviced (v1) shows I/O on; the
// cgroup and sysfs parsers behind that.
import { assertEquals, assertThrows } from "../../../testing/assert.ts";
import { HostFs } from "../../host/fs.ts";
import { listBlockDisks, parseIoServicedDevices, parseIoStatDevices } from "../../host/blkio.ts";
import { v1Container, v2Container } from "../../../testing/containers.ts";
import { blkdiskSamples, containerIoDisks, iolatencyContainerSamples } from "./iolatency.ts";

const rows = (samples: { name: string; value: number; labels?: Record<string, string> }[]) =>
  samples.map((s) => `${s.name}{${s.labels?.disk},${s.labels?.zone}} ${s.value}`);

Deno.test("blkdiskSamples: measured zones, then every zone of both kinds at 0 for quiet disks", () => {
  const out = blkdiskSamples([{ disk: "8:0", kind: 0, zones: [3, 0, 0, 0, 0, 1] }], ["7:0", "8:0"]);
  assertEquals(out.length, 4 * 6);
  assertEquals(rows(out).slice(0, 6), [
    "iolatency_blkdisk_q2c{8:0,0} 3",
    "iolatency_blkdisk_q2c{8:0,1} 0",
    "iolatency_blkdisk_q2c{8:0,2} 0",
    "iolatency_blkdisk_q2c{8:0,3} 0",
    "iolatency_blkdisk_q2c{8:0,4} 0",
    "iolatency_blkdisk_q2c{8:0,5} 1",
  ]);
  const zeros = out.slice(6);
  assertEquals([...new Set(zeros.map((s) => `${s.name} ${s.labels?.disk}`))], [
    "iolatency_blkdisk_q2c 7:0",
    "iolatency_blkdisk_d2c 7:0",
    "iolatency_blkdisk_d2c 8:0",
  ]);
  assertEquals(zeros.every((s) => s.value === 0 && s.help === `the disk ${s.name.slice(18)} latency`), true);
  assertEquals(blkdiskSamples([{ disk: "8:0", kind: 7, zones: [1, 1, 1, 1, 1, 1] }], []), [], "unknown kind");
});

Deno.test("iolatencyContainerSamples: zeros for each disk a container did I/O on, and the other kind", () => {
  const c = v2Container();
  const out = iolatencyContainerSamples(
    [{ entry: { cgroup: 1n, dev: (8 << 20) | 0, kind: 1, zones: [0, 2, 0, 0, 0, 0] }, container: c }],
    [{ container: c, disks: ["8:0", "259:0"] }, { container: v1Container(), disks: [] }],
  );
  assertEquals([...new Set(out.map((s) => `${s.name} ${s.labels?.disk} ${s.labels?.container_name}`))], [
    "iolatency_container_blkdisk_d2c 8:0 9e8d7c6b5a4f",
    "iolatency_container_blkdisk_q2c 8:0 9e8d7c6b5a4f",
    "iolatency_container_blkdisk_q2c 259:0 9e8d7c6b5a4f",
    "iolatency_container_blkdisk_d2c 259:0 9e8d7c6b5a4f",
  ]);
  assertEquals(out.reduce((a, s) => a + s.value, 0), 2);
});

Deno.test("cgroup I/O devices: v2 io.stat, v1 io_serviced; garbled lines rejected", () => {
  assertEquals(
    parseIoStatDevices(
      "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n7:3 rbytes=0 wbytes=0 rios=0 wios=0 dbytes=0 dios=0\n" +
        "259:0 rbytes=0 wbytes=8192 rios=0 wios=2 dbytes=0 dios=0\n",
      "io.stat",
    ),
    ["8:0", "259:0"],
  );
  assertThrows(() => parseIoStatDevices("sda rios=1\n", "/c/io.stat"), /\/c\/io.stat: expected "major:minor/);
  assertEquals(
    parseIoServicedDevices(
      "8:0 Read 3\n8:0 Write 0\n8:0 Total 3\n7:0 Read 0\n7:0 Total 0\nTotal 3\n",
      "blkio.throttle.io_serviced",
    ),
    ["8:0"],
  );
  assertThrows(() => parseIoServicedDevices("8:0 Read\n", "s"), /s: expected "major:minor Op count"/);
});

Deno.test("containerIoDisks and listBlockDisks read the cgroup and sysfs files", () => {
  const root = Deno.makeTempDirSync({ prefix: "huatuo-iolat-" });
  try {
    const v2 = v2Container(root);
    Deno.mkdirSync(v2.cgroupPaths.unified, { recursive: true });
    assertEquals(containerIoDisks(v2), [], "no io controller enabled: no io.stat");
    Deno.writeTextFileSync(`${v2.cgroupPaths.unified}/io.stat`, "8:16 rbytes=512 wbytes=0 rios=1 wios=0\n");
    assertEquals(containerIoDisks(v2), ["8:16"]);
    const blkio = `${root}/blkio/pod`;
    Deno.mkdirSync(blkio, { recursive: true });
    Deno.writeTextFileSync(`${blkio}/blkio.throttle.io_serviced`, "7:1 Write 4\n7:1 Total 4\nTotal 4\n");
    assertEquals(containerIoDisks({ ...v1Container(root), cgroupPaths: { blkio } }), ["7:1"]);

    assertEquals(listBlockDisks(new HostFs(root)), [], "no /sys/block in a fixture tree");
    for (const [name, dev] of [["vda", "254:0"], ["loop0", "7:0"]]) {
      Deno.mkdirSync(`${root}/sys/block/${name}`, { recursive: true });
      Deno.writeTextFileSync(`${root}/sys/block/${name}/dev`, `${dev}\n`);
    }
    assertEquals(listBlockDisks(new HostFs(root)), ["7:0", "254:0"]);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test({
  name: "listBlockDisks: this host's /sys/block, one major:minor per disk",
  ignore: !Deno.statSync("/sys/block").isDirectory,
  fn() {
    const disks = listBlockDisks(new HostFs());
    assertEquals(disks.length, [...Deno.readDirSync("/sys/block")].length);
    assertEquals(disks.every((d) => /^\d+:\d+$/.test(d)), true);
  },
});
