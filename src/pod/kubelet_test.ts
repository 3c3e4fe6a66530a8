import { assert, assertEquals, assertMatch, assertRejects } from "../../testing/assert.ts";
import { createLogger, type Logger } from "../log/logger.ts";
import { defaultConfig } from "../config/schema.ts";
import {
  KubeletClient,
  kubeletCollector,
  loadClientCert,
  readBodyCapped,
  readBodyPrefix,
  rootCause,
  splitPem,
} from "./kubelet.ts";

const CERT = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----";
const CA = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----";
const EC_KEY = "-----BEGIN EC PRIVATE KEY-----\nMHckey\n-----END EC PRIVATE KEY-----";
const P8_KEY = "-----BEGIN PRIVATE KEY-----\nMIGkey\n-----END PRIVATE KEY-----";

function captureLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: "Debug", write: (l) => lines.push(l) }), lines };
}

const ID = "c".repeat(64);
const PODS = JSON.stringify({
  kind: "PodList",
  items: [{
    metadata: { name: "web-1", namespace: "shop", uid: "u-1" },
    status: {
      qosClass: "Guaranteed",
      containerStatuses: [{ name: "app", containerID: `containerd://${ID}` }],
    },
  }],
});

Deno.test("splitPem finds certificates and any kind of private key", () => {
  assertEquals(splitPem(`${CERT}\n${CA}\n${EC_KEY}\n`), { certs: [CERT, CA], keys: [EC_KEY] });
  assertEquals(splitPem(`junk\n${P8_KEY}\n${CERT}`), { certs: [CERT], keys: [P8_KEY] });
  assertEquals(splitPem("not pem"), { certs: [], keys: [] });
});

