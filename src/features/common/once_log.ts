// One log line per device and reason: a collector that runs every scrape must
// not repeat the same complaint each time. The same trouble is said again only
// after a scrape found the device well.

import type { Logger } from "../../log/logger.ts";

export class OnceLog {
  readonly #said = new Map<string, string>();
  constructor(private readonly log: Logger, private readonly msg: string) {}

  trouble(device: string, reason: string): void {
    if (this.#said.get(device) === reason) return;
    this.#said.set(device, reason);
    this.log.warn(this.msg, { device, reason });
  }

  well(device: string): void {
    this.#said.delete(device);
  }
}
