// Grouping containers by their live net namespace: pods share one read, the
// host namespace, exited processes and reused pids are left out, and a
// process exiting during the read hands over to the next one of its pod.
import { assertEquals, assertRejects } from "../../../testing/assert.ts";
import { HostFs } from "../../host/fs.ts";
import type { Container } from "../../pod/container.ts";
import { gauge } from "../../core/sample.ts";
import { groupByNetns, hostNetns, liveNetns, perNetns } from "./netns.ts";
import { copyFixture, FIXTURES, v1Container } from "../../../testing/containers.ts";

const NET = `${FIXTURES}net`;

function container(name: string, initPid: number, netnsInode = 0): Container {
  const base = v1Container();
  return { ...base, id: name.padEnd(64, "0"), initPid, netnsInode, pod: { ...base.pod!, name } };
}

class CountingFs extends HostFs {
  readonly reads: string[] = [];
  override readTextSync(path: string): string {
    this.reads.push(path.slice(this.prefix.length));
    return super.readTextSync(path);
  }
}

Deno.test("liveNetns and hostNetns read the net:[N] links; gone is 0", () => {
  const fs = new HostFs(NET);
  assertEquals(liveNetns(fs, 1201), 4026532500);
  assertEquals(liveNetns(fs, 9999), 0);
  assertEquals(liveNetns(fs, 0), 0);
  assertEquals(hostNetns(fs), 4026531840);
});

Deno.test("groupByNetns: pods share a group; host netns, exited and reused pids are left out", () => {
  const fs = new HostFs(NET);
  const app = container("app", 1201, 4026532500);
  const sidecar = container("sidecar", 1205, 4026532500);
  const hostNet = container("hostnet", 2201, 4026531840);
  const gone = container("gone", 9999, 4026532800);
  const reused = container("reused", 3301, 4026532999);
  const unknown = container("unknown", 3301, 0);
  const groups = groupByNetns(fs, [app, hostNet, sidecar, gone, reused, unknown]);
  assertEquals(groups.map((g) => [g.inode, g.pids, g.containers.map((c) => c.pod!.name)]), [
    [4026532500, [1201, 1205], ["app", "sidecar"]],
    [4026532600, [3301], ["unknown"]],
  ]);
});

Deno.test("perNetns reads a shared namespace once and labels each of its containers", async () => {
  const fs = new CountingFs(NET);
  const samples = await perNetns(
    fs,
    [container("app", 1201), container("sidecar", 1205), container("hostnet", 2201)],
    (pid) => [gauge("x", "x", fs.readTextSync(fs.proc(`${pid}/net/arp`)).length, { device: "eth0" })],
  );
  assertEquals(fs.reads, ["/proc/1201/net/arp"]);
  assertEquals(samples.map((s) => [s.labels?.container_name, s.labels?.device, s.labels?.container_level]), [
    ["app", "eth0", "burstable"],
    ["sidecar", "eth0", "burstable"],
  ]);
});

Deno.test("perNetns: a process exiting during the read hands over to the next of its namespace", async () => {
  const root = await copyFixture("net");
  try {
    const fs = new HostFs(root);
    const pod = [container("app", 1201), container("sidecar", 1205)];
    const read = (pid: number) => {
      // Process 1201 exits while its file is being read: its ns link goes and the read fails.
      if (pid === 1201) {
        Deno.removeSync(fs.proc("1201/ns"), { recursive: true });
        fs.readTextSync(fs.proc("1201/net/gone"));
      }
      return [gauge("read_via", "", pid)];
    };
    const samples = await perNetns(fs, pod, read);
    assertEquals(samples.map((s) => [s.labels?.container_name, s.value]), [["app", 1205], ["sidecar", 1205]]);
    // Every process of the namespace gone: skipped, no error.
    await Deno.remove(fs.proc("1205/ns"), { recursive: true });
    assertEquals(await perNetns(fs, pod, read), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("perNetns: a read failing while the process is still there fails the collection", async () => {
  const fs = new HostFs(NET);
  await assertRejects(
    () =>
      perNetns(
        fs,
        [container("nofiles", 3301)],
        (pid) => {
          fs.readTextSync(fs.proc(`${pid}/net/dev`));
          return [];
        },
      ),
    /3301\/net\/dev: no such file/,
  );
});
