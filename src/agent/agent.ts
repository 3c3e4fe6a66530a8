// Runs the agent: config → logger → its parts (containers, BPF runtime, event
// stores, features, self-metrics) → HTTP server → tracers, and owns the
// lifecycle (readiness, signals, dry run, clean shutdown within 5 s).

import { type CliOptions, configPath } from "../cli/flags.ts";
import { ConfigError } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { HostFs } from "../host/fs.ts";
import { createLogger, type Logger } from "../log/logger.ts";
import type { Registry } from "../metrics/registry.ts";
import { ListenError } from "../server/http.ts";
import { RuntimeCgroup } from "../runtime/cgroup.ts";
import { defaultBpfDir, embeddedBpfObjects } from "../bpf/locate.ts";
import { BpfRuntime } from "../bpf/tracer.ts";
import { EventHub } from "../events/hub.ts";
import { eventsCollector } from "../events/metrics.ts";
import { loopLagCollector, LoopLagMonitor } from "../runtime/loop_lag.ts";
import { buildInfoCollector, processCollector } from "../runtime/process.ts";
import { agentBuild } from "./build_info.ts";
import { createEventSink } from "../events/sink.ts";
import { createWatchHandler, type WatchHandler } from "../server/watch.ts";
import { LocalFileStore } from "../storage/localfile.ts";
import { esStorageCollector, localFileCollector } from "../storage/metrics.ts";
import { type EsStorage, startEsStorage } from "../storage/opensearch.ts";
import { setLibbpfLogger } from "../../ffi/libbpf.ts";
import { TracerManager } from "../tracing/manager.ts";
import { tracerStatusCollector } from "../tracing/status.ts";
import { bpfProgramsCollector } from "../bpf/stats.ts";
import { dryRunFailures } from "./dry_run.ts";
import { CgroupContainerRegistry } from "../pod/registry.ts";
import { KubeletClient, kubeletCollector } from "../pod/kubelet.ts";
import { containerRegistryCollector } from "../pod/registry_stats.ts";
import { fixMallocThresholds, mallocTrim } from "../../ffi/libc.ts";
import type { HttpTransport } from "../server/transport.ts";
import { httpCollector } from "../server/metrics.ts";
import { agentConfig } from "./config.ts";
import { BpfCpuProfiler } from "../profile/cpu_profiler.ts";
import { autotracingTracers, buildFeatures, documentTracers } from "./features.ts";
import { startApiServer } from "./server.ts";
import { AutoTracingRegistry } from "../autotracing/registry.ts";
import { autotracingCollector } from "../autotracing/metrics.ts";

export { applyFlags, resolveConfig } from "./config.ts";

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

const SHUTDOWN_TIMEOUT_MS = 5000;
const HTTP_SHUTDOWN_GRACE_MS = 1000;

/** Everything a running agent owns besides its HTTP server. */
interface Parts {
  readonly log: Logger;
  readonly kubelet: KubeletClient;
  readonly containers: CgroupContainerRegistry;
  readonly tracers: TracerManager;
  readonly store: LocalFileStore;
  readonly es: EsStorage | undefined;
  readonly registry: Registry;
  readonly watch: WatchHandler;
  readonly cgroup: RuntimeCgroup | undefined;
  readonly autotracing: AutoTracingRegistry;
}

/**
 * libbpf's own output (including whole verifier logs) goes to Debug: a load
 * failure is logged once by the tracing manager with the verifier's last lines.
 */
function routeLibbpfLog(log: Logger): void {
  try {
    setLibbpfLogger((level, msg) => log.debug("libbpf", { libbpf_level: level, libbpf_msg: msg.trimEnd() }));
  } catch (err) {
    log.warn("libbpf unavailable: BPF collectors are off", {
      error: err instanceof Error ? err.message : String(err),
    });
  }
}

/** Creates the parts (nothing runs yet): containers, kubelet, BPF runtime, stores, features and self-metrics. */
function assemble(config: Config, opts: CliOptions, log: Logger, cgroup: RuntimeCgroup | undefined): Parts {
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
  // --bpf-dir wins over the objects a single-file build carries.
  const bpf = new BpfRuntime(
    opts.bpfDir ?? defaultBpfDir(),
    undefined,
    opts.bpfDir ? undefined : embeddedBpfObjects(),
  );
  const hub = new EventHub();
  const store = LocalFileStore.fromConfig(config, log, { indexTracers: autotracingTracers() });
  // An unwritable Path is a WARN now, not an ERROR at the first event; the agent runs on either way.
  store.check();
  const es = startEsStorage(config, { disableStorage: opts.disableStorage, log });
  const events = createEventSink({ hostname: host, region: opts.region, store, hub, log, es, containers });
  // AutoTracing triggers register here for POST /v1/autotracing/{name}; cpusys and cpuidle profile with the
  // in-process BPF CPU profiler, from the same objects as every tracer (a directory or the single file's).
  const autotracing = new AutoTracingRegistry();
  const profiler = new BpfCpuProfiler({ bpfDir: bpf.dir, kernelBtf: bpf.kernelBtf, objects: bpf.objects });
  const registry = buildFeatures(
    { fs, config, log, bpf, events, containers, autotracing, profiler },
    { host, region: opts.region },
    tracers,
  );
  const loopLag = new LoopLagMonitor();
  loopLag.start();
  for (
    const self of [
      tracerStatusCollector(tracers),
      bpfProgramsCollector(bpf),
      esStorageCollector(es),
      localFileCollector(store, documentTracers(config.BlackList)),
      kubeletCollector(kubelet),
      containerRegistryCollector(containers),
      eventsCollector(hub, documentTracers(config.BlackList)),
      loopLagCollector(loopLag),
      autotracingCollector(autotracing),
      processCollector(),
      buildInfoCollector(agentBuild()),
    ]
  ) registry.register(self);
  const watch = createWatchHandler({
    hub,
    hostname: host,
    maxClients: config.EventsWatch.MaxClients,
    keepAliveSec: config.EventsWatch.KeepAliveInterval,
    log,
  });
  return { log, kubelet, containers, tracers, store, es, registry, watch, cgroup, autotracing };
}

