// The RPM (huatuo-bamai.spec + systemd unit) built from this tree: its files,
// its scriptlets through install, upgrade and erase in a scratch root, the
// hardened unit's score, and the agent running every tracer under the unit's
// capability set and read-only mounts.

import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { BINARY, freePort, isRoot, ROOT } from "./agent.ts";

const UNIT = `${ROOT}/packaging/huatuo-bamai.service`;
const BASE_ROOTFS = `${ROOT}/_output/base/rootfs`;
const dec = new TextDecoder();

async function exec(
  cmd: string,
  args: string[],
  cwd = ROOT,
): Promise<{ code: number; text: string }> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

async function run(cmd: string, args: string[], cwd = ROOT): Promise<string> {
  const { code, text } = await exec(cmd, args, cwd);
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${code}):\n${text}`);
  return text;
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** rpmbuild of the current _output/ with Release `release`, from `sourcedir` (default the tree). */
async function buildRpm(release: number, sourcedir = ROOT): Promise<string> {
  const top = Deno.makeTempDirSync({ prefix: "huatuo-rpmbuild-" });
  try {
    await run("rpmbuild", [
      "-bb",
      `${ROOT}/huatuo-bamai.spec`,
      "--quiet",
      "--define",
      `_sourcedir ${sourcedir}`,
      "--define",
      `_topdir ${top}/build`,
      "--define",
      `_rpmdir ${top}`,
      "--define",
      "_unitdir /usr/lib/systemd/system",
      "--define",
      `huatuo_release ${release}`,
    ]);
    const name = `huatuo-bamai-0.1.0-${release}.x86_64.rpm`;
    const dest = `${ROOT}/_output/rpm/test/${name}`;
    Deno.mkdirSync(`${ROOT}/_output/rpm/test`, { recursive: true });
    Deno.copyFileSync(`${top}/x86_64/${name}`, dest);
    return dest;
  } finally {
    Deno.removeSync(top, { recursive: true });
  }
}

Deno.test("RPM: files, requires, rpmlint, and the packaged agent runs", async () => {
  await run("bash", ["build.sh", "rpm"]);
  const rpms = [...Deno.readDirSync(`${ROOT}/_output/rpm/x86_64`)].map((e) => e.name);
  assertEquals(rpms.length, 1);
  const rpm = `${ROOT}/_output/rpm/x86_64/${rpms[0]}`;
  const files = (await run("rpm", ["-qlp", rpm])).split("\n");
  for (
    const f of [
      "/usr/bin/huatuo-bamai",
      "/usr/lib/huatuo-bamai/bin/huatuo-bamai",
      "/usr/lib/huatuo-bamai/bpf/oom.o",
      "/etc/huatuo-bamai/huatuo-bamai.conf",
      "/usr/lib/systemd/system/huatuo-bamai.service",
      "/etc/sysconfig/huatuo-bamai",
    ]
  ) assert(files.includes(f), `${f} not in the RPM`);
  // The test suite's BPF objects stay out of the package.
  assertEquals(files.filter((f) => f.includes("/bpf/test")), []);
  const configs = await run("rpm", ["-qp", "--configfiles", rpm]);
  assertMatch(configs, /^\/etc\/huatuo-bamai\/huatuo-bamai\.conf$/m);
  assertMatch(configs, /^\/etc\/sysconfig\/huatuo-bamai$/m);
  // Every config file is %config(noreplace): RPMFILE_CONFIG (1) | RPMFILE_NOREPLACE (1<<4).
  for (const line of (await run("rpm", ["-qp", "--qf", "[%{FILEFLAGS} %{FILENAMES}\n]", rpm])).split("\n")) {
    const [flags, name] = line.split(" ");
    if (configs.includes(`${name}\n`)) {
      assert((Number(flags) & 0x11) === 0x11, `${name}: not %config(noreplace)`);
    }
  }
  // The single file carries libbpf: nothing of libbpf is required. A `deno compile` agent dlopens the
  // host's: then the soname (libbpf >= 1.0) is required, not any "libbpf".
  const requires = (await run("rpm", ["-qpR", rpm])).split("\n").map((l) => l.trim());
  assert(!requires.includes("libbpf"), "unversioned Requires: libbpf");
  const carried = await Deno.stat(`${ROOT}/_output/single`).then(() => true, () => false);
  if (carried) assert(!requires.some((r) => r.startsWith("libbpf")), requires.join("\n"));
  else assert(requires.includes("libbpf.so.1()(64bit)"), requires.join("\n"));
  const scripts = await run("rpm", ["-qp", "--scripts", rpm]);
  assert(!scripts.includes("%systemd"), `unexpanded macros in the scriptlets:\n${scripts}`);
  // rpmlint: no errors (packaging/huatuo-bamai.rpmlintrc says which are waived and why).
  const lint = await exec("rpmlint", [
    "-r",
    `${ROOT}/packaging/huatuo-bamai.rpmlintrc`,
    `${ROOT}/huatuo-bamai.spec`,
    rpm,
  ]);
  assertMatch(lint.text, / 0 errors, /, lint.text);

  const root = Deno.makeTempDirSync({ prefix: "huatuo-rpm-" });
  try {
    await run("sh", ["-c", `rpm2cpio '${rpm}' | cpio -idm --quiet`], root);
    const unit = Deno.readTextFileSync(`${root}/usr/lib/systemd/system/huatuo-bamai.service`);
    assertMatch(
      unit,
      /^ExecStart=\/usr\/bin\/huatuo-bamai --region \$\{HUATUO_REGION\} --config-dir \/etc\/huatuo-bamai/m,
    );
    const bin = `${root}/usr/lib/huatuo-bamai/bin/huatuo-bamai`;
    assertMatch(await run(bin, ["--version"]), /^huatuo-bamai \d+\.\d+\.\d+/);
    assertMatch(await run(`${root}/usr/bin/huatuo-bamai`, ["--version"]), /^huatuo-bamai \d+\.\d+\.\d+/);
    // The packaged config, on a free port, against the fixture tree.
    const conf = Deno.readTextFileSync(`${root}/etc/huatuo-bamai/huatuo-bamai.conf`)
      .replace(/^\s*#\s*TCPAddr = ":19704"\s*$/m, `\tTCPAddr = "127.0.0.1:${freePort()}"`);
    Deno.writeTextFileSync(`${root}/etc/huatuo-bamai/huatuo-bamai.conf`, conf);
    const out = await run(bin, [
      "--region",
      "rpm",
      "--config-dir",
      `${root}/etc/huatuo-bamai`,
      "--procfs-prefix",
      `${ROOT}/fixtures`,
      "--dry-run",
    ]);
    assertMatch(out, /msg="dry run scrape" series=\d+ collectors=\d+ failed=""/);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

// rpm --root on a Debian root (packaging/base-image.sh's debootstrap): the
// scriptlets run chrooted there with its /bin/sh. A stub systemctl records
// what they ask of systemd. --nodeps because that root's rpmdb is empty (its
// packages are dpkg's), so rpm cannot see the /bin/sh, libc.so.6 and
// libbpf.so.1 the package requires; nothing else is forced.
Deno.test({
  name: "RPM: install, upgrade, erase in a scratch root; scriptlets exit 0; config kept",
  ignore: !isRoot(),
  fn: async () => {
    await run("bash", ["build.sh", "rpm"]);
    if (!exists(`${BASE_ROOTFS}/bin/sh`)) await run("bash", ["packaging/base-image.sh"]);
    const rel1 = await buildRpm(1);
    const rel2 = await buildRpm(2);
    // Release 3 ships a changed default config: the admin's edit stays, the new one lands as .rpmnew.
    const src3 = Deno.makeTempDirSync({ prefix: "huatuo-src3-" });
    for (const f of ["_output", "packaging", "deploy", "README.md"]) {
      Deno.symlinkSync(`${ROOT}/${f}`, `${src3}/${f}`);
    }
    Deno.writeTextFileSync(
      `${src3}/huatuo-bamai.conf`,
      Deno.readTextFileSync(`${ROOT}/huatuo-bamai.conf`) + "\n# release 3 default\n",
    );
    const rel3 = await buildRpm(3, src3);
    Deno.removeSync(src3, { recursive: true });

    const root = Deno.makeTempDirSync({ prefix: "huatuo-rpmroot-" });
    const rpm = (...args: string[]) => exec("rpm", ["--root", root, ...args]);
    const calls = `${root}/var/log/systemctl.calls`;
    const takeCalls = () => {
      const text = exists(calls) ? Deno.readTextFileSync(calls) : "";
      if (exists(calls)) Deno.removeSync(calls);
      return text.split("\n").filter((l) => l);
    };
    const conf = `${root}/etc/huatuo-bamai/huatuo-bamai.conf`;
    const ok = (r: { code: number; text: string }, what: string) => {
      assertEquals(r.code, 0, `${what}:\n${r.text}`);
      assert(!/scriptlet failed|exit status/.test(r.text), `${what}:\n${r.text}`);
    };
    try {
      await run("cp", ["-a", `${BASE_ROOTFS}/.`, root]);
      // A host where systemd runs: /run/systemd/system and a systemctl that logs.
      Deno.mkdirSync(`${root}/run/systemd/system`, { recursive: true });
      Deno.writeTextFileSync(
        `${root}/usr/bin/systemctl`,
        `#!/bin/sh\necho "$*" >>/var/log/systemctl.calls\n`,
      );
      Deno.chmodSync(`${root}/usr/bin/systemctl`, 0o755);
      await run("rpm", ["--root", root, "--initdb"]);

      // Each scriptlet on its own, with each $1 it can get, with and without systemd.
      for (const tag of ["POSTIN", "PREUN", "POSTUN"]) {
        const body = await run("rpm", ["-qp", "--qf", `%{${tag}}`, rel1]);
        for (const arg of ["0", "1", "2"]) {
          for (const systemd of [true, false]) {
            if (!systemd) Deno.removeSync(`${root}/run/systemd/system`);
            const r = await exec("chroot", [root, "/bin/sh", "-c", body, "scriptlet", arg]);
            Deno.mkdirSync(`${root}/run/systemd/system`, { recursive: true });
            assertEquals(r.code, 0, `${tag} $1=${arg} systemd=${systemd}: ${r.text}`);
          }
        }
      }
      takeCalls();

      // Install: %post reloads systemd and applies the preset.
      ok(await rpm("-ivh", "--nodeps", rel1), "install");
      assertEquals(takeCalls(), ["daemon-reload", "preset huatuo-bamai.service"]);
      assert(exists(`${root}/usr/lib/huatuo-bamai/bin/huatuo-bamai`));
      assertEquals(Deno.readLinkSync(`${root}/usr/bin/huatuo-bamai`), "../lib/huatuo-bamai/bin/huatuo-bamai");
      assert(exists(`${root}/var/lib/huatuo-bamai`));
      assert(exists(`${root}/usr/share/man/man8/huatuo-bamai.8.bz2`));
      assertEquals((await rpm("-q", "huatuo-bamai")).text.trim(), "huatuo-bamai-0.1.0-1.x86_64");

      // The installed unit verifies (its ExecStart resolves inside the root); the
      // minbase root has no systemd, so the host's own units (targets, slices)
      // are copied beside it, never over it.
      await run("cp", ["-an", "/lib/systemd/system/.", `${root}/usr/lib/systemd/system/`]);
      const verify = await exec("systemd-analyze", [
        "verify",
        "--man=no",
        `--root=${root}`,
        "/usr/lib/systemd/system/huatuo-bamai.service",
      ]);
      assertEquals(verify.code, 0, verify.text);
      assert(!/huatuo-bamai\.service:/.test(verify.text), `systemd-analyze verify:\n${verify.text}`);

      // An admin edit, then an upgrade with the same default config: kept, no .rpmnew.
      const edited = Deno.readTextFileSync(conf) + "\n# edited by the admin\n";
      Deno.writeTextFileSync(conf, edited);
      ok(await rpm("-Uvh", "--nodeps", rel2), "upgrade 1 → 2");
      // The new %post reloads; the old %postun reloads and restarts the running agent.
      assertEquals(takeCalls(), ["daemon-reload", "daemon-reload", "try-restart huatuo-bamai.service"]);
      assertEquals(Deno.readTextFileSync(conf), edited);
      assert(!exists(`${conf}.rpmnew`));
      assertEquals((await rpm("-q", "huatuo-bamai")).text.trim(), "huatuo-bamai-0.1.0-2.x86_64");

      // Upgrade with a changed default: the edit stays, the new default is .rpmnew.
      ok(await rpm("-Uvh", "--nodeps", rel3), "upgrade 2 → 3");
      assertEquals(Deno.readTextFileSync(conf), edited);
      assertMatch(Deno.readTextFileSync(`${conf}.rpmnew`), /# release 3 default/);
      takeCalls();

      // Erase: %preun stops and disables, %postun reloads; the edited config is saved.
      ok(await rpm("-e", "huatuo-bamai"), "erase");
      assertEquals(takeCalls(), ["--no-reload disable --now huatuo-bamai.service", "daemon-reload"]);
      assert(!exists(`${root}/usr/lib/huatuo-bamai`));
      assert(!exists(`${root}/usr/bin/huatuo-bamai`));
      assert(!exists(`${root}/usr/lib/systemd/system/huatuo-bamai.service`));
      assertEquals(Deno.readTextFileSync(`${conf}.rpmsave`), edited);
      assert(!exists(conf));
      assertEquals((await rpm("-qa")).text.trim(), "");

      // Without systemd (a container, a chroot): the same lifecycle, no systemctl calls.
      Deno.removeSync(`${root}/run/systemd/system`);
      ok(await rpm("-ivh", "--nodeps", rel1), "install without systemd");
      ok(await rpm("-Uvh", "--nodeps", rel2), "upgrade without systemd");
      ok(await rpm("-e", "huatuo-bamai"), "erase without systemd");
      assertEquals(takeCalls(), []);
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
});