Deno.test("loadClientCert reads one combined PEM or a cert,key pair and names what is wrong", async () => {
  const dir = await Deno.makeTempDir({ prefix: "huatuo-kubelet-" });
  try {
    await Deno.writeTextFile(`${dir}/both.pem`, `${CERT}\n${P8_KEY}\n`);
    await Deno.writeTextFile(`${dir}/c.crt`, CERT);
    await Deno.writeTextFile(`${dir}/c.key`, EC_KEY);
    assertEquals(await loadClientCert(`${dir}/both.pem`), { cert: CERT, key: P8_KEY });
    assertEquals(await loadClientCert(`${dir}/c.crt, ${dir}/c.key`), { cert: CERT, key: EC_KEY });
    await assertRejects(() => loadClientCert(`${dir}/c.crt`), /no PRIVATE KEY in .*c\.crt/);
    await assertRejects(() => loadClientCert(`${dir}/c.key,${dir}/c.key`), /no CERTIFICATE in .*c\.key/);
    await assertRejects(() => loadClientCert(`${dir}/missing.pem`), /KubeletClientCertPath: .*missing\.pem/);
    await assertRejects(() => loadClientCert("a,b,c"), /want "cert,key"/);
    await assertRejects(() => loadClientCert("/dev/zero"), /KubeletClientCertPath: not a regular file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rootCause digs out the innermost error", () => {
  const inner = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
  assertEquals(
    rootCause(new TypeError("fetch failed", { cause: inner })),
    "connect ECONNREFUSED 127.0.0.1:1",
  );
  const coded = Object.assign(new Error("handshake failed"), { code: "ERR_SSL_X" });
  assertEquals(rootCause(coded), "handshake failed (ERR_SSL_X)");
  assertEquals(rootCause("plain"), "plain");
});

Deno.test("KubeletClient is disabled by both ports 0 or by --disable-kubelet, and then exports nothing", async () => {
  const { log, lines } = captureLog();
  const off = new KubeletClient({ readOnlyPort: 0, authorizedPort: 0, clientCertPath: "", log });
  assert(off.disabled);
  assertEquals(off.disabledReason, "KubeletReadOnlyPort and KubeletAuthorizedPort are 0");
  off.start();
  assertEquals(await off.refresh(), false);
  assertEquals(await kubeletCollector(off).collect(), []);
  assertEquals(off.podInfo("u", ID), undefined);

  const config = defaultConfig();
  const flag = KubeletClient.fromConfig(config, { disableKubelet: true, log });
  assert(flag.disabled);
  assertEquals(flag.disabledReason, "--disable-kubelet");
  const on = KubeletClient.fromConfig(config, { disableKubelet: false, log });
  assert(!on.disabled);
  assertEquals(on.disabledReason, undefined);
  assertEquals(lines, []);
});

Deno.test("read-only port: parses pods, keeps the last view through an outage, logs once each way", async () => {
  let mode: "ok" | "500" | "garbage" = "ok";
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    hits++;
    if (new URL(req.url).pathname !== "/pods") return new Response("404", { status: 404 });
    if (mode === "500") return new Response("kubelet is sad", { status: 500 });
    if (mode === "garbage") return new Response("<html>", { status: 200 });
    return new Response(PODS, { headers: { "content-type": "application/json" } });
  });
  const { log, lines } = captureLog();
  let updates = 0;
  const client = new KubeletClient({
    readOnlyPort: server.addr.port,
    authorizedPort: 0,
    clientCertPath: "",
    log,
    onUpdate: () => updates++,
  });
  try {
    assertEquals(await client.refresh(), true);
    assertEquals([updates, client.generation], [1, 1]);
    assertEquals(client.podInfo("", ID), {
      name: "app",
      pod: "web-1",
      namespace: "shop",
      qos: "guaranteed",
      type: "normal",
    });
    // Unknown container of a known pod: pod-level facts.
    assertEquals(client.podInfo("u-1", "d".repeat(64))?.pod, "web-1");
    assertEquals(client.podInfo("u-1", "d".repeat(64))?.name, "");
    assertEquals(client.podInfo("u-2", "d".repeat(64)), undefined);
    assertEquals(client.stats(), { up: 1, pods: 1, errors: 0 });
    assertEquals(lines.length, 1);
    assertMatch(lines[0], /level=info msg="kubelet pods fetched" .*pods=1/);

    mode = "500";
    assertEquals(await client.refresh(), false);
    mode = "garbage";
    assertEquals(await client.refresh(), false);
    assertEquals(client.stats(), { up: 0, pods: 1, errors: 2 });
    assertEquals(updates, 1, "no update from a failed poll");
    assertEquals(client.podInfo("", ID)?.name, "app", "last good view kept");
    const warns = lines.filter((l) => l.includes("level=warn"));
    assertEquals(warns.length, 1, "root cause logged once per outage");
    assertMatch(warns[0], /HTTP 500 Internal Server Error: kubelet is sad/);
    assertMatch(warns[0], /pods_kept=1/);

    mode = "ok";
    assertEquals(await client.refresh(), true);
    assertMatch(lines.at(-1)!, /level=info msg="kubelet reachable again"/);
    const samples = await kubeletCollector(client).collect();
    assertEquals(samples.map((s) => [s.name, s.value]), [["kubelet_up", 1], ["kubelet_pods", 1], [
      "kubelet_errors_total",
      2,
    ]]);
    assert(hits >= 4);
  } finally {
    client.stop();
    await server.shutdown();
  }
});

/** A body of `total` bytes sent in 64 KiB chunks without a content-length (chunked encoding). */
function chunked(total: number, delayMs = 0, fill = 0x20): ReadableStream<Uint8Array> {
  let sent = 0;
  const chunk = new Uint8Array(64 * 1024).fill(fill);
  return new ReadableStream({
    async pull(c) {
      if (sent >= total) return c.close();
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      c.enqueue(chunk.subarray(0, n));
    },
  });
}