/** Stops everything in the reverse order of start; the process exits if that takes over 5 s. */
async function shutdown(p: Parts, server: HttpTransport | undefined, why: string): Promise<number> {
  p.log.info("shutting down", { reason: why });
  const timer = setTimeout(() => {
    p.log.error("shutdown took longer than 5s; exiting");
    Deno.exit(EXIT_FAILURE);
  }, SHUTDOWN_TIMEOUT_MS);
  // Open watch streams would hold a graceful shutdown until the timeout; a
  // connection whose client stopped reading may still hold it: give HTTP one
  // second, then go on (the process exit closes what is left).
  p.watch.closeAll();
  await server?.shutdown(HTTP_SHUTDOWN_GRACE_MS);
  p.kubelet.stop();
  p.containers.stop();
  await p.tracers.stopAll();
  await p.es?.close(2000);
  p.registry.close();
  p.store.close();
  await p.cgroup?.leave();
  clearTimeout(timer);
  p.log.info("stopped");
  p.log.close();
  return EXIT_OK;
}

/** One scrape with every tracer started: exit 1 naming what failed. */
async function dryRun(p: Parts): Promise<boolean> {
  const { results, seriesCount } = await p.registry.scrape();
  const failed = dryRunFailures(results, p.tracers.statuses());
  p.log.info("dry run scrape", {
    series: seriesCount,
    collectors: results.length,
    failed: failed.collectors.join(","),
  });
  const ok = failed.collectors.length === 0 && failed.tracers.length === 0;
  if (!ok) {
    p.log.error("dry run failed", {
      collectors: failed.collectors.join(",") || undefined,
      tracers: failed.tracers.join(",") || undefined,
    });
  }
  return ok;
}

function openLog(config: Config): Logger | undefined {
  try {
    return createLogger({ level: config.Log.Level, file: config.Log.File || undefined });
  } catch (err) {
    console.error(`huatuo-bamai: Log.File ${config.Log.File}: ${err instanceof Error ? err.message : err}`);
    return undefined;
  }
}

export async function runAgent(opts: CliOptions): Promise<number> {
  let config: Config;
  try {
    config = await agentConfig(opts, (m) => console.error(`huatuo-bamai: ${m}`));
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`huatuo-bamai: ${err.message}`);
      return EXIT_USAGE;
    }
    throw err;
  }
  const log = openLog(config);
  if (!log) return EXIT_USAGE;
  const build = agentBuild();
  // SIGHUP (logrotate's postrotate) reopens Log.File; unhandled, it would kill the agent. Kept until exit
  // (a closed logger ignores it), so a late SIGHUP never kills a shutdown half-way.
  Deno.addSignalListener("SIGHUP", () => log.reopen());
  log.info("huatuo-bamai starting", {
    version: build.version,
    revision: build.revision,
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

  const parts = assemble(config, opts, log, cgroup);
  let ready = false;
  let server: HttpTransport;
  try {
    server = startApiServer(config, {
      registry: parts.registry,
      log,
      version: {
        version: build.version,
        revision: build.revision,
        build_time: build.buildTime,
        deno: build.deno,
        v8: build.v8,
      },
      isReady: () => ready,
      tracers: parts.tracers,
      token: Deno.env.get("HUATUO_BAMAI_API_TOKEN") || config.APIServer.Token,
      watch: parts.watch,
      containers: parts.containers,
      documents: parts.store,
      autotracing: parts.autotracing,
    });
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    log.error(err.message);
    await shutdown(parts, undefined, "cannot listen");
    return EXIT_FAILURE;
  }
  parts.registry.register(httpCollector(server));

  // BPF programs load after the server is up, so /metrics and /healthz answer
  // while they do; /readyz turns 200 once every tracer started or failed once.
  parts.kubelet.start();
  await parts.containers.start();
  await parts.tracers.startAll();
  // Loading the BPF objects left ~15 MB of freed libbpf memory (kernel BTF) in malloc's heap.
  mallocTrim();
  await cgroup?.started();
  ready = true;
  log.info("huatuo-bamai ready", { collectors: parts.registry.names.join(",") });

  let stopping: Promise<number> | undefined;
  const stop = (why: string): Promise<number> => {
    ready = false;
    return stopping ??= shutdown(parts, server, why);
  };
  if (opts.dryRun) {
    const ok = await dryRun(parts);
    const code = await stop("dry run");
    return ok ? code : EXIT_FAILURE;
  }
  return await new Promise<number>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      Deno.addSignalListener(sig, () => stop(sig).then(resolve));
    }
  });
}
