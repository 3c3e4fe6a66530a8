// Starting a tracer in a test: a silent log, the test's abort signal, and a
// fail() that throws, so a tracer that fails while running fails the test.

import { silentLogger } from "../src/log/logger.ts";
import type { TracerContext } from "../src/tracing/manager.ts";

export function testTracerContext(signal: AbortSignal = new AbortController().signal): TracerContext {
  return {
    log: silentLogger,
    signal,
    fail: (err) => {
      throw err;
    },
  };
}
