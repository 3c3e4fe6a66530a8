// Container image and manifests: the Kubernetes DaemonSet, the ServiceMonitor,
// the compose file and the Dockerfile checked offline against the agent's
// real flags (src/cli/flags.ts), config keys (src/config/schema.ts), routes
// and environment; then, where rootful podman works, the image built from a
// local debootstrap base and run with the manifests' capabilities.

import { parse as parseYaml, parseAllDocuments } from "yaml";
import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { parseArgs } from "../src/cli/flags.ts";
import { parseConfig } from "../src/config/load.ts";
import { configSchema, splitHostPort } from "../src/config/schema.ts";
import { freePort, isRoot, ROOT } from "./agent.ts";

// deno-lint-ignore no-explicit-any
type Any = any;
const dec = new TextDecoder();
const DEFAULTS = configSchema.parse({});

/** Environment variables the agent reads (Deno.env.get("…") and ES_PASSWORD_ENV). */
function agentEnv(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) walk(p);
      else if (p.endsWith(".ts") && !p.endsWith("_test.ts")) {
        const text = Deno.readTextFileSync(p);
        for (const m of text.matchAll(/Deno\.env\.get\("([A-Z0-9_]+)"\)/g)) names.add(m[1]);
        for (const m of text.matchAll(/_ENV = "([A-Z0-9_]+)"/g)) names.add(m[1]);
      }
    }
  };
  walk(`${ROOT}/src`);
  return names;
}

