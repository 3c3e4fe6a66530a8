// Wires the agent: config → logger → collectors → HTTP server, and owns the
// lifecycle (readiness, signals, clean shutdown within 5 s).

import { type CliOptions, configPath } from "../cli/flags.ts";
import { ConfigError, loadConfig } from "../config/load.ts";
import { type Config, defaultConfig } from "../config/schema.ts";
import { HostFs } from "../host/fs.ts";
import { createLogger, type Logger } from "../log/logger.ts";
import type { Collector, CollectorContext } from "../features/feature.ts";
import { COLLECTORS } from "../features/index.ts";
import { Registry } from "../metrics/registry.ts";
import { ListenError, startServer } from "../server/http.ts";
import { parseListenAddr } from "../server/listen.ts";
import { RuntimeCgroup } from "../runtime/cgroup.ts";
import { defaultBpfDir } from "../bpf/locate.ts";
import { BpfRuntime } from "../bpf/tracer.ts";
import { EventHub } from "../events/hub.ts";
import { eventsCollector } from "../events/metrics.ts";
import { loopLagCollector, LoopLagMonitor } from "../runtime/loop_lag.ts";
import { createEventSink } from "../events/sink.ts";
import { EVENT_TRACERS } from "../events/tracers/index.ts";
import { createWatchHandler } from "../server/watch.ts";
import { LocalFileStore } from "../storage/localfile.ts";
import { esStorageCollector, localFileCollector } from "../storage/metrics.ts";
import { startEsStorage } from "../storage/opensearch.ts";
import { setLibbpfLogger } from "../../ffi/libbpf.ts";
import { type Tracer, TracerManager } from "../tracing/manager.ts";
import { tracerStatusCollector } from "../tracing/status.ts";
import { bpfProgramsCollector } from "../bpf/stats.ts";
import { VERSION } from "../core/version.ts";
import { checkFeatureNames } from "../features/names.ts";
import { dryRunFailures } from "./dry_run.ts";
import { CgroupContainerRegistry } from "../pod/registry.ts";
import { KubeletClient, kubeletCollector } from "../pod/kubelet.ts";
import { containerRegistryCollector } from "../pod/registry_stats.ts";
import { withContainerCollectors } from "../features/shared/container_part.ts";
import { fixMallocThresholds, mallocTrim, type NofileLimit, raiseNofileLimit } from "../../ffi/libc.ts";
import type { HttpTransport } from "../server/transport.ts";
import { httpCollector } from "../server/metrics.ts";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const SHUTDOWN_TIMEOUT_MS = 5000;
const HTTP_SHUTDOWN_GRACE_MS = 1000;

/** Loads the config named by the flags; a missing default file means defaults. */
export async function resolveConfig(opts: CliOptions, warn: (msg: string) => void): Promise<Config> {
  const path = configPath(opts);
  if (!opts.configExplicit) {
    try {
      await Deno.stat(path);
    } catch {
      warn(`config ${path} not found; running with defaults`);
      return defaultConfig();
    }
  }
  return await loadConfig(path);
}

export function applyFlags(config: Config, opts: CliOptions): Config {
  const blackList = [...new Set([...config.BlackList, ...opts.disableTracing])];
  const level = opts.logDebug ? "Debug" : config.Log.Level;
  return { ...config, BlackList: blackList, Log: { ...config.Log, Level: level } };
}

/**
 * Builds the collectors not in BlackList and hands their tracers to the
 * manager; a collector that cannot be created reports its error at every scrape.
 */
export function buildRegistry(
  ctx: CollectorContext,
  constLabels: Record<string, string>,
  tracers: TracerManager,
): Registry {
  const registry = new Registry(constLabels, ctx.log);
  for (const def of withContainerCollectors(COLLECTORS, ctx.containers)) {
    if (ctx.config.BlackList.includes(def.name)) {
      ctx.log.info("collector disabled by BlackList", { collector: def.name });
      if (def.tracing) tracers.add(idleTracer(def.name), {}, "disabled by BlackList");
      continue;
    }
    let collector: Collector;
    try {
      collector = def.create(ctx);
    } catch (err) {
      const error = err instanceof Error ? err.message : String(err);
      ctx.log.error("collector cannot start", { collector: def.name, error });
      collector = { name: def.name, collect: () => Promise.reject(new Error(error)) };
    }
    if (collector.tracer) tracers.add(collector.tracer);
    registry.register(collector);
  }
  for (const def of EVENT_TRACERS) {
    if (ctx.config.BlackList.includes(def.name)) {
      tracers.add(idleTracer(def.name), {}, "disabled by BlackList");
    } else {
      tracers.add(def.create(ctx));
    }
  }
  registry.register(tracerStatusCollector(tracers));
  registry.register(bpfProgramsCollector(ctx.bpf));
  return registry;
}

