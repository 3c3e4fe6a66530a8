// The kubelet client against a real mutual-TLS server standing in for the
// kubelet's authorized port: `openssl s_server -Verify 1 -verify_return_error
// -WWW` serving a PodList at /pods and refusing any client whose certificate is
// missing or not signed by its CA (the kubelet's --client-ca-file). Certificates
// are made fresh with openssl for every run. The read-only port is a Deno.serve
// stand-in. No root needed; openssl must be installed.

import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { createLogger, type Logger } from "../src/log/logger.ts";
import { KubeletClient, kubeletCollector } from "../src/pod/kubelet.ts";

const APP = "3f".repeat(32);
const ENVOY = "4e".repeat(32);
const PROXY = "5d".repeat(32);
const ETCD = "6c".repeat(32);

// A realistic kubelet /pods answer: a Deployment pod with a native sidecar and an
// init container, a DaemonSet pod, a static pod, and a pod still being created.
const POD_LIST = {
  kind: "PodList",
  apiVersion: "v1",
  metadata: {},
  items: [
    {
      metadata: {
        name: "checkout-6b8f7d9c4-x7k2p",
        generateName: "checkout-6b8f7d9c4-",
        namespace: "shop",
        uid: "8d2c1a9e-52b4-4b8e-9c1f-2f7d5e3a1b60",
        labels: { app: "checkout", "pod-template-hash": "6b8f7d9c4" },
        annotations: {
          "kubernetes.io/config.seen": "2025-05-01T10:00:00Z",
          "kubernetes.io/config.source": "api",
        },
        ownerReferences: [{
          apiVersion: "apps/v1",
          kind: "ReplicaSet",
          name: "checkout-6b8f7d9c4",
          uid: "1b1e9f0c-0000-4000-8000-000000000001",
          controller: true,
          blockOwnerDeletion: true,
        }],
      },
      spec: {
        nodeName: "node1",
        initContainers: [
          { name: "db-migrate", image: "registry.local/checkout-migrate:1.4" },
          { name: "envoy", image: "envoyproxy/envoy:v1.30", restartPolicy: "Always" },
        ],
        containers: [{
          name: "checkout",
          image: "registry.local/checkout:1.4",
          resources: { requests: { cpu: "250m", memory: "256Mi" }, limits: { memory: "512Mi" } },
        }],
      },
      status: {
        phase: "Running",
        qosClass: "Burstable",
        podIP: "10.244.1.17",
        initContainerStatuses: [
          {
            name: "db-migrate",
            containerID: `containerd://${"2a".repeat(32)}`,
            state: { terminated: { exitCode: 0, reason: "Completed" } },
            ready: true,
            restartCount: 0,
          },
          {
            name: "envoy",
            containerID: `containerd://${ENVOY}`,
            state: { running: { startedAt: "2025-05-01T10:00:05Z" } },
            ready: true,
            restartCount: 0,
            started: true,
          },
        ],
        containerStatuses: [{
          name: "checkout",
          containerID: `containerd://${APP}`,
          state: { running: { startedAt: "2025-05-01T10:00:09Z" } },
          ready: true,
          restartCount: 1,
          lastState: { terminated: { containerID: `containerd://${"77".repeat(32)}`, exitCode: 137 } },
        }],
      },
    },
    {
      metadata: {
        name: "kube-proxy-9xq4t",
        namespace: "kube-system",
        uid: "c0ffee00-1111-4222-8333-444455556666",
        ownerReferences: [{ apiVersion: "apps/v1", kind: "DaemonSet", name: "kube-proxy", controller: true }],
      },
      spec: { containers: [{ name: "kube-proxy", image: "registry.k8s.io/kube-proxy:v1.30.0" }] },
      status: {
        phase: "Running",
        qosClass: "BestEffort",
        containerStatuses: [{
          name: "kube-proxy",
          containerID: `containerd://${PROXY}`,
          state: { running: {} },
        }],
      },
    },
    {
      metadata: {
        name: "etcd-node1",
        namespace: "kube-system",
        uid: "5e4d3c2b-1a09-4f8e-8d7c-6b5a49382716",
        annotations: {
          "kubernetes.io/config.hash": "0b7a9e6f4c3d2e1f",
          "kubernetes.io/config.source": "file",
          "kubeadm.kubernetes.io/etcd.advertise-client-urls": "https://10.0.0.11:2379",
        },
        ownerReferences: [{ apiVersion: "v1", kind: "Node", name: "node1", controller: true }],
      },
      spec: { containers: [{ name: "etcd", image: "registry.k8s.io/etcd:3.5.12-0" }], priority: 2000001000 },
      status: {
        phase: "Running",
        qosClass: "Burstable",
        containerStatuses: [{ name: "etcd", containerID: `containerd://${ETCD}`, state: { running: {} } }],
      },
    },
    {
      metadata: { name: "batch-job-zt8kq", namespace: "jobs", uid: "9a8b7c6d-0000-4111-8222-333344445555" },
      spec: { containers: [{ name: "worker", image: "busybox" }] },
      status: {
        phase: "Pending",
        qosClass: "BestEffort",
        containerStatuses: [{ name: "worker", state: { waiting: { reason: "ContainerCreating" } } }],
      },
    },
  ],
};

