// Source of the Grafana dashboards in this folder: `deno run -A deploy/grafana/dashboards.ts` writes
// host.json, containers.json, events.json and agent.json. Panels are written once here, so every query
// uses the same label matchers, and integration/dashboards_test.ts checks the JSON files match this source
// and runs every query against a real Prometheus scraping the real agent.

export interface Target {
  expr: string;
  legend: string;
}

export interface PanelSpec {
  title: string;
  unit: string;
  targets: Target[];
  description?: string;
}

export interface DashboardSpec {
  file: string;
  uid: string;
  title: string;
  description: string;
  /** Adds a container variable (label container_name). */
  containers?: boolean;
  rows: { title: string; panels: PanelSpec[] }[];
}

const P = "huatuo_bamai_";
/** Every series carries host and region (the registry's constant labels). */
const H = `host=~"$host",region=~"$region"`;
const C = `${H},container_name=~"$container"`;
const R = "$__rate_interval";

const t = (expr: string, legend: string): Target => ({ expr, legend });
const panel = (title: string, unit: string, targets: Target[], description?: string): PanelSpec => ({
  title,
  unit,
  targets,
  description,
});
/** Zone counters are cumulative counts exposed as gauges (the seed's types): rate() reads them per second. */
const zones = (metric: string, by: string, matchers = H) =>
  t(`sum by (${by}) (rate(${P}${metric}{${matchers}}[${R}]))`, `{{${by.split(",").join("}} {{")}}}`);

