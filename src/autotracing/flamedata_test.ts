import { assertEquals } from "../../testing/assert.ts";
import { flamedata, profileCapture } from "./flamedata.ts";
import type { Profile, ProfileRequest } from "../profile/profile.ts";

Deno.test("flamedata: root all, a level per process name, frames outermost first; value = self + children", () => {
  const frames = flamedata([
    { tgid: 1, process: "java", frames: ["main", "work"], count: 5 },
    { tgid: 2, process: "java", frames: ["main", "work"], count: 2 }, // same name: merged
    { tgid: 1, process: "java", frames: ["main"], count: 1 },
    { tgid: 3, process: "dd", frames: ["entry_SYSCALL_64", "do_syscall_64", "ksys_write"], count: 4 },
    { tgid: 4, process: "idle", frames: [], count: 0 }, // no samples: left out
  ]);
  assertEquals(frames, [
    { level: 0, value: 12, self: 0, label: "all" },
    { level: 1, value: 4, self: 0, label: "dd" },
    { level: 2, value: 4, self: 0, label: "entry_SYSCALL_64" },
    { level: 3, value: 4, self: 0, label: "do_syscall_64" },
    { level: 4, value: 4, self: 4, label: "ksys_write" },
    { level: 1, value: 8, self: 0, label: "java" },
    { level: 2, value: 8, self: 1, label: "main" },
    { level: 3, value: 7, self: 7, label: "work" },
  ]);
  assertEquals(flamedata([]), [{ level: 0, value: 0, self: 0, label: "all" }]);
});

Deno.test("profileCapture asks the profiler for the scope, duration and signal and builds flamedata", async () => {
  const asked: ProfileRequest[] = [];
  const profile: Profile = {
    samples: [{ tgid: 9, process: "sh", frames: ["x"], count: 3 }],
    total: 3,
    lost: 0,
    durationMs: 10,
    frequencyHz: 99,
  };
  const signal = new AbortController().signal;
  const out = await profileCapture(
    {
      capture: (req) => {
        asked.push(req);
        return Promise.resolve(profile);
      },
    },
    { kind: "container", cgroup2Id: 5n },
    10,
    signal,
  );
  assertEquals(asked, [{ durationMs: 10, scope: { kind: "container", cgroup2Id: 5n }, signal }]);
  assertEquals(out.profile, profile);
  assertEquals(out.flamedata[0], { level: 0, value: 3, self: 0, label: "all" });
});