/** GET routes of the API server (src/server/http.ts). */
function routes(): Set<string> {
  const text = Deno.readTextFileSync(`${ROOT}/src/server/http.ts`);
  return new Set([...text.matchAll(/add\(\s*"GET",\s*"([^"]+)"/g)].map((m) => m[1]));
}

/** The capabilities of the systemd unit, as container runtimes name them (SYS_ADMIN, …). */
function unitCaps(): string[] {
  const line = Deno.readTextFileSync(`${ROOT}/packaging/huatuo-bamai.service`)
    .match(/^CapabilityBoundingSet=(.*)$/m)![1];
  return line.trim().split(/\s+/).map((c) => c.replace(/^CAP_/, "")).sort();
}

function portOf(addr: string): number {
  const hp = splitHostPort(addr);
  assert(hp, `bad address ${addr}`);
  return hp.port;
}

/** The config path under `dir` is on a mount in `mounts` that is writable. */
function writableUnder(path: string, mounts: { mountPath: string; readOnly?: boolean }[]): boolean {
  const m = mounts.filter((v) => path === v.mountPath || path.startsWith(`${v.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  return m !== undefined && !m.readOnly;
}

Deno.test("deploy: Kubernetes DaemonSet matches the agent's flags, config, routes and env", () => {
  const docs = parseAllDocuments(Deno.readTextFileSync(`${ROOT}/deploy/kubernetes/daemonset.yaml`))
    .map((d) => {
      assertEquals(d.errors, []);
      return d.toJS() as Any;
    });
  const byKind = (k: string) => docs.find((d) => d.kind === k);
  const ds = byKind("DaemonSet");
  const cm = byKind("ConfigMap");
  const svc = byKind("Service");
  const ns = byKind("Namespace").metadata.name;
  for (const d of [ds, cm, svc]) assertEquals(d.metadata.namespace, ns);
  const pod = ds.spec.template.spec;
  assertEquals(ds.spec.selector.matchLabels, ds.spec.template.metadata.labels);
  assertEquals(svc.spec.selector, ds.spec.selector.matchLabels);
  assert(pod.hostPID && pod.hostNetwork, "hostPID and hostNetwork");
  assertEquals(pod.containers.length, 1);
  const c = pod.containers[0];

  // Args: $(VAR) from the container's env, then the agent's own parser.
  const env = new Map<string, Any>(c.env.map((e: Any) => [e.name, e]));
  const args = (c.args as string[]).map((a) =>
    a.replace(/\$\((\w+)\)/g, (_, n) => {
      assert(env.get(n)?.value, `args use $(${n}), not set in env`);
      return env.get(n).value;
    })
  );
  const cmd = parseArgs(args);
  assert(cmd.kind === "run", JSON.stringify(cmd));
  const known = agentEnv();
  for (const name of env.keys()) {
    assert(
      known.has(name) || c.args.some((a: string) => a.includes(`$(${name})`)),
      `env ${name}: the agent never reads it`,
    );
  }

  // The config: the ConfigMap mounted at --config-dir, valid for the agent.
  const mounts = c.volumeMounts as { name: string; mountPath: string; readOnly?: boolean }[];
  const volumes = new Map<string, Any>(pod.volumes.map((v: Any) => [v.name, v]));
  for (const m of mounts) assert(volumes.has(m.name), `mount ${m.name} has no volume`);
  const configMount = mounts.find((m) => m.mountPath === cmd.options.configDir)!;
  assert(configMount, `--config-dir ${cmd.options.configDir} is not mounted`);
  assertEquals(volumes.get(configMount.name).configMap.name, cm.metadata.name);
  const conf = parseConfig(cm.data["huatuo-bamai.conf"], "configmap");
  // The local store and the outbox are on the node (hostPath), writable.
  for (const p of [conf.Storage.LocalFile.Path, conf.Storage.ES.OutboxPath]) {
    assert(p.startsWith("/"), `${p}: relative to the image's WORKDIR, lost on restart`);
    assert(writableUnder(p, mounts), `${p} is not on a writable mount`);
    const m = mounts.find((v) => p.startsWith(`${v.mountPath}/`))!;
    assert(volumes.get(m.name).hostPath, `${p} is not on a hostPath volume`);
  }
  // Host paths the agent reads or writes.
  const hostPaths = new Map(
    mounts.filter((m) => volumes.get(m.name).hostPath).map((m) => [volumes.get(m.name).hostPath.path, m]),
  );
  for (const p of ["/sys", "/sys/fs/cgroup", "/sys/kernel/tracing", "/sys/kernel/btf"]) {
    assert(hostPaths.has(p), `${p} not mounted`);
    assertEquals(hostPaths.get(p)!.mountPath, p);
  }
  assert(writableUnder("/sys/fs/cgroup/x", mounts), "/sys/fs/cgroup read-only (--enable-cgroup)");
  assert(writableUnder("/sys/kernel/tracing/x", mounts), "/sys/kernel/tracing read-only (tracefs mount)");
  assert(writableUnder("/tmp/x", mounts), "no writable /tmp with a read-only root");

  // One port everywhere: the config's TCPAddr.
  const port = portOf(conf.APIServer.TCPAddr);
  assertEquals(c.ports[0].containerPort, port);
  assertEquals(c.ports[0].hostPort, port);
  assertEquals(Number(ds.spec.template.metadata.annotations["prometheus.io/port"]), port);
  assertEquals(ds.spec.template.metadata.annotations["prometheus.io/scrape"], "true");
  const served = routes();
  assert(served.has(ds.spec.template.metadata.annotations["prometheus.io/path"]));
  assertEquals(c.livenessProbe.httpGet.path, "/healthz");
  assertEquals(c.readinessProbe.httpGet.path, "/readyz");
  for (const p of [c.livenessProbe, c.readinessProbe]) {
    assert(served.has(p.httpGet.path), `${p.httpGet.path} is not a route`);
    assertEquals(p.httpGet.port, port);
  }
  assertEquals(svc.spec.ports[0].port, port);
  assertEquals(svc.spec.ports[0].targetPort, c.ports[0].name);

  // Capabilities, not privileged: the unit's measured set.
  const sc = c.securityContext;
  assertEquals(sc.privileged, false);
  assertEquals(sc.allowPrivilegeEscalation, false);
  assertEquals(sc.readOnlyRootFilesystem, true);
  assertEquals(sc.seccompProfile.type, "RuntimeDefault");
  assertEquals(sc.capabilities.drop, ["ALL"]);
  assertEquals([...sc.capabilities.add].sort(), unitCaps());
  // Limits: the agent's [RuntimeCgroup] defaults.
  assertEquals(Number(c.resources.limits.cpu), DEFAULTS.RuntimeCgroup.LimitCPU);
  assertEquals(c.resources.limits.memory, `${DEFAULTS.RuntimeCgroup.LimitMem}Mi`);
  assert(c.resources.requests.cpu && c.resources.requests.memory);
});

Deno.test("deploy: ServiceMonitor selects the DaemonSet's Service and port", () => {
  const docs = parseAllDocuments(Deno.readTextFileSync(`${ROOT}/deploy/kubernetes/daemonset.yaml`))
    .map((d) => d.toJS() as Any);
  const svc = docs.find((d) => d.kind === "Service");
  const sm = parseYaml(Deno.readTextFileSync(`${ROOT}/deploy/kubernetes/servicemonitor.yaml`)) as Any;
  assertEquals(sm.apiVersion, "monitoring.coreos.com/v1");
  assertEquals(sm.kind, "ServiceMonitor");
  for (const [k, v] of Object.entries(sm.spec.selector.matchLabels)) assertEquals(svc.metadata.labels[k], v);
  assert(sm.spec.namespaceSelector.matchNames.includes(svc.metadata.namespace));
  const names = svc.spec.ports.map((p: Any) => p.name);
  for (const e of sm.spec.endpoints) {
    assert(names.includes(e.port), `endpoint port ${e.port} not in the Service`);
    assert(routes().has(e.path));
  }
});

Deno.test("deploy: compose file (agent, Prometheus, OpenSearch) is consistent", () => {
  const dir = `${ROOT}/deploy/compose`;
  const compose = parseYaml(Deno.readTextFileSync(`${dir}/docker-compose.yml`)) as Any;
  const { "huatuo-bamai": agent, prometheus, opensearch } = compose.services;
  assert(agent && prometheus && opensearch, Object.keys(compose.services).join(","));
  // ${VAR:-default} as compose substitutes it with VAR unset.
  const subst = (s: string) => s.replace(/\$\{(\w+):-([^}]*)\}/g, (_, _n, d) => d);
  const cmd = parseArgs(agent.command.map(subst));
  assert(cmd.kind === "run");
  const known = agentEnv();
  for (const name of Object.keys(agent.environment ?? {})) assert(known.has(name), `env ${name}: never read`);
  // Bind mounts: sources exist; the config file lands in --config-dir.
  const binds = (agent.volumes as string[]).map((v) => v.split(":"));
  for (const [src] of binds) {
    if (src.startsWith("./")) Deno.statSync(`${dir}/${src}`);
    else if (src.startsWith("/")) assert(src.startsWith("/sys"), src);
  }
  const confBind = binds.find(([, dst]) => dst === `${cmd.options.configDir}/huatuo-bamai.conf`);
  assert(confBind, "config not mounted into --config-dir");
  const conf = parseConfig(Deno.readTextFileSync(`${dir}/${confBind[0]}`), "compose");
  for (const p of [conf.Storage.LocalFile.Path, conf.Storage.ES.OutboxPath]) {
    assert(binds.some(([src, dst, ro]) => !src.startsWith("/") && p.startsWith(`${dst}/`) && ro !== "ro"), p);
  }
  for (const p of ["/sys", "/sys/fs/cgroup", "/sys/kernel/tracing"]) {
    assert(binds.some(([src, dst]) => src === p && dst === p), `${p} not mounted`);
  }
  assertEquals(agent.network_mode, "host");
  assertEquals(agent.pid, "host");
  assert(!agent.privileged, "privileged");
  assertEquals(agent.cap_drop, ["ALL"]);
  assertEquals([...agent.cap_add].sort(), unitCaps());
  assertEquals(agent.cpus, DEFAULTS.RuntimeCgroup.LimitCPU);
  assertEquals(agent.mem_limit, `${DEFAULTS.RuntimeCgroup.LimitMem}m`);
  // Prometheus scrapes the agent's TCPAddr; the agent stores into OpenSearch's port.
  const prom = parseYaml(Deno.readTextFileSync(`${dir}/prometheus.yml`)) as Any;
  const targets = prom.scrape_configs.flatMap((s: Any) => s.static_configs.flatMap((c: Any) => c.targets));
  assert(targets.includes(`127.0.0.1:${portOf(conf.APIServer.TCPAddr)}`), targets.join(","));
  assert(
    prometheus.volumes.some((v: string) => v.startsWith("./prometheus.yml:")),
    "prometheus.yml not mounted",
  );
  const es = new URL(conf.Storage.ES.Address);
  assertEquals(Number(es.port), Number(opensearch.environment["http.port"]));
  assertEquals(agent.depends_on.opensearch.condition, "service_healthy");
});

Deno.test("deploy: Dockerfile: base images as build args, labels, HEALTHCHECK, no test objects", () => {
  const text = Deno.readTextFileSync(`${ROOT}/Dockerfile`);
  assertMatch(text, /^ARG BASE=debian:bookworm-slim$/m);
  assertMatch(text, /^ARG BUILDER_BASE=/m);
  assertMatch(text, /^FROM \$\{BUILDER_BASE\} AS builder$/m);
  assertMatch(text, /^FROM \$\{BASE\}$/m);
  for (const l of ["title", "description", "version", "revision", "licenses", "url", "vendor"]) {
    assertMatch(text, new RegExp(`org\\.opencontainers\\.image\\.${l}=`));
  }
  assertMatch(text, /^HEALTHCHECK .*\n.*\/dev\/tcp\/127\.0\.0\.1\/19704 .*GET \/healthz /m);
  assertEquals(portOf(DEFAULTS.APIServer.TCPAddr), 19704);
  assertMatch(text, /^EXPOSE 19704$/m);
  // Only *.o from the top of _output/bpf: bpf/test/ stays in the builder.
  assertMatch(text, /cp -a _output\/bpf\/\*\.o/);
  assert(
    !/COPY --from=builder \/src\/_output\/ /.test(text),
    "copies all of _output (compile.log, bpf/test)",
  );
  const cmd = JSON.parse(text.match(/^CMD (\[.*\])$/m)![1]) as string[];
  assertEquals(parseArgs(cmd).kind, "run");
  const ignore = Deno.readTextFileSync(`${ROOT}/.dockerignore`).split("\n");
  for (const p of ["_output", ".tools", "node_modules"]) {
    assert(ignore.includes(p), `.dockerignore lacks ${p}`);
  }
});

// CO-RE: each object carries its own small BTF and relocation records
// (.BTF.ext), resolved against the running kernel's BTF at load; the build
// machine's kernel types (vmlinux.h) are not carried along.
Deno.test("deploy: BPF objects are CO-RE and carry no build-machine kernel BTF", async () => {
  const vmlinux = await new Deno.Command("bpftool", {
    args: ["btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
  })
    .output();
  const kernelTypes = dec.decode(vmlinux.stdout).split("\n").filter((l) => l.startsWith("[")).length;
  let n = 0;
  for (const e of Deno.readDirSync(`${ROOT}/_output/bpf`)) {
    if (!e.name.endsWith(".o")) continue;
    const obj = `${ROOT}/_output/bpf/${e.name}`;
    const sections = dec.decode(
      (await new Deno.Command("llvm-objdump", { args: ["-h", obj] }).output()).stdout,
    );
    assertMatch(sections, /\s\.BTF\s/, `${e.name}: no .BTF`);
    assertMatch(sections, /\s\.BTF\.ext\s/, `${e.name}: no .BTF.ext (CO-RE relocations)`);
    const btf = dec.decode(
      (await new Deno.Command("bpftool", { args: ["btf", "dump", "file", obj] }).output()).stdout,
    );
    const types = btf.split("\n").filter((l) => l.startsWith("[")).length;
    assert(types > 0 && types * 20 < kernelTypes, `${e.name}: ${types} BTF types (kernel ${kernelTypes})`);
    n++;
  }
  assert(n >= 10, `${n} objects`);
});

/** Rootful podman that can run a container here (crun needs pure cgroup v2; runc copes with hybrid). */
async function podmanArgs(): Promise<string[] | undefined> {
  if (!isRoot()) return undefined;
  const v2 = (() => {
    try {
      Deno.statSync("/sys/fs/cgroup/cgroup.controllers");
      return true;
    } catch {
      return false;
    }
  })();
  const runtime = v2 ? [] : ["--runtime", "runc"];
  try {
    const out = await new Deno.Command("podman", {
      args: [...runtime, "info"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return out.success ? runtime : undefined;
  } catch {
    return undefined;
  }
}

// podman's default rlimits exceed hard limits a container host may not raise.
const ULIMITS = ["--ulimit", "nofile=10000:10000", "--ulimit", "nproc=4096:4096"];
const IMAGE = "localhost/huatuo/huatuo-bamai:test";
const podman = await podmanArgs();

Deno.test({
  name: "deploy: the image builds from a local base, is small, healthy, and runs every tracer unprivileged",
  ignore: podman === undefined,
  fn: async () => {
    const run = async (cmd: string, args: string[], env?: Record<string, string>) => {
      const out = await new Deno.Command(cmd, { args, env, cwd: ROOT, stdout: "piped", stderr: "piped" })
        .output();
      const text = dec.decode(out.stdout) + dec.decode(out.stderr);
      if (!out.success) {
        throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}):\n${text.slice(-4000)}`);
      }
      return text;
    };
    await run("bash", ["packaging/image-build.sh", IMAGE], {
      PODMAN_RUNTIME: podman!.length ? "runc" : "",
      PODMAN_ULIMITS: ULIMITS.join(" "),
    });
    const inspect = JSON.parse(await run("podman", ["image", "inspect", IMAGE]))[0];
    const labels = inspect.Labels ?? inspect.Config?.Labels;
    assertEquals(labels["org.opencontainers.image.title"], "huatuo-bamai");
    assertMatch(labels["org.opencontainers.image.revision"], /^[0-9a-f]{40}$/);
    const health = (inspect.Healthcheck ?? inspect.Config?.Healthcheck)?.Test as string[];
    assertMatch(JSON.stringify(health), /127\.0\.0\.1\/19704/);
    const mb = inspect.Size / 1e6;
    console.log(`image ${IMAGE}: ${mb.toFixed(0)} MB`);
    assert(mb < 250, `${mb} MB`);
    // Nothing of the build in the image.
    const ls = await run("podman", [
      ...podman!,
      "run",
      ...ULIMITS,
      "--rm",
      "--entrypoint",
      "sh",
      IMAGE,
      "-c",
      "ls -R /home/huatuo-bamai; for t in clang npm node gcc bpftool; do command -v $t || true; done",
    ]);
    assert(!/compile\.log|broken\.o|flood\.o|minimal\.o/.test(ls), ls);
    assertMatch(ls, /oom\.o/);
    assert(!/\/usr\/bin\/(clang|npm|node|gcc|bpftool)/.test(ls), ls);

    // Run it as the DaemonSet does: its capabilities, the runtime's default seccomp
    // profile, read-only root, host PID and network.
    const dir = Deno.makeTempDirSync({ prefix: "huatuo-image-" });
    const port = freePort();
    Deno.writeTextFileSync(
      `${dir}/huatuo-bamai.conf`,
      `[APIServer]\nTCPAddr = "127.0.0.1:${port}"\n[Storage.LocalFile]\nPath = "/var/lib/huatuo-bamai/huatuo-local"\n`,
    );
    Deno.mkdirSync(`${dir}/state`);
    const name = `huatuo-it-${port}`;
    const caps = unitCaps();
    await run("podman", [
      ...podman!,
      "run",
      ...ULIMITS,
      "-d",
      "--name",
      name,
      "--network",
      "host",
      "--pid",
      "host",
      "--cap-drop",
      "all",
      ...caps.flatMap((c) => ["--cap-add", c]),
      "--security-opt",
      "no-new-privileges",
      "--read-only",
      "--tmpfs",
      "/tmp",
      "-v",
      `${dir}:/etc/huatuo-bamai:ro`,
      "-v",
      `${dir}/state:/var/lib/huatuo-bamai`,
      "-v",
      "/sys:/sys:ro",
      "-v",
      "/sys/fs/cgroup:/sys/fs/cgroup",
      "-v",
      "/sys/kernel/tracing:/sys/kernel/tracing",
      IMAGE,
      "--region",
      "image",
      "--config-dir",
      "/etc/huatuo-bamai",
      "--disable-kubelet",
      "--disable-storage",
    ]);
    const url = `http://127.0.0.1:${port}`;
    try {
      let ready = 0;
      for (let i = 0; i < 600 && ready !== 200; i++) {
        await new Promise((r) => setTimeout(r, 100));
        ready = await fetch(`${url}/readyz`).then(async (r) => (await r.body?.cancel(), r.status), () => 0);
      }
      assertEquals(ready, 200, await run("podman", ["logs", name]));
      // The agent is under the default seccomp filter, with only the added capabilities.
      const pid = (await run("podman", [...podman!, "inspect", name, "--format", "{{.State.Pid}}"])).trim();
      const status = Deno.readTextFileSync(`/proc/${pid}/status`);
      assertMatch(status, /^Seccomp:\s+2$/m);
      assertMatch(status, /^NoNewPrivs:\s+1$/m);
      assertEquals(BigInt("0x" + status.match(/^CapEff:\s+(\w+)/m)![1]), 0xc000280004n, status);
      const tracers = (await fetch(`${url}/v1/tracers`).then((r) => r.json())).tracers as Any[];
      assert(tracers.length >= 16);
      assertEquals(tracers.filter((t) => t.state !== "running"), [], await run("podman", ["logs", name]));
      // The image's own HEALTHCHECK command, on this test's port instead of 19704.
      assertEquals(health[0], "CMD");
      const probe = health.slice(1).map((a) => a.replace("/19704", `/${port}`));
      await run("podman", [...podman!, "exec", name, ...probe]);
      const bad = health.slice(1).map((a) => a.replace("/19704", `/${port}`).replace("/healthz", "/nope"));
      assert(
        !(await new Deno.Command("podman", { args: [...podman!, "exec", name, ...bad] }).output()).success,
      );
    } finally {
      await run("podman", [...podman!, "rm", "-f", name]).catch(() => {});
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