/** "Overall exposure level for X: 3.9 OK" → 3.9 */
async function exposure(unit: string): Promise<number> {
  const { text } = await exec("systemd-analyze", ["security", "--offline=true", unit]);
  const m = text.match(/Overall exposure level for \S+: (\d+\.\d+)/);
  if (!m) throw new Error(`no score for ${unit}:\n${text}`);
  return Number(m[1]);
}

Deno.test("unit: hardened (systemd-analyze security) beyond Debian's node_exporter unit", async () => {
  // --man=no: the man page named in Documentation= comes with the package.
  const verify = await exec("systemd-analyze", ["verify", "--man=no", UNIT]);
  // Offline, the ExecStart binary is not installed: that is the only complaint allowed.
  for (const line of verify.text.split("\n").filter((l) => l.includes("huatuo-bamai.service"))) {
    assertMatch(line, /Command \/usr\/bin\/huatuo-bamai is not executable|not found/, verify.text);
  }
  const ours = await exposure(UNIT);
  const nodeExporter = await exposure("/lib/systemd/system/prometheus-node-exporter.service");
  console.log(`systemd-analyze security: huatuo-bamai ${ours}, prometheus-node-exporter ${nodeExporter}`);
  assert(ours < nodeExporter, `${ours} is not better than node_exporter's ${nodeExporter}`);
  assert(ours <= 4.5, `exposure ${ours} > 4.5`);
});