/**
 * libbpf's own output (including whole verifier logs) goes to Debug: a load
 * failure is logged once by the tracing manager with the verifier's last lines.
 */
function routeLibbpfLog(log: Logger): void {
  try {
    setLibbpfLogger((level, msg) => log.debug("libbpf", { level, msg: msg.trimEnd() }));
  } catch (err) {
    log.warn("libbpf unavailable: BPF collectors are off", {
      error: err instanceof Error ? err.message : String(err),
    });
  }
}

/** The open-files limit (raised to the hard limit) and descriptors in use, for the connection cap. */
function descriptorBudget(log: Logger): { nofile: number; openFds: number } {
  let limit: NofileLimit = { soft: 1024, hard: 1024 };
  try {
    limit = raiseNofileLimit();
  } catch (err) {
    log.warn("cannot read or raise RLIMIT_NOFILE; assuming 1024", { error: String(err) });
  }
  let openFds = 64;
  try {
    openFds = [...Deno.readDirSync("/proc/self/fd")].length;
  } catch {
    // no procfs: keep the estimate
  }
  return { nofile: limit.soft, openFds };
}

function idleTracer(name: string): Tracer {
  return { name, start: () => Promise.resolve(), stop: () => {} };
}

export async function runAgent(opts: CliOptions): Promise<number> {
  let config: Config;
  try {
    const loaded = await resolveConfig(opts, (m) => console.error(`huatuo-bamai: ${m}`));
    // Before anything starts: a misspelt BlackList name would leave its feature on.
    checkFeatureNames(loaded.BlackList, opts.disableTracing, configPath(opts));
    config = applyFlags(loaded, opts);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`huatuo-bamai: ${err.message}`);
      return EXIT_USAGE;
    }
    throw err;
  }

  let log: Logger;
  try {
    log = createLogger({ level: config.Log.Level, file: config.Log.File || undefined });
  } catch (err) {
    console.error(`huatuo-bamai: Log.File ${config.Log.File}: ${err instanceof Error ? err.message : err}`);
    return EXIT_USAGE;
  }
  // SIGHUP (logrotate's postrotate) reopens Log.File; unhandled, it would kill the agent. Kept until exit
  // (a closed logger ignores it), so a late SIGHUP never kills a shutdown half-way.
  Deno.addSignalListener("SIGHUP", () => log.reopen());
  log.info("huatuo-bamai starting", {
    version: VERSION,
    region: opts.region,
    config: configPath(opts),
    procfs_prefix: opts.procfsPrefix || "/",
    storage: opts.disableStorage ? "disabled" : "enabled",
    kubelet: opts.disableKubelet ? "disabled" : "enabled",
  });

  let cgroup: RuntimeCgroup | undefined;
  if (opts.enableCgroup) {
    try {
      cgroup = await RuntimeCgroup.enter(config.RuntimeCgroup, log);
    } catch (err) {
      log.error("cannot confine the agent in its cgroup", { error: String(err) });
      log.close();
      return EXIT_FAILURE;
    }
  }

  // Before any large allocation: keeps one-off multi-MB reads from staying resident (see ffi/libc.ts).
  fixMallocThresholds();
  const fs = new HostFs(opts.procfsPrefix);
  // Containers come from the cgroup tree with or without a kubelet. HUATUO_BAMAI_CGROUP_ROOT (hidden, for
  // tests) scans only that path inside every cgroup hierarchy instead of the whole tree.
  const containers = new CgroupContainerRegistry({ fs, log, root: Deno.env.get("HUATUO_BAMAI_CGROUP_ROOT") });
  // Pod labels come from the kubelet; without one, containers keep their cgroup-derived labels.
  const kubelet = KubeletClient.fromConfig(config, {
    disableKubelet: opts.disableKubelet,
    log,
    onUpdate: () => containers.relabel(),
  });
  if (kubelet.disabled) log.info("kubelet client disabled", { reason: kubelet.disabledReason });
  else containers.setPodSource(kubelet);
  const host = Deno.hostname();
  routeLibbpfLog(log);
  const tracers = new TracerManager(log);
  const bpf = new BpfRuntime(opts.bpfDir ?? defaultBpfDir());
  const hub = new EventHub();
  const store = LocalFileStore.fromConfig(config, log);
  // An unwritable Path is a WARN now, not an ERROR at the first event; the agent runs on either way.
  store.check();
  const es = startEsStorage(config, { disableStorage: opts.disableStorage, log });
  const events = createEventSink({ hostname: host, region: opts.region, store, hub, log, es, containers });
  const registry = buildRegistry(
    { fs, config, log, bpf, events, containers },
    { host, region: opts.region },
    tracers,
  );
  registry.register(esStorageCollector(es));
  registry.register(localFileCollector(store));
  registry.register(kubeletCollector(kubelet));
  registry.register(containerRegistryCollector(containers));
  registry.register(eventsCollector(hub));
  const loopLag = new LoopLagMonitor();
  loopLag.start();
  registry.register(loopLagCollector(loopLag));
  let ready = false;

  let server: HttpTransport;
  const watch = createWatchHandler({
    hub,
    hostname: host,
    maxClients: config.EventsWatch.MaxClients,
    keepAliveSec: config.EventsWatch.KeepAliveInterval,
    log,
  });
  try {
    server = startServer(parseListenAddr(config.APIServer.TCPAddr), {
      registry,
      log,
      version: { version: VERSION, deno: Deno.version.deno, v8: Deno.version.v8 },
      isReady: () => ready,
      tracers,
      token: Deno.env.get("HUATUO_BAMAI_API_TOKEN") || config.APIServer.Token,
      watch,
      containers,
    }, {
      maxConnections: config.APIServer.MaxConnections,
      headerTimeoutMs: config.APIServer.ReadHeaderTimeout * 1000,
      idleTimeoutMs: config.APIServer.IdleTimeout * 1000,
      writeTimeoutMs: config.APIServer.WriteTimeout * 1000,
      ...descriptorBudget(log),
    });
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    log.error(err.message);
    kubelet.stop();
    registry.close();
    await cgroup?.leave();
    log.close();
    return EXIT_FAILURE;
  }

  registry.register(httpCollector(server));

  // BPF programs load after the server is up, so /metrics and /healthz answer
  // while they do; /readyz turns 200 once every tracer started or failed once.
  kubelet.start();
  await containers.start();
  await tracers.startAll();
  // Loading the BPF objects left ~15 MB of freed libbpf memory (kernel BTF) in malloc's heap.
  mallocTrim();
  await cgroup?.started();
  ready = true;
  log.info("huatuo-bamai ready", { collectors: registry.names.join(",") });

  let stopping: Promise<number> | undefined;
  const stop = (why: string): Promise<number> => {
    stopping ??= (async () => {
      ready = false;
      log.info("shutting down", { reason: why });
      const timer = setTimeout(() => {
        log.error("shutdown took longer than 5s; exiting");
        Deno.exit(EXIT_FAILURE);
      }, SHUTDOWN_TIMEOUT_MS);
      // Open watch streams would hold a graceful shutdown until the timeout;
      // a connection whose client stopped reading may still hold it: give HTTP
      // one second, then go on (the process exit closes what is left).
      watch.closeAll();
      await server.shutdown(HTTP_SHUTDOWN_GRACE_MS);
      kubelet.stop();
      containers.stop();
      await tracers.stopAll();
      await es?.close(2000);
      registry.close();
      store.close();
      await cgroup?.leave();
      clearTimeout(timer);
      log.info("stopped");
      log.close();
      return EXIT_OK;
    })();
    return stopping;
  };

  if (opts.dryRun) {
    const { results, seriesCount } = await registry.scrape();
    const failed = dryRunFailures(results, tracers.statuses());
    log.info("dry run scrape", {
      series: seriesCount,
      collectors: results.length,
      failed: failed.collectors.join(","),
    });
    const ok = failed.collectors.length === 0 && failed.tracers.length === 0;
    if (!ok) {
      log.error("dry run failed", {
        collectors: failed.collectors.join(",") || undefined,
        tracers: failed.tracers.join(",") || undefined,
      });
    }
    const code = await stop("dry run");
    return ok ? code : EXIT_FAILURE;
  }

  const signals: Deno.Signal[] = ["SIGTERM", "SIGINT"];
  return await new Promise<number>((resolve) => {
    for (const sig of signals) Deno.addSignalListener(sig, () => stop(sig).then(resolve));
  });
}