export const DASHBOARDS: DashboardSpec[] = [
  {
    file: "host.json",
    uid: "huatuo-bamai-host",
    title: "HUATUO / Host",
    description: "Host metrics of huatuo-bamai: CPU, load, memory, network, disks and kernel latency zones.",
    rows: [
      {
        title: "CPU and scheduling",
        panels: [
          panel("CPU utilisation", "percent", [
            t(`${P}cpu_util_usr{${H}}`, "usr {{host}}"),
            t(`${P}cpu_util_sys{${H}}`, "sys {{host}}"),
            t(`${P}cpu_util_total{${H}}`, "total {{host}}"),
          ]),
          panel("Load average", "short", [
            t(`${P}loadavg_load1{${H}}`, "1m {{host}}"),
            t(`${P}loadavg_load5{${H}}`, "5m {{host}}"),
            t(`${P}loadavg_load15{${H}}`, "15m {{host}}"),
          ]),
          panel("Run-queue latency by zone (0 <10ms, 1 10-20ms, 2 20-50ms, 3 50ms+)", "ops", [
            zones("runqlat_latency", "zone"),
          ]),
          panel("Softirq raise-to-run latency by zone (0 <10us, 1 10-100us, 2 100us-1ms, 3 1ms+)", "ops", [
            zones("softirq_latency", "type,zone"),
          ]),
        ],
      },
      {
        title: "Memory",
        panels: [
          panel("Memory (vmstat pages)", "short", [
            t(`${P}memory_vmstat_nr_free_pages{${H}}`, "free"),
            t(`${P}memory_vmstat_nr_active_anon{${H}}`, "active anon"),
            t(`${P}memory_vmstat_nr_inactive_anon{${H}}`, "inactive anon"),
            t(`${P}memory_vmstat_nr_active_file{${H}}`, "active file"),
            t(`${P}memory_vmstat_nr_inactive_file{${H}}`, "inactive file"),
            t(`${P}memory_vmstat_nr_dirty{${H}}`, "dirty"),
            t(`${P}memory_vmstat_nr_writeback{${H}}`, "writeback"),
          ]),
          panel("Page scan and steal rate", "ops", [
            t(`rate(${P}memory_vmstat_pgscan_kswapd{${H}}[${R}])`, "scan kswapd"),
            t(`rate(${P}memory_vmstat_pgscan_direct{${H}}[${R}])`, "scan direct"),
            t(`rate(${P}memory_vmstat_pgsteal_kswapd{${H}}[${R}])`, "steal kswapd"),
            t(`rate(${P}memory_vmstat_pgsteal_direct{${H}}[${R}])`, "steal direct"),
          ]),
          panel("Allocation stalls", "ops", [
            t(`rate(${P}memory_vmstat_allocstall_normal{${H}}[${R}])`, "normal"),
            t(`rate(${P}memory_vmstat_allocstall_movable{${H}}[${R}])`, "movable"),
          ]),
          panel("Time stalled in allocation: direct reclaim and compaction (memory_free)", "ns", [
            t(`rate(${P}memory_free_allocpages_stall{${H}}[${R}])`, "alloc pages {{host}}"),
            t(`rate(${P}memory_free_compaction_stall{${H}}[${R}])`, "compaction {{host}}"),
          ]),
        ],
      },
      {
        title: "Network",
        panels: [
          panel("Network throughput", "bps", [
            t(`rate(${P}netdev_receive_bytes_total{${H}}[${R}]) * 8`, "rx {{device}}"),
            t(`-rate(${P}netdev_transmit_bytes_total{${H}}[${R}]) * 8`, "tx {{device}}"),
          ]),
          panel("Network drops and errors", "pps", [
            t(`rate(${P}netdev_receive_dropped_total{${H}}[${R}])`, "rx dropped {{device}}"),
            t(`rate(${P}netdev_transmit_dropped_total{${H}}[${R}])`, "tx dropped {{device}}"),
            t(`rate(${P}netdev_receive_errors_total{${H}}[${R}])`, "rx errors {{device}}"),
            t(`rate(${P}netdev_transmit_errors_total{${H}}[${R}])`, "tx errors {{device}}"),
          ]),
          panel("TCP (netstat)", "ops", [
            t(`rate(${P}netstat_Tcp_RetransSegs{${H}}[${R}])`, "retransmitted segments"),
            t(`rate(${P}netstat_TcpExt_ListenOverflows{${H}}[${R}])`, "listen overflows"),
            t(`rate(${P}netstat_TcpExt_ListenDrops{${H}}[${R}])`, "listen drops"),
            t(`rate(${P}netstat_TcpExt_TCPTimeouts{${H}}[${R}])`, "timeouts"),
          ]),
          panel("TCP connections established", "short", [t(`${P}netstat_Tcp_CurrEstab{${H}}`, "{{host}}")]),
          panel("Sockets (sockstat)", "short", [
            t(`${P}sockstat_TCP_inuse{${H}}`, "TCP in use"),
            t(`${P}sockstat_TCP_tw{${H}}`, "TCP time-wait"),
            t(`${P}sockstat_TCP_orphan{${H}}`, "TCP orphan"),
            t(`${P}sockstat_UDP_inuse{${H}}`, "UDP in use"),
          ]),
          panel("Socket memory", "bytes", [
            t(`${P}sockstat_TCP_mem_bytes{${H}}`, "TCP"),
            t(`${P}sockstat_UDP_mem_bytes{${H}}`, "UDP"),
          ]),
        ],
      },
      {
        title: "Disks",
        panels: [
          panel("Disk throughput", "Bps", [
            t(`rate(${P}diskio_read_bytes_total{${H}}[${R}])`, "read {{device}}"),
            t(`-rate(${P}diskio_written_bytes_total{${H}}[${R}])`, "write {{device}}"),
          ]),
          panel("Disk IOPS", "iops", [
            t(`rate(${P}diskio_read_requests_total{${H}}[${R}])`, "read {{device}}"),
            t(`rate(${P}diskio_write_requests_total{${H}}[${R}])`, "write {{device}}"),
          ]),
          panel("IO wait", "percent", [t(`${P}diskio_disk_iowait_percent{${H}}`, "{{host}}")]),
          panel("IOs in progress", "short", [t(`${P}diskio_io_in_progress{${H}}`, "{{device}}")]),
          panel("IO latency q2c by zone (0 20-30ms … 5 400ms+)", "iops", [
            zones("iolatency_blkdisk_q2c", "disk,zone"),
          ]),
          panel("IO latency d2c by zone (0 20-30ms … 5 400ms+)", "iops", [
            zones("iolatency_blkdisk_d2c", "disk,zone"),
          ]),
        ],
      },
      {
        title: "NIC hardware",
        panels: [
          panel("NIC hardware rx drops (netdev_hw, per driver)", "pps", [
            t(`rate(${P}netdev_hw_rx_dropped{${H}}[${R}])`, "{{device}}"),
          ]),
          panel("DCB priority flow control frames (netdev_dcb)", "pps", [
            t(`rate(${P}netdev_dcb_pfc_received_total{${H}}[${R}])`, "rx {{device}} prio {{priority}}"),
            t(`rate(${P}netdev_dcb_pfc_send_total{${H}}[${R}])`, "tx {{device}} prio {{priority}}"),
          ]),
        ],
      },
    ],
  },
  {
    file: "containers.json",
    uid: "huatuo-bamai-containers",
    title: "HUATUO / Containers",
    description: "Per-container series (*_container_*) of huatuo-bamai, by container_name.",
    containers: true,
    rows: [
      {
        title: "CPU",
        panels: [
          panel("CPU utilisation", "percent", [
            t(`${P}cpu_util_container_total{${C}}`, "{{container_name}}"),
          ]),
          panel("CPU usr / sys", "percent", [
            t(`${P}cpu_util_container_usr{${C}}`, "usr {{container_name}}"),
            t(`${P}cpu_util_container_sys{${C}}`, "sys {{container_name}}"),
          ]),
          panel("CPU cores used", "short", [t(`${P}cpu_util_container_cores{${C}}`, "{{container_name}}")]),
          panel("CPU throttling", "ops", [
            t(`rate(${P}cpu_stat_container_nr_throttled{${C}}[${R}])`, "throttled {{container_name}}"),
            t(`rate(${P}cpu_stat_container_nr_bursts{${C}}[${R}])`, "bursts {{container_name}}"),
          ]),
          panel("Tasks running / uninterruptible", "short", [
            t(`${P}loadavg_container_nr_running{${C}}`, "running {{container_name}}"),
            t(`${P}loadavg_container_nr_uninterruptible{${C}}`, "D {{container_name}}"),
          ]),
          panel("Run-queue latency by zone", "ops", [
            zones("runqlat_container_latency", "container_name,zone", C),
          ]),
        ],
      },
      {
        title: "Memory",
        panels: [
          panel("Memory (memory.stat)", "bytes", [
            t(`${P}memory_vmstat_container_active_anon{${C}}`, "active anon {{container_name}}"),
            t(`${P}memory_vmstat_container_inactive_anon{${C}}`, "inactive anon {{container_name}}"),
            t(`${P}memory_vmstat_container_active_file{${C}}`, "active file {{container_name}}"),
            t(`${P}memory_vmstat_container_inactive_file{${C}}`, "inactive file {{container_name}}"),
          ]),
          panel("Dirty and writeback", "bytes", [
            t(`${P}memory_vmstat_container_dirty{${C}}`, "dirty {{container_name}}"),
            t(`${P}memory_vmstat_container_writeback{${C}}`, "writeback {{container_name}}"),
          ]),
          panel("Memory events (v2 memory.events; v1 failcnt → max, oom_control → oom_kill)", "ops", [
            t(`rate(${P}memory_events_container_oom_kill{${C}}[${R}])`, "oom_kill {{container_name}}"),
            t(`rate(${P}memory_events_container_max{${C}}[${R}])`, "max {{container_name}}"),
          ]),
          panel("Direct reclaim stalls (memory_reclaim)", "short", [
            t(`rate(${P}memory_reclaim_container_directstall{${C}}[${R}])`, "{{container_name}}"),
          ]),
        ],
      },
      {
        title: "Network and IO",
        panels: [
          panel("Network throughput", "bps", [
            t(`rate(${P}netdev_container_receive_bytes_total{${C}}[${R}]) * 8`, "rx {{container_name}}"),
            t(`-rate(${P}netdev_container_transmit_bytes_total{${C}}[${R}]) * 8`, "tx {{container_name}}"),
          ]),
          panel("Sockets used", "short", [
            t(`${P}sockstat_container_sockets_used{${C}}`, "{{container_name}}"),
          ]),
          panel("IO latency q2c by zone", "iops", [
            zones("iolatency_container_blkdisk_q2c", "container_name,zone", C),
          ]),
        ],
      },
    ],
  },
  {
    file: "events.json",
    uid: "huatuo-bamai-events",
    title: "HUATUO / Kernel events",
    description:
      "Kernel events huatuo-bamai recorded: OOM kills, hung tasks, soft lockups, drops, links, RAS.",
    rows: [
      {
        title: "Events",
        panels: [
          panel("Events recorded by tracer", "short", [
            t(`sum by (tracer) (increase(${P}events_total{${H}}[5m]))`, "{{tracer}}"),
          ]),
          panel("OOM kills", "short", [
            t(`sum by (host) (increase(${P}events_total{${H},tracer="oom"}[5m]))`, "{{host}}"),
          ]),
          panel("Hung tasks", "short", [t(`increase(${P}hungtask_total{${H}}[5m])`, "{{host}}")]),
          panel("Soft lockups", "short", [t(`increase(${P}softlockup_total{${H}}[5m])`, "{{host}}")]),
          panel("Packet drops by reason (dropwatch)", "pps", [
            t(`sum by (reason) (rate(${P}dropwatch_drops_total{${H}}[${R}]))`, "{{reason}}"),
          ]),
          panel("Drops not reported as events (rate limit)", "pps", [
            t(`rate(${P}dropwatch_suppressed_total{${H}}[${R}])`, "{{host}}"),
          ]),
          panel("Link status changes (netdev_events)", "short", [
            t(
              `sum by (device, linkstatus) (increase(${P}netdev_events_total{${H}}[5m]))`,
              "{{device}} {{linkstatus}}",
            ),
          ]),
          panel("Hardware errors (RAS) by source", "short", [
            t(`sum by (type) (increase(${P}ras_hw_total{${H}}[1h]))`, "{{type}}"),
          ]),
        ],
      },
    ],
  },
  {
    file: "agent.json",
    uid: "huatuo-bamai-agent",
    title: "HUATUO / Agent health",
    description: "huatuo-bamai itself: collectors, tracers, BPF buffers, event loop, HTTP, stores, process.",
    rows: [
      {
        title: "Collectors and tracers",
        panels: [
          panel("Failing collectors", "short", [
            t(`sum by (host) (1 - ${P}scrape_collector_success{${H}})`, "failing {{host}}"),
            t(`count by (host) (${P}scrape_collector_success{${H}})`, "collectors {{host}}"),
          ]),
          panel("Collector duration", "s", [
            t(`topk(10, ${P}scrape_collector_duration_seconds{${H}})`, "{{collector}}"),
          ]),
          panel("Tracers by state", "short", [
            t(`sum by (state) (${P}tracer_state{${H}})`, "{{state}}"),
          ]),
          panel("Failed tracers", "short", [
            t(`sum by (tracer) (${P}tracer_state{${H},state="failed"})`, "{{tracer}}"),
          ]),
          panel("Tracer restarts", "short", [
            t(`sum by (tracer) (increase(${P}tracer_restarts_total{${H}}[1h]))`, "{{tracer}}"),
          ]),
        ],
      },
      {
        title: "BPF buffers and event loop",
        panels: [
          panel("BPF records read", "ops", [
            t(`sum by (tracer) (rate(${P}bpf_buffer_events_total{${H}}[${R}]))`, "{{tracer}}"),
          ]),
          panel("BPF records lost and malformed", "ops", [
            t(`sum by (tracer, buffer) (rate(${P}bpf_buffer_lost_total{${H}}[${R}]))`, "lost {{buffer}}"),
            t(`sum by (tracer, buffer) (rate(${P}bpf_buffer_errors_total{${H}}[${R}]))`, "errors {{buffer}}"),
          ]),
          panel("Event-loop lag (max per scrape)", "s", [
            t(`${P}event_loop_lag_max_seconds{${H}}`, "{{host}}"),
          ]),
          panel("Event-loop stalls", "short", [
            t(`increase(${P}event_loop_stalls_total{${H}}[5m])`, "stalls {{host}}"),
            t(`increase(${P}event_loop_stalled_seconds_total{${H}}[5m])`, "seconds lost {{host}}"),
          ]),
        ],
      },
      {
        title: "HTTP",
        panels: [
          panel("HTTP connections", "short", [
            t(`${P}http_connections{${H}}`, "open {{host}}"),
            t(`${P}http_connections_max{${H}}`, "max {{host}}"),
          ]),
          panel("HTTP connections accepted, refused, evicted, timed out", "ops", [
            t(`rate(${P}http_connections_accepted_total{${H}}[${R}])`, "accepted"),
            t(`rate(${P}http_connections_refused_total{${H}}[${R}])`, "refused"),
            t(`rate(${P}http_connections_evicted_total{${H}}[${R}])`, "evicted"),
            t(`rate(${P}http_connections_timed_out_total{${H}}[${R}])`, "timed out"),
          ]),
        ],
      },
      {
        title: "Stores",
        panels: [
          panel("Elasticsearch/OpenSearch up", "short", [t(`${P}storage_es_up{${H}}`, "{{host}}")]),
          panel("ES outbox", "short", [
            t(`${P}storage_es_queued_documents{${H}}`, "documents {{host}}"),
          ]),
          panel("ES outbox bytes", "bytes", [t(`${P}storage_es_queued_bytes{${H}}`, "{{host}}")]),
          panel("ES documents sent, failed, dropped", "ops", [
            t(`rate(${P}storage_es_sent_total{${H}}[${R}])`, "sent"),
            t(`rate(${P}storage_es_failed_total{${H}}[${R}])`, "failed"),
            t(`rate(${P}storage_es_dropped_total{${H}}[${R}])`, "dropped"),
          ]),
          panel("ES bulk requests and retries", "ops", [
            t(`rate(${P}storage_es_bulk_requests_total{${H}}[${R}])`, "bulk requests"),
            t(`rate(${P}storage_es_retries_total{${H}}[${R}])`, "retries"),
          ]),
          panel("Local file store", "ops", [
            t(`sum by (tracer) (rate(${P}storage_local_written_total{${H}}[${R}]))`, "written {{tracer}}"),
            t(`sum by (tracer) (rate(${P}storage_local_failed_total{${H}}[${R}]))`, "failed {{tracer}}"),
          ]),
        ],
      },
      {
        title: "Process",
        panels: [
          panel("CPU", "percentunit", [t(`rate(process_cpu_seconds_total{${H}}[${R}])`, "{{host}}")]),
          panel("Memory", "bytes", [
            t(`process_resident_memory_bytes{${H}}`, "resident {{host}}"),
            t(`${P}process_memory_bytes{${H},kind="heap_used"}`, "JS heap used {{host}}"),
          ]),
          panel("File descriptors", "short", [
            t(`process_open_fds{${H}}`, "open {{host}}"),
            t(`process_max_fds{${H}}`, "max {{host}}"),
          ]),
          panel("Uptime", "s", [t(`time() - process_start_time_seconds{${H}}`, "{{host}}")]),
          panel("Build", "short", [
            t(`${P}build_info{${H}}`, "{{version}} {{revision}} deno {{deno}}"),
          ]),
        ],
      },
    ],
  },
];

