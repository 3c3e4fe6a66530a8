import { assertEquals } from "../../testing/assert.ts";
import { taskCgroupId, taskCgroupPaths } from "./task_cgroup.ts";

Deno.test("taskCgroupPaths: the cgroup2 line and the v1 memory line (co-mounted controllers too)", () => {
  const text = [
    "9:name=systemd:/",
    "4:memory:/kubepods/burstable/podx/abc",
    "2:cpu,cpuacct:/kubepods/burstable/podx/abc",
    "0::/kubepods.slice/x.scope",
    "",
  ].join("\n");
  assertEquals(taskCgroupPaths(text), {
    unified: "/kubepods.slice/x.scope",
    memory: "/kubepods/burstable/podx/abc",
  });
  assertEquals(taskCgroupPaths("0::/\n"), { unified: "/" });
  assertEquals(taskCgroupPaths("5:cpuset,memory:/a\n"), { memory: "/a" });
});

Deno.test({
  name: "taskCgroupId: a real task in a test memory cgroup → that directory's inode; gone → undefined",
  ignore: Deno.uid() !== 0,
  async fn() {
    const dir = "/sys/fs/cgroup/memory/huatuo-it-taskcg";
    try {
      Deno.removeSync(dir);
    } catch { /* not there */ }
    Deno.mkdirSync(dir);
    const child = new Deno.Command("sleep", { args: ["60"] }).spawn();
    try {
      Deno.writeTextFileSync(`${dir}/cgroup.procs`, `${child.pid}\n`);
      assertEquals(taskCgroupId(child.pid), Deno.statSync(dir).ino);
    } finally {
      child.kill("SIGKILL");
      await child.status;
      for (let i = 0; i < 50; i++) {
        try {
          Deno.removeSync(dir);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    }
    assertEquals(taskCgroupId(child.pid), undefined);
    assertEquals(taskCgroupId(0), undefined);
  },
});
