// In-process fan-out of event documents to watch subscribers (the seed's
// EventsWatch 分发层). publish() never blocks: every subscriber owns a bounded
// queue (4096 events; the seed's buffered channel holds 256, but our tracers
// publish a whole ring-buffer poll in one event-loop turn, so the queue must
// absorb a burst; the events are shared by all subscribers, so the memory held
// is at most 4096 events in all, not per client) and one whose queue is full is
// cut off, so a slow reader never slows the others. A bounded replay window of
// recent events lets a reconnecting subscriber resume after its last sequence.

import type { EventDocument } from "../core/document.ts";

export interface HubEvent {
  /** Monotonic, starting at 1; used as the SSE `id:`. */
  seq: number;
  /** CloudEvents id: a UUID v4 generated once per published event, stable across replays. */
  id: string;
  /** Wall-clock time of publish(), the fallback when the document carries no parsable time. */
  publishedAt: Date;
  doc: EventDocument;
}

export const DEFAULT_QUEUE_SIZE = 4096;

export interface EventHubOptions {
  /** Live events a subscriber may have pending before it is cut off. Default 4096. */
  queueSize?: number;
  /** Most recent events kept for resuming subscribers. Default 1024. */
  replaySize?: number;
}

export interface SubscribeOptions {
  /** Replay retained events with seq greater than this before going live. */
  lastEventId?: number;
  /** Only events for which this returns true are queued (and replayed). */
  filter?: (doc: EventDocument) => boolean;
}

export type CloseReason = "closed" | "slow";

export interface HubStats {
  published: number;
  /** Events handed to subscribers by next(), replayed ones included. */
  delivered: number;
  /** Subscribers cut off because their queue was full or their writes kept failing. */
  droppedClients: number;
  /** Subscribers cut off because their filters used more than their time budget. */
  filterBudgetCutOffs: number;
  /** Replayed events handed to subscribers by next(). */
  replayed: number;
  subscribers: number;
  /** Published events by tracer_name. */
  byTracer: ReadonlyMap<string, number>;
}

export class Subscription {
  #replay: HubEvent[];
  #queue: HubEvent[] = [];
  #waiter: ((ev: HubEvent | null) => void) | undefined;
  #closeReason: CloseReason | undefined;
  #onClose: Array<(reason: CloseReason) => void> = [];

  constructor(
    private readonly hub: EventHub,
    readonly filter: ((doc: EventDocument) => boolean) | undefined,
    replay: HubEvent[],
    private readonly queueSize: number,
  ) {
    this.#replay = replay;
  }

  /** Undefined while open; why it closed otherwise. */
  get closeReason(): CloseReason | undefined {
    return this.#closeReason;
  }

  /** Events waiting to be taken (replay backlog plus live queue). */
  get pending(): number {
    return this.#replay.length + this.#queue.length;
  }