/** CapabilityBoundingSet= of the unit, as setpriv names: "sys_admin,bpf,…". */
function unitCaps(): string[] {
  const line = Deno.readTextFileSync(UNIT).match(/^CapabilityBoundingSet=(.*)$/m)![1];
  const ambient = Deno.readTextFileSync(UNIT).match(/^AmbientCapabilities=(.*)$/m)![1];
  assertEquals(ambient, line, "AmbientCapabilities differs from CapabilityBoundingSet");
  return line.trim().split(/\s+/).map((c) => c.replace(/^CAP_/, "").toLowerCase());
}

const CAP_BITS: Record<string, number> = {
  dac_read_search: 2,
  sys_ptrace: 19,
  sys_admin: 21,
  perfmon: 38,
  bpf: 39,
};

/**
 * What the unit does to the agent, without systemd as PID 1: a private mount
 * namespace with everything read-only but the state dir (ProtectSystem=strict,
 * ReadWritePaths), /sys read-only but its cgroup and tracefs submounts
 * (ProtectKernelTunables, ReadWritePaths), a private /tmp, an empty /home and
 * /root, then no_new_privs, noroot securebits and only the unit's capabilities
 * (ambient, like AmbientCapabilities= for a uid-0 service with SecureBits=noroot).
 */
function confinedCommand(caps: string[], state: string, argv: string[]): string[] {
  const plus = (l: string[]) => ["-all", ...l.map((c) => `+${c}`)].join(",");
  const script = `
set -e
state=$1; shift
mount --make-rprivate /
mount --bind "$state" "$state"
for m in $(findmnt -rn -o TARGET | sort -u); do
  case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$state") continue ;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
mount -o remount,bind,ro /sys
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys
# PrivateTmp, unless the checkout itself is under /tmp (a fresh clone there): a tmpfs would hide the binary.
case "$state" in /tmp/*) ;; *) mount -t tmpfs -o mode=1777 tmpfs /tmp ;; esac
mount -t tmpfs -o ro tmpfs /home
mount -t tmpfs -o ro tmpfs /root
cd "$state"
exec setpriv --no-new-privs --securebits=+noroot,+noroot_locked \\
  --inh-caps=${plus(caps)} --ambient-caps=${plus(caps)} --bounding-set=${plus(caps)} "$@"`;
  return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "confine", state, ...argv];
}

