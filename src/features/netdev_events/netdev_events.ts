// netdev_events: the link-status event tracer (src/features/netdev_events/tracer.ts)
// and its counters, as one registry entry so that BlackList "netdev_events"
// turns both off. Counters live in the tracer and survive its restarts.

import { NetdevEventsTracer } from "./tracer.ts";
import { metricsFeature } from "../feature.ts";

export default metricsFeature("netdev_events", ({ config, log, events }) => {
  const tracer = new NetdevEventsTracer({ devices: config.EventTracing.Netdev.DeviceList, log, events });
  return {
    tracer,
    collect: () => Promise.resolve(tracer.samples()),
  };
}, { tracing: true, events: true });