const td = new TextDecoder();

async function openssl(cwd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`openssl ${args.join(" ")}: ${td.decode(out.stderr).trim()}`);
}

/** A CA, the kubelet serving cert, a client cert from that CA and one from an unrelated CA. */
async function makeCerts(dir: string): Promise<void> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  for (const ca of ["ca", "other-ca"]) {
    await openssl(
      dir,
      "req",
      "-x509",
      ...ec,
      "-keyout",
      `${ca}.key`,
      "-out",
      `${ca}.pem`,
      "-days",
      "1",
      "-subj",
      `/CN=${ca}`,
    );
  }
  const sign = async (name: string, ca: string, subj: string, ext: string) => {
    await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
    await openssl(dir, "req", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj);
    await openssl(
      dir,
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      `${ca}.pem`,
      "-CAkey",
      `${ca}.key`,
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "1",
      "-extfile",
      `${name}.ext`,
    );
  };
  await sign("srv", "ca", "/CN=node1@1714557600", "subjectAltName=DNS:node1\nextendedKeyUsage=serverAuth\n");
  const client = "extendedKeyUsage=clientAuth\n";
  await sign("client", "ca", "/O=system:masters/CN=kube-apiserver-kubelet-client", client);
  await sign("intruder", "other-ca", "/O=system:masters/CN=kube-apiserver-kubelet-client", client);
  // kubelet-client-current.pem style: certificate and key in one file.
  await Deno.writeTextFile(
    `${dir}/client-combined.pem`,
    (await Deno.readTextFile(`${dir}/client.pem`)) + (await Deno.readTextFile(`${dir}/client.key`)),
  );
  await Deno.mkdir(`${dir}/www`);
  // -WWW serves ./<path>: GET /pods → the file "pods".
  await Deno.writeTextFile(`${dir}/www/pods`, JSON.stringify(POD_LIST));
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface MtlsServer {
  port: number;
  stop(): Promise<void>;
}