  /** Called once when the subscription closes (immediately if already closed). */
  onClose(fn: (reason: CloseReason) => void): void {
    if (this.#closeReason) fn(this.#closeReason);
    else this.#onClose.push(fn);
  }

  /** The next event: replay backlog first, then live. Null once closed and drained. */
  next(): Promise<HubEvent | null> {
    const replayed = this.#replay.shift();
    if (replayed) {
      this.hub.countDelivered(true);
      return Promise.resolve(replayed);
    }
    const live = this.#queue.shift();
    if (live) {
      this.hub.countDelivered(false);
      return Promise.resolve(live);
    }
    if (this.#closeReason) return Promise.resolve(null);
    if (this.#waiter) return Promise.reject(new Error("concurrent next() on a subscription"));
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /**
   * Up to `max` events available right now, without waiting: lets a writer
   * send what piled up during one event-loop turn as one write.
   */
  takeAvailable(max: number): HubEvent[] {
    const out: HubEvent[] = [];
    while (out.length < max && this.#replay.length > 0) {
      out.push(this.#replay.shift()!);
      this.hub.countDelivered(true);
    }
    if (out.length < max && this.#queue.length > 0) {
      const live = this.#queue.splice(0, max - out.length);
      for (let i = 0; i < live.length; i++) this.hub.countDelivered(false);
      out.push(...live);
    }
    return out;
  }

  /** Unsubscribe; pending events are discarded and a waiting next() gets null. */
  close(): void {
    this.#finish("closed");
  }

  /** Hub side: offer a live event. Returns false when the queue was full. */
  offer(ev: HubEvent): boolean {
    if (this.#closeReason) return true;
    if (this.filter && !this.filter(ev.doc)) return true;
    if (this.#waiter && this.#replay.length === 0) {
      const w = this.#waiter;
      this.#waiter = undefined;
      this.hub.countDelivered(false);
      w(ev);
      return true;
    }
    if (this.#queue.length >= this.queueSize) return false;
    this.#queue.push(ev);
    return true;
  }

  /** Hub side: cut off a subscriber that fell behind. */
  cutOff(): void {
    this.#finish("slow");
  }

  #finish(reason: CloseReason): void {
    if (this.#closeReason) return;
    this.#closeReason = reason;
    this.#replay = [];
    this.#queue = [];
    this.hub.remove(this);
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.(null);
    for (const fn of this.#onClose.splice(0)) fn(reason);
  }
}

export class EventHub {
  readonly queueSize: number;
  readonly replaySize: number;
  #seq = 0;
  #window: HubEvent[] = [];
  #subs = new Set<Subscription>();
  #published = 0;
  #delivered = 0;
  #droppedClients = 0;
  #filterBudgetCutOffs = 0;
  #replayed = 0;
  #byTracer = new Map<string, number>();

  constructor(opts: EventHubOptions = {}) {
    this.queueSize = Math.max(1, opts.queueSize ?? DEFAULT_QUEUE_SIZE);
    this.replaySize = Math.max(0, opts.replaySize ?? 1024);
  }

  /** Sequence number of the latest published event (0 before any). */
  get lastSeq(): number {
    return this.#seq;
  }

  /** Assign the next sequence number and fan out; never blocks. */
  publish(doc: EventDocument): HubEvent {
    const ev: HubEvent = { seq: ++this.#seq, id: crypto.randomUUID(), publishedAt: new Date(), doc };
    this.#published++;
    this.#byTracer.set(doc.tracer_name, (this.#byTracer.get(doc.tracer_name) ?? 0) + 1);
    if (this.replaySize > 0) {
      this.#window.push(ev);
      if (this.#window.length > this.replaySize) this.#window.shift();
    }
    for (const sub of [...this.#subs]) {
      if (!sub.offer(ev)) {
        this.#droppedClients++;
        sub.cutOff();
      }
    }
    return ev;
  }

  subscribe(opts: SubscribeOptions = {}): Subscription {
    const after = opts.lastEventId;
    let replay: HubEvent[] = [];
    if (after !== undefined && Number.isFinite(after) && after < this.#seq) {
      replay = this.#window.filter((ev) => ev.seq > after && (!opts.filter || opts.filter(ev.doc)));
    }
    const sub = new Subscription(this, opts.filter, replay, this.queueSize);
    this.#subs.add(sub);
    return sub;
  }

  stats(): HubStats {
    return {
      published: this.#published,
      delivered: this.#delivered,
      droppedClients: this.#droppedClients,
      filterBudgetCutOffs: this.#filterBudgetCutOffs,
      replayed: this.#replayed,
      subscribers: this.#subs.size,
      byTracer: new Map(this.#byTracer),
    };
  }

  /** A writer closed a subscriber that stopped reading (e.g. failed writes): counted with the cut-off ones. */
  countSlowClient(): void {
    this.#droppedClients++;
  }

  /** A writer closed a subscriber whose filters used more than their time budget. */
  countFilterBudgetCutOff(): void {
    this.#filterBudgetCutOffs++;
  }

  /** @internal called by Subscription. */
  countDelivered(replayed: boolean): void {
    this.#delivered++;
    if (replayed) this.#replayed++;
  }

  /** @internal called by Subscription when it closes. */
  remove(sub: Subscription): void {
    this.#subs.delete(sub);
  }
}