Deno.test({
  name: "unit: every tracer runs under the unit's capabilities and read-only mounts",
  ignore: !isRoot(),
  fn: async () => {
    const caps = unitCaps();
    for (const c of caps) assert(c in CAP_BITS, `no bit for ${c}`);
    const want = caps.reduce((m, c) => m | (1n << BigInt(CAP_BITS[c])), 0n);
    const dir = `${ROOT}/_output/confined`;
    if (exists(dir)) Deno.removeSync(dir, { recursive: true });
    Deno.mkdirSync(`${dir}/state`, { recursive: true });
    const port = freePort();
    Deno.writeTextFileSync(
      `${dir}/huatuo-bamai.conf`,
      Deno.readTextFileSync(`${ROOT}/huatuo-bamai.conf`)
        .replace(/^\s*#\s*TCPAddr = ":19704"\s*$/m, `\tTCPAddr = "127.0.0.1:${port}"`),
    );
    const [cmd, ...args] = confinedCommand(caps, `${dir}/state`, [
      BINARY,
      "--region",
      "confined",
      "--config-dir",
      dir,
      "--disable-kubelet",
      "--disable-storage",
    ]);
    const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).spawn();
    const output = child.output();
    const url = `http://127.0.0.1:${port}`;
    try {
      let ready = 0;
      for (let i = 0; i < 300 && ready !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        ready = await fetch(`${url}/readyz`).then(async (r) => (await r.body?.cancel(), r.status), () => 0);
      }
      assertEquals(ready, 200, "agent not ready");
      assertEquals((await fetch(`${url}/healthz`).then((r) => r.json())).status, "ok");
      // The agent holds exactly the unit's capabilities.
      const agentPid = (await run("pgrep", ["-f", "--", `--region confined --config-dir ${dir}`])).trim()
        .split(
          "\n",
        )
        // The runtime's process: `deno run --allow-all ...` (its argv[0] is the launcher's deno or the single file).
        .find((p) => Deno.readTextFileSync(`/proc/${p}/cmdline`).includes("--allow-all"))!;
      const status = Deno.readTextFileSync(`/proc/${agentPid}/status`);
      assertEquals(BigInt("0x" + status.match(/^CapEff:\s+(\w+)/m)![1]), want, status);
      assertMatch(status, /^NoNewPrivs:\s+1$/m);
      const tracers = (await fetch(`${url}/v1/tracers`).then((r) => r.json())).tracers as {
        name: string;
        state: string;
      }[];
      assert(tracers.length >= 16, JSON.stringify(tracers));
      assertEquals(tracers.filter((t) => t.state !== "running"), []);
      const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
      assertEquals(
        metrics.split("\n").filter((l) => /^huatuo_bamai_scrape_collector_success\{.* 0$/.test(l)),
        [],
      );
      // The state dir is the only place written; elsewhere is read-only.
      assert(exists(`${dir}/state`));
    } finally {
      child.kill("SIGTERM");
      const out = await output;
      Deno.removeSync(dir, { recursive: true });
      if (!out.success && out.code !== 143 && out.signal !== "SIGTERM") {
        console.error(dec.decode(out.stdout) + dec.decode(out.stderr));
      }
    }
  },
});

// Why the unit has CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH: the kernel refuses
// these reads of another uid's process (what container processes are) without them.
Deno.test({
  name: "unit: CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH are what /proc/<pid> of other uids needs",
  ignore: !isRoot(),
  fn: async () => {
    const other = new Deno.Command("setpriv", {
      args: ["--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "30"],
    }).spawn();
    try {
      await new Promise((r) => setTimeout(r, 200));
      const p = other.pid;
      const read = (caps: string[]) =>
        exec("setpriv", [
          "--inh-caps=-all",
          `--bounding-set=${["-all", ...caps.map((c) => `+${c}`)].join(",")}`,
          "sh",
          "-c",
          `readlink /proc/${p}/ns/net >/dev/null && echo OK_NETNS; head -1 /proc/${p}/stack >/dev/null && echo OK_STACK`,
        ]).then((r) => r.text);
      const all = unitCaps();
      const got = await read(all);
      assertMatch(got, /OK_NETNS/);
      assertMatch(got, /OK_STACK/);
      assert(!/OK_NETNS/.test(await read(all.filter((c) => c !== "sys_ptrace"))));
      assert(!/OK_STACK/.test(await read(all.filter((c) => c !== "dac_read_search"))));
    } finally {
      other.kill();
      await other.status;
    }
  },
});

/** podman args that run a container here (runc where cgroups are hybrid: crun refuses them), or undefined. */
async function podmanRuntime(): Promise<string[] | undefined> {
  if (!isRoot()) return undefined;
  const runtime = exists("/sys/fs/cgroup/cgroup.controllers") ? [] : ["--runtime", "runc"];
  try {
    return (await exec("podman", [...runtime, "info"])).code === 0 ? runtime : undefined;
  } catch {
    return undefined;
  }
}
const PODMAN = await podmanRuntime();

// PID 1 on this VM is not systemd, so systemd runs as PID 1 of a container
// (integration/systemd-image.sh) and starts the real unit: its seccomp filter,
// mount namespace and capabilities, not an imitation. --privileged only so
// that systemd may set all of that up; the unit drops the rest.
Deno.test({
  name:
    "unit: under systemd as PID 1 (podman --systemd), every tracer runs and the unit holds only its capabilities",
  ignore: PODMAN === undefined,
  fn: async () => {
    await run("bash", ["integration/systemd-image.sh"]);
    const dir = Deno.makeTempDirSync({ prefix: "huatuo-systemd-" });
    const port = freePort();
    Deno.writeTextFileSync(
      `${dir}/huatuo-bamai.conf`,
      Deno.readTextFileSync(`${ROOT}/huatuo-bamai.conf`)
        .replace(/^\s*#\s*TCPAddr = ":19704"\s*$/m, `\tTCPAddr = "127.0.0.1:${port}"`),
    );
    Deno.writeTextFileSync(
      `${dir}/sysconfig`,
      "HUATUO_REGION=systemd\nHUATUO_OPTS=--disable-kubelet --disable-storage\n",
    );
    const name = `huatuo-systemd-${port}`;
    const podman = (...args: string[]) => run("podman", [...PODMAN!, ...args]);
    await podman(
      "run",
      "-d",
      "--name",
      name,
      "--privileged",
      "--systemd=always",
      "--network",
      "host",
      "--ulimit",
      "nofile=10000:10000",
      "--ulimit",
      "nproc=4096:4096",
      "-v",
      `${ROOT}/_output:/usr/lib/huatuo-bamai:ro`,
      "-v",
      `${UNIT}:/etc/systemd/system/huatuo-bamai.service:ro`,
      "-v",
      `${dir}/huatuo-bamai.conf:/etc/huatuo-bamai/huatuo-bamai.conf:ro`,
      "-v",
      `${dir}/sysconfig:/etc/sysconfig/huatuo-bamai:ro`,
      "localhost/huatuo/systemd-test:latest",
      "/sbin/init",
    );
    const url = `http://127.0.0.1:${port}`;
    try {
      let state = "";
      for (let i = 0; i < 100 && !/^(running|degraded)/.test(state); i++) {
        await new Promise((r) => setTimeout(r, 200));
        state = (await exec("podman", [...PODMAN!, "exec", name, "systemctl", "is-system-running"])).text
          .trim();
      }
      await podman("exec", name, "systemctl", "start", "huatuo-bamai.service");
      let ready = 0;
      for (let i = 0; i < 300 && ready !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        ready = await fetch(`${url}/readyz`).then(async (r) => (await r.body?.cancel(), r.status), () => 0);
      }
      const journal = () => podman("exec", name, "journalctl", "-u", "huatuo-bamai", "--no-pager");
      assertEquals(ready, 200, await journal());
      const tracers = (await fetch(`${url}/v1/tracers`).then((r) => r.json())).tracers as { state: string }[];
      assert(tracers.length >= 16, JSON.stringify(tracers));
      assertEquals(tracers.filter((t) => t.state !== "running"), [], await journal());
      const metrics = await fetch(`${url}/metrics`).then((r) => r.text());
      assertEquals(
        metrics.split("\n").filter((l) => /^huatuo_bamai_scrape_collector_success\{.* 0$/.test(l)),
        [],
      );
      const pid =
        (await podman("exec", name, "systemctl", "show", "-p", "MainPID", "--value", "huatuo-bamai"))
          .trim();
      const status = await podman("exec", name, "cat", `/proc/${pid}/status`);
      const want = unitCaps().reduce((m, c) => m | (1n << BigInt(CAP_BITS[c])), 0n);
      for (const f of ["CapEff", "CapBnd", "CapAmb"]) {
        assertEquals(BigInt("0x" + status.match(new RegExp(`^${f}:\\s+(\\w+)`, "m"))![1]), want, f);
      }
      assertMatch(status, /^NoNewPrivs:\s+1$/m);
      assertMatch(status, /^Seccomp:\s+2$/m); // the SystemCallFilter is on
      // The state dir is writable; the rest of the file system is not.
      const rw = await podman(
        "exec",
        name,
        "nsenter",
        "-t",
        pid,
        "-m",
        "sh",
        "-c",
        "touch /var/lib/huatuo-bamai/.w && echo STATE_RW; touch /usr/.w 2>/dev/null || echo USR_RO; touch /etc/.w 2>/dev/null || echo ETC_RO",
      );
      assertMatch(rw, /STATE_RW/);
      assertMatch(rw, /USR_RO/);
      assertMatch(rw, /ETC_RO/);
      const live = await podman("exec", name, "systemd-analyze", "security", "huatuo-bamai.service");
      console.log(live.split("\n").filter((l) => l.includes("Overall")).join("\n"));
      // Stops cleanly within TimeoutStopSec.
      await podman("exec", name, "systemctl", "stop", "huatuo-bamai.service");
      const result =
        (await podman("exec", name, "systemctl", "show", "-p", "Result", "--value", "huatuo-bamai"))
          .trim();
      assertEquals(result, "success");
    } finally {
      await exec("podman", [...PODMAN!, "rm", "-f", name]);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
