// Worker of bench/events.ts: holds a share of the fan-out benchmark's SSE
// clients on its own thread, so the clients' reading is not limited to the
// benchmark's main thread. Messages: {open: {url, body, n}} → "opened";
// "count" → number[] (messages per client); "close" → "closed".

/// <reference lib="deno.worker" />

const counts: number[] = [];
const aborts: AbortController[] = [];

/** Counts complete SSE messages ("\n\n" ends each) without decoding. */
async function client(url: string, body: string, idx: number): Promise<void> {
  const abort = new AbortController();
  aborts.push(abort);
  const res = await fetch(`${url}/v1/events/watch`, { method: "POST", body, signal: abort.signal });
  if (res.status !== 200) throw new Error(`watch: HTTP ${res.status}`);
  (async () => {
    let prevNl = false;
    try {
      for await (const value of res.body!) {
        let i = value.indexOf(10);
        if (i === 0 && prevNl) counts[idx]++;
        while (i >= 0) {
          if (value[i + 1] === 10) counts[idx]++;
          i = value.indexOf(10, i + 1);
        }
        prevNl = value[value.length - 1] === 10;
      }
    } catch { /* aborted */ }
  })();
}

self.onmessage = async (e: MessageEvent) => {
  const msg = e.data;
  if (msg === "count") {
    self.postMessage([...counts]);
  } else if (msg === "close") {
    for (const a of aborts) a.abort();
    self.postMessage("closed");
  } else if (msg.open) {
    const { url, body, n } = msg.open as { url: string; body: string; n: number };
    for (let i = 0; i < n; i++) {
      counts.push(0);
      await client(url, body, counts.length - 1);
    }
    self.postMessage("opened");
  }
};
