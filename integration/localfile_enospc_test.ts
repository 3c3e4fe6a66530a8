// Storage.LocalFile on a disk that fills up, end to end: the real agent writes
// its documents to a 256 KiB tmpfs; real kernel events (UDP datagrams to closed
// ports → dropwatch documents) go on while the tmpfs is full and after it is
// freed. Every line of every local file must stay one whole JSON document,
// and storage_local_failed_total{tracer} must equal exactly the documents lost
// (events_total{tracer} minus the lines on disk).

import { assert, assertEquals } from "../testing/assert.ts";
import { isRoot, type RunningAgent, scrape, startAgent } from "./agent.ts";
import { closedUdpPortRange, run, sleep, udpDrops, withCleanup } from "./load.ts";
import { parseExposition } from "./prom.ts";

if (!isRoot()) console.warn("localfile ENOSPC integration test skipped: tmpfs and BPF need root");

/** Per-tracer values of a counter with a `tracer` label. */
function byTracer(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of parseExposition(text).values()) {
    if (s.name === `huatuo_bamai_${name}`) out.set(s.labels.tracer, s.value);
  }
  return out;
}

async function waitFor(what: string, cond: () => Promise<boolean>, ms: number, agent: RunningAgent) {
  const deadline = performance.now() + ms;
  while (!(await cond())) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}\n${agent.output()}`);
    await sleep(100);
  }
}

/** Writes zeros to `path` until the file system is full. */
function fill(path: string): void {
  const f = Deno.openSync(path, { write: true, create: true });
  const block = new Uint8Array(512);
  try {
    for (;;) f.writeSync(block);
  } catch (err) {
    if (!String(err).includes("No space left")) throw err;
  } finally {
    f.close();
  }
}

interface LocalLines {
  /** Whole, parsable documents per tracer_name (the live file and its rotations). */
  docs: Map<string, number>;
  /** Lines that do not parse as a JSON object, with their file. */
  bad: string[];
}

function readLocal(dir: string): LocalLines {
  const docs = new Map<string, number>();
  const bad: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (!e.isFile || e.name === "filler" || e.name.startsWith(".")) continue;
    const text = Deno.readTextFileSync(`${dir}/${e.name}`);
    if (text !== "" && !text.endsWith("\n")) bad.push(`${e.name}: ends inside a line`);
    for (const line of text.split("\n")) {
      if (line === "") continue;
      try {
        const doc = JSON.parse(line) as { tracer_name?: unknown };
        const name = String(doc.tracer_name);
        docs.set(name, (docs.get(name) ?? 0) + 1);
      } catch {
        bad.push(`${e.name}: ${line.length} bytes: ${line.slice(0, 80)}…${line.slice(-80)}`);
      }
    }
  }
  return { docs, bad };
}

Deno.test({
  name: "localfile: a full disk loses whole documents only, and counts exactly the ones it lost",
  ignore: !isRoot(),
  async fn() {
    await withCleanup(async (c) => {
      const local = Deno.makeTempDirSync({ prefix: "huatuo-it-localfile-" });
      c.defer(`remove ${local}`, () => Deno.removeSync(local, { recursive: true }));
      await run("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", local]);
      c.defer(`umount ${local}`, () => run("umount", [local]));

      const agent = await startAgent({
        args: ["--region", "dev", "--procfs-prefix", "fixtures", "--disable-kubelet"],
        conf: (p) => `[Storage.LocalFile]\nPath = "${local}"\n[APIServer]\nTCPAddr = "127.0.0.1:${p}"\n`,
      });
      c.defer("stop agent", () => agent.stop());
      const dw = await (await fetch(`${agent.url}/v1/tracers/dropwatch`)).json() as { state: string };
      assertEquals(dw.state, "running", `dropwatch tracer: ${JSON.stringify(dw)}`);

      const metrics = async () => {
        const text = await scrape(agent);
        return {
          events: byTracer(text, "events_total"),
          written: byTracer(text, "storage_local_written_total"),
          failed: byTracer(text, "storage_local_failed_total"),
        };
      };
      const dropEvents = async () => (await metrics()).events.get("dropwatch") ?? 0;
      // Drops well under the BPF flood limit (EventsPerSecond = 100 per CPU), so every one is an event.
      const drops = async (count: number) => {
        const before = await dropEvents();
        await udpDrops(closedUdpPortRange(count, 20_000), count, 50);
        await waitFor(
          `${count} dropwatch events`,
          async () => await dropEvents() >= before + count,
          10_000,
          agent,
        );
      };

      // 1. Room: documents land.
      await drops(10);
      assert(readLocal(local).docs.get("dropwatch")! >= 10, "documents written before the disk fills");
      // 2. Full: the documents still flow to subscribers and metrics; writes fail with ENOSPC.
      fill(`${local}/filler`);
      await drops(40);
      // 3. Freed: writing resumes.
      Deno.removeSync(`${local}/filler`);
      const failedWhenFreed = (await metrics()).failed.get("dropwatch") ?? 0;
      assert(failedWhenFreed > 0, "writes failed while the disk was full");
      await drops(10);

      // Settle: no event in flight between the scrape and the read of the files.
      let m = await metrics();
      let lines: LocalLines = readLocal(local);
      for (let i = 0; i < 50; i++) {
        await sleep(300);
        const again = await metrics();
        const now = readLocal(local);
        const same = JSON.stringify([...again.events]) === JSON.stringify([...m.events]) &&
          JSON.stringify([...now.docs]) === JSON.stringify([...lines.docs]);
        m = again;
        lines = now;
        if (same) break;
      }

      assertEquals(lines.bad, [], "every line of every local file is one JSON document");
      for (const [tracer, events] of m.events) {
        const onDisk = lines.docs.get(tracer) ?? 0;
        assertEquals(
          m.failed.get(tracer),
          events - onDisk,
          `${tracer}: storage_local_failed_total vs events_total ${events} - ${onDisk} lines`,
        );
        assertEquals(m.written.get(tracer), onDisk, `${tracer}: storage_local_written_total`);
      }
      const storeLog = () =>
        agent.output().split("\n").filter((l) => l.includes("local file") || l.includes("LocalFile")).join(
          "\n",
        );
      assertEquals(
        m.failed.get("dropwatch"),
        failedWhenFreed,
        `no failure once the disk has room\n${storeLog()}`,
      );
      assert(lines.docs.get("dropwatch")! >= 20, "documents written again after the disk was freed");

      // Logged once per streak: one ERROR with the cause and path, then an INFO with the losses.
      const log = agent.output().split("\n");
      const errors = log.filter((l) => l.includes("level=error") && l.includes("tracer=dropwatch"));
      assertEquals(errors.length, 1, errors.join("\n"));
      assert(errors[0].includes(`path=${local}/dropwatch`) && errors[0].includes("No space left"), errors[0]);
      assert(
        log.some((l) => l.includes('msg="local file written again" tracer=dropwatch') && /lost=\d+/.test(l)),
        "recovery logged with the number of lost documents",
      );
    });
  },
});