/** openssl s_server requiring a client certificate signed by ca.pem (as the kubelet's --client-ca-file). */
async function startMtlsServer(dir: string, port: number): Promise<MtlsServer> {
  const child = new Deno.Command("openssl", {
    args: [
      "s_server",
      "-accept",
      `127.0.0.1:${port}`,
      "-cert",
      "../srv.pem",
      "-key",
      "../srv.key",
      "-CAfile",
      "../ca.pem",
      "-Verify",
      "1",
      "-verify_return_error",
      "-WWW",
      "-quiet",
    ],
    cwd: `${dir}/www`,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        child.kill();
        await child.status;
        throw new Error(`openssl s_server did not listen on ${port}: ${err}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    port,
    stop: async () => {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

function captureLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: "Info", write: (l) => lines.push(l) }), lines };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function assertFullView(client: KubeletClient): void {
  assertEquals(client.view?.pods, 4);
  assertEquals(client.podInfo("", APP), {
    name: "checkout",
    pod: "checkout-6b8f7d9c4-x7k2p",
    namespace: "shop",
    qos: "burstable",
    type: "normal",
  });
  assertEquals(client.podInfo("", ENVOY)?.type, "sidecar");
  assertEquals(client.podInfo("", PROXY)?.type, "daemonset");
  assertEquals(client.podInfo("", PROXY)?.qos, "besteffort");
  assertEquals(client.podInfo("", ETCD)?.type, "static");
  // The worker has no container id yet: its cgroup is matched by pod UID.
  assertEquals(
    client.podInfo("9a8b7c6d-0000-4111-8222-333344445555", "88".repeat(32))?.pod,
    "batch-job-zt8kq",
  );
}

const hasOpenssl = await new Deno.Command("openssl", { args: ["version"], stdout: "null", stderr: "null" })
  .output().then((o) => o.success, () => false);
if (!hasOpenssl) console.warn("integration/kubelet_test.ts skipped: openssl is not installed");

Deno.test({
  name: "kubelet client against a real mutual-TLS kubelet stand-in",
  ignore: !hasOpenssl,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-it-kubelet-" });
    await makeCerts(dir);
    const server = await startMtlsServer(dir, freePort());
    try {
      await t.step("correct client certificate (cert,key pair and combined PEM) → pods parsed", async () => {
        for (const certPath of [`${dir}/client.pem,${dir}/client.key`, `${dir}/client-combined.pem`]) {
          const { log, lines } = captureLog();
          const client = new KubeletClient({
            readOnlyPort: 0,
            authorizedPort: server.port,
            clientCertPath: certPath,
            log,
          });
          assertEquals(await client.refresh(), true, lines.join(""));
          assertFullView(client);
          assertMatch(
            lines.join(""),
            /msg="kubelet pods fetched" url=https:\/\/127\.0\.0\.1:\d+\/pods pods=4/,
          );
          client.stop();
        }
      });

      await t.step(
        "no client certificate → refused by the server, logged with the cause and a hint",
        async () => {
          const { log, lines } = captureLog();
          const client = new KubeletClient({
            readOnlyPort: 0,
            authorizedPort: server.port,
            clientCertPath: "",
            log,
          });
          assertEquals(await client.refresh(), false);
          assertEquals(await client.refresh(), false);
          assertEquals(client.view, undefined);
          assertEquals(client.stats(), { up: 0, pods: 0, errors: 2 });
          assertEquals(lines.length, 1, "logged once for the outage");
          assertMatch(lines[0], /level=warn .*error=".*CertificateRequired/);
          assertMatch(lines[0], /hint="KubeletClientCertPath is empty/);
          client.stop();
        },
      );

      await t.step(
        "certificate from another CA → refused, last good view kept, recovery logged",
        async () => {
          const path = `${dir}/rotating.pem`;
          await Deno.copyFile(`${dir}/client-combined.pem`, path);
          const { log, lines } = captureLog();
          const client = new KubeletClient({
            readOnlyPort: 0,
            authorizedPort: server.port,
            clientCertPath: path,
            log,
          });
          assertEquals(await client.refresh(), true);
          // The file is re-read per connection, as for a rotated kubelet-client-current.pem.
          await Deno.writeTextFile(
            path,
            (await Deno.readTextFile(`${dir}/intruder.pem`)) +
              (await Deno.readTextFile(`${dir}/intruder.key`)),
          );
          assertEquals(await client.refresh(), false);
          assertEquals(await client.refresh(), false);
          assertFullView(client);
          const warns = lines.filter((l) => l.includes("level=warn"));
          assertEquals(warns.length, 1);
          assertMatch(warns[0], /error=".*UnknownCA/);
          assertMatch(warns[0], /pods_kept=4/);
          const samples = await kubeletCollector(client).collect();
          assertEquals(samples.map((s) => [s.name, s.value]), [
            ["kubelet_up", 0],
            ["kubelet_pods", 4],
            ["kubelet_errors_total", 2],
          ]);
          await Deno.copyFile(`${dir}/client-combined.pem`, path);
          assertEquals(await client.refresh(), true);
          assertMatch(lines.at(-1)!, /msg="kubelet reachable again"/);
          client.stop();
        },
      );

      await t.step("read-only port refused → falls back to the authorized port", async () => {
        const { log } = captureLog();
        const client = new KubeletClient({
          readOnlyPort: freePort(),
          authorizedPort: server.port,
          clientCertPath: `${dir}/client-combined.pem`,
          log,
        });
        assertEquals(await client.refresh(), true);
        assertFullView(client);
        client.stop();
      });
    } finally {
      await server.stop();
    }

    await t.step("kubelet down at start, started later → picked up after backoff", async () => {
      const port = freePort();
      const { log, lines } = captureLog();
      const client = new KubeletClient({
        readOnlyPort: 0,
        authorizedPort: port,
        clientCertPath: `${dir}/client.pem,${dir}/client.key`,
        log,
        pollIntervalMs: 100,
        maxBackoffMs: 400,
      });
      client.start();
      let late: MtlsServer | undefined;
      try {
        await until(() => client.stats().errors >= 3, 3000, "three failed polls");
        assertEquals(client.stats().up, 0);
        assertEquals(lines.length, 1);
        assertMatch(lines[0], /level=warn .*error=".*ECONNREFUSED/);
        late = await startMtlsServer(dir, port);
        const t0 = Date.now();
        await until(() => client.stats().up === 1, 3000, "the late kubelet to be picked up");
        assert(Date.now() - t0 <= 400 + 500, "picked up within one max backoff");
        assertFullView(client);
        assertMatch(lines.at(-1)!, /msg="kubelet reachable again" .*pods=4 down_s=\d+/);
      } finally {
        client.stop();
        await late?.stop();
      }
    });

    await t.step("both ports 0 → disabled, no polling, no series", async () => {
      const { log, lines } = captureLog();
      const client = new KubeletClient({
        readOnlyPort: 0,
        authorizedPort: 0,
        clientCertPath: `${dir}/client.pem`,
        log,
      });
      assert(client.disabled);
      client.start();
      assertEquals(await client.refresh(), false);
      assertEquals(await kubeletCollector(client).collect(), []);
      assertEquals(lines, []);
    });

    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("kubelet client on the plain-http read-only port (Deno.serve stand-in)", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname !== "/pods") return new Response("not found", { status: 404 });
    return Response.json(POD_LIST);
  });
  const { log } = captureLog();
  const client = new KubeletClient({
    readOnlyPort: server.addr.port,
    authorizedPort: 0,
    clientCertPath: "",
    log,
  });
  try {
    client.start();
    await until(() => client.stats().up === 1, 3000, "the first poll");
    assertFullView(client);
  } finally {
    client.stop();
    await server.shutdown();
  }
});