const PANEL_W = 12;
const PANEL_H = 8;

/** The Grafana JSON model (schemaVersion 39) of one dashboard. */
export function grafanaDashboard(d: DashboardSpec): Record<string, unknown> {
  const ds = { type: "prometheus", uid: "${datasource}" };
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of d.rows) {
    panels.push({
      type: "row",
      id: id++,
      title: row.title,
      collapsed: false,
      gridPos: { h: 1, w: 24, x: 0, y },
    });
    y += 1;
    row.panels.forEach((p, i) => {
      panels.push({
        type: "timeseries",
        id: id++,
        title: p.title,
        ...(p.description ? { description: p.description } : {}),
        datasource: ds,
        gridPos: { h: PANEL_H, w: PANEL_W, x: (i % 2) * PANEL_W, y: y + Math.floor(i / 2) * PANEL_H },
        fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
        options: { legend: { displayMode: "list", placement: "bottom" }, tooltip: { mode: "multi" } },
        targets: p.targets.map((tg, j) => ({
          datasource: ds,
          expr: tg.expr,
          legendFormat: tg.legend,
          refId: String.fromCharCode(65 + j),
        })),
      });
    });
    y += Math.ceil(row.panels.length / 2) * PANEL_H;
  }
  const query = (name: string, label: string, metric: string, extra = "") => ({
    name,
    label,
    type: "query",
    datasource: ds,
    query: { query: `label_values(${metric}${extra}, ${label})`, refId: `${name}-values` },
    definition: `label_values(${metric}${extra}, ${label})`,
    refresh: 2,
    includeAll: true,
    multi: true,
    allValue: ".*",
    current: { text: "All", value: "$__all" },
    sort: 1,
  });
  const variables: Record<string, unknown>[] = [
    { name: "datasource", label: "Prometheus", type: "datasource", query: "prometheus" },
    query("region", "region", `${P}build_info`),
    query("host", "host", `${P}build_info`, `{region=~"$region"}`),
  ];
  if (d.containers) {
    variables.push(
      query("container", "container_name", `${P}cpu_util_container_total`, `{${H}}`),
    );
  }
  return {
    uid: d.uid,
    title: d.title,
    description: d.description,
    tags: ["huatuo-bamai"],
    editable: true,
    schemaVersion: 39,
    time: { from: "now-1h", to: "now" },
    refresh: "30s",
    templating: { list: variables },
    annotations: { list: [] },
    panels,
  };
}

export function dashboardText(d: DashboardSpec): string {
  return JSON.stringify(grafanaDashboard(d), null, 2) + "\n";
}

if (import.meta.main) {
  const dir = new URL(".", import.meta.url).pathname;
  for (const d of DASHBOARDS) {
    Deno.writeTextFileSync(`${dir}${d.file}`, dashboardText(d));
    console.log(`wrote ${dir}${d.file}`);
  }
}