Deno.test("read-only port: the answer is capped by size (with or without content-length) and by time", async () => {
  let mode: "chunked" | "length" | "trickle" | "error" | "ok" = "chunked";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    switch (mode) {
      case "chunked":
        return new Response(chunked(1024 * 1024));
      case "length":
        return new Response(new Uint8Array(1024 * 1024).fill(0x20));
      case "trickle":
        // Headers at once, then 64 KiB every 100 ms: never silent, never done within the timeout.
        return new Response(chunked(10 * 1024 * 1024, 100));
      case "error":
        return new Response(chunked(10 * 1024 * 1024, 0, 0x78), { status: 500 });
      case "ok":
        return new Response(PODS);
    }
  });
  const { log, lines } = captureLog();
  const client = new KubeletClient({
    readOnlyPort: server.addr.port,
    authorizedPort: 0,
    clientCertPath: "",
    log,
    maxBodyBytes: 256 * 1024,
    requestTimeoutMs: 400,
  });
  try {
    assertEquals(await client.refresh(), false);
    assertMatch(lines.at(-1)!, /\/pods answer exceeds 262144 bytes/);
    mode = "length";
    assertEquals(await client.refresh(), false);
    assertMatch(lines.at(-1)!, /\/pods answer of 1048576 bytes exceeds 262144/);
    mode = "trickle";
    const t0 = performance.now();
    assertEquals(await client.refresh(), false);
    const ms = performance.now() - t0;
    assert(ms < 2000, `a trickling answer is cut off at the timeout: ${ms} ms`);
    assertMatch(lines.at(-1)!, /no answer within 400 ms/);
    mode = "error";
    assertEquals(await client.refresh(), false);
    const quoted = /HTTP 500 Internal Server Error: (x*)/.exec(lines.at(-1)!);
    assertEquals(quoted?.[1].length, 200, "only the start of an error answer is read and quoted");
    mode = "ok";
    assertEquals(await client.refresh(), true);
  } finally {
    client.stop();
    await server.shutdown();
  }
});

Deno.test("readBodyCapped and readBodyPrefix stop reading at their bound", async () => {
  assertEquals((await readBodyCapped(chunked(1000), 1000)).length, 1000);
  await assertRejects(() => readBodyCapped(chunked(1001), 1000), /exceeds 1000 bytes/);
  assertEquals(await readBodyCapped(null, 10), "");
  // An endless body: the prefix reader takes what it needs and cancels the rest.
  const endless = new ReadableStream<Uint8Array>({ pull: (c) => c.enqueue(new Uint8Array(100).fill(0x41)) });
  assertEquals(await readBodyPrefix(endless, 250), "A".repeat(250));
});

Deno.test("polling backs off exponentially while the kubelet fails and resumes the interval after", async () => {
  const times: number[] = [];
  let ok = false;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
    times.push(performance.now());
    return ok ? new Response(PODS) : new Response("down", { status: 503 });
  });
  const { log } = captureLog();
  const client = new KubeletClient({
    readOnlyPort: server.addr.port,
    authorizedPort: 0,
    clientCertPath: "",
    log,
    pollIntervalMs: 40,
    maxBackoffMs: 160,
  });
  try {
    client.start();
    await new Promise((r) => setTimeout(r, 900));
    // Delays 40, 80, 160, 160, 160 …: about 7 polls in 900 ms, against ~22 without backoff.
    const gaps = times.slice(1).map((t, i) => t - times[i]);
    assert(times.length >= 4 && times.length <= 10, `polls while failing: ${times.length}`);
    // Timers never fire early, so lower bounds hold even on a loaded machine.
    assert(gaps[0] >= 35 && gaps[1] >= 75 && gaps[2] >= 150, `gaps double: ${gaps}`);
    assert(gaps.every((g) => g < 160 + 300), `capped at maxBackoffMs: ${gaps}`);
    ok = true;
    await new Promise((r) => setTimeout(r, 400));
    assertEquals(client.stats().up, 1);
    const n = times.length;
    await new Promise((r) => setTimeout(r, 400));
    assert(times.length - n >= 6, `back to the 40 ms interval: ${times.length - n} polls in 400 ms`);
  } finally {
    client.stop();
    await server.shutdown();
  }
});
