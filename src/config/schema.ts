// The huatuo-bamai.conf schema: every section and key of the seed's
// configuration guide, with the seed's documented defaults. Every section and
// key is optional; objects are strict, so a misspelt key is an error rather
// than a silently ignored setting.
//
// Each schema carries, as its error message, the human description of what it
// expects ("an integer >= 1", "a valid regular expression", ...): load.ts turns
// zod issues into "<key path>: expected <message>, found <value>" lines.

import { z } from "zod";

export const LOG_LEVELS = ["Debug", "Info", "Warn", "Error", "Panic"] as const;
export const FILTER_FIELDS = ["container_host_namespace", "container_hostname", "container_qos"] as const;
export const CONTAINER_QOS = ["guaranteed", "burstable", "besteffort"] as const;

/** The expectation reported for a string that does not compile as a RegExp. */
export const REGEX_EXPECTED = "a valid regular expression";

// ---------------------------------------------------------------------------
// helpers

/** Why `source` does not compile as a JavaScript RegExp, or undefined if it does. */
export function regexError(source: string): string | undefined {
  try {
    new RegExp(source);
    return undefined;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    // V8: "Invalid regular expression: /(a/: Unterminated group" → the reason.
    const m = /^Invalid regular expression: \/.*\/[a-z]*: (.*)$/s.exec(msg);
    return m ? m[1] : msg;
  }
}

/** The expectation reported for an Elasticsearch/OpenSearch index name that the store would refuse. */
export const INDEX_EXPECTED =
  'an index name: lowercase, not "." or "..", none of \\ / * ? " < > | , # : or space, not starting with -, _ or +, at most 255 bytes';

/**
 * Why Elasticsearch/OpenSearch would refuse `index` as an index name, or
 * undefined when it is fine. Checked at start-up: a store that refuses the
 * name would fail every bulk request while the agent looked healthy.
 */
export function indexNameError(index: string): string | undefined {
  if (index === "") return "empty";
  if (index === "." || index === "..") return `"${index}" is reserved`;
  if (/^[-_+]/.test(index)) return `starts with ${index[0]}`;
  if (/[A-Z]/.test(index)) return "has uppercase letters";
  const bad = /[\\/*?"<>|,#: ]/.exec(index);
  if (bad) return `has ${bad[0] === " " ? "a space" : JSON.stringify(bad[0])}`;
  const bytes = new TextEncoder().encode(index).length;
  if (bytes > 255) return `${bytes} bytes long`;
  return undefined;
}

/** Splits a listen address ("host:port", ":port", "[v6]:port"); undefined when malformed. */
export function splitHostPort(addr: string): { hostname: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+(?:%[\w.-]+)?)\]|([\w.-]*)):(\d{1,5})$/.exec(addr);
  if (!m) return undefined;
  const v6 = m[1];
  if (v6 !== undefined && !v6.includes(":")) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { hostname: v6 ?? m[2], port };
}

function int(min: number, max?: number) {
  const expected = max === undefined ? `an integer >= ${min}` : `an integer between ${min} and ${max}`;
  const base = z.int({ error: expected }).min(min, { error: expected });
  return max === undefined ? base : base.max(max, { error: expected });
}

function positiveNumber() {
  const expected = "a number > 0";
  return z.number({ error: expected }).gt(0, { error: expected });
}

function nonNegativeNumber() {
  const expected = "a number >= 0";
  return z.number({ error: expected }).min(0, { error: expected });
}

const percent = () => int(0, 100);

function str() {
  return z.string({ error: "a string" });
}

function bool() {
  return z.boolean({ error: "a boolean (true or false)" });
}

function stringList() {
  return z.array(str(), { error: "an array of strings" });
}

/** A string that compiles as a JavaScript RegExp; "" means "no rule". */
function regex() {
  return z.string({ error: "a string (regular expression)" }).refine((s) => regexError(s) === undefined, {
    error: REGEX_EXPECTED,
  });
}

function table<T extends z.core.$ZodLooseShape>(shape: T) {
  return z.strictObject(shape, { error: "a table" });
}

/** A section: a strict table whose missing keys (or absence) take the defaults. */
function section<T extends z.core.$ZodLooseShape>(shape: T) {
  const t = table(shape);
  // Every key of a section has a default, so {} is a valid input.
  return t.prefault({} as z.input<typeof t>);
}

// ---------------------------------------------------------------------------
// shared pieces

const filterRule = table({
  Field: z.enum(FILTER_FIELDS, { error: `one of ${FILTER_FIELDS.join(", ")}` }),
  Pattern: regex(),
});

/** Container filter rules ([[X.Filter.Included]] / [[X.Filter.Excluded]]). */
const containerFilter = section({
  Included: z.array(filterRule, { error: "an array of tables with Field and Pattern" }).default(() => []),
  Excluded: z.array(filterRule, { error: "an array of tables with Field and Pattern" }).default(() => []),
});

const ISSUE_PAIR = 'a ["name", "regular expression"] pair of strings';

/** Known-issue filters: [["name", "regex"], ...]. */
const issuesList = () =>
  z.array(
    z.tuple([z.string({ error: "a string (issue name)" }), regex()], { error: ISSUE_PAIR }),
    { error: `an array of ${ISSUE_PAIR}` },
  ).default(() => []);

const QOS_EXPECTED = `one of ${CONTAINER_QOS.join(", ")} (case-insensitive)`;
const containerQos = z.string({ error: QOS_EXPECTED }).refine(
  // "" is tolerated (and ignored) because the guide documents the default as [""].
  (s) => s === "" || (CONTAINER_QOS as readonly string[]).includes(s.toLowerCase()),
  { error: QOS_EXPECTED },
);

const TCP_ADDR_EXPECTED = 'a listen address "host:port", ":port" or "[v6]:port" with port 1-65535';
const tcpAddr = z.string({ error: TCP_ADDR_EXPECTED }).refine((s) => splitHostPort(s) !== undefined, {
  error: TCP_ADDR_EXPECTED,
});

const URL_EXPECTED = 'an "http://" or "https://" URL';
const esAddress = z.string({ error: URL_EXPECTED }).refine((s) => {
  if (s === "") return true; // empty disables ES/OS storage
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "";
  } catch {
    return false;
  }
}, { error: URL_EXPECTED });

const esIndex = z.string({ error: INDEX_EXPECTED }).refine((s) => indexNameError(s) === undefined, {
  error: INDEX_EXPECTED,
});

// ---------------------------------------------------------------------------
// the schema

export const configSchema = table({
  BlackList: stringList().default(() => []),

  Log: section({
    Level: z.enum(LOG_LEVELS, { error: `one of ${LOG_LEVELS.join(", ")}` }).default("Info"),
    File: str().default(""),
  }),

  RuntimeCgroup: section({
    LimitInitCPU: positiveNumber().default(0.5),
    LimitCPU: positiveNumber().default(2.0),
    LimitMem: int(1).default(2048),
  }),

  Storage: section({
    ES: section({
      Address: esAddress.default("http://127.0.0.1:9200"),
      Index: esIndex.default("huatuo_bamai"),
      Username: str().default(""),
      Password: str().default(""),
      // Beyond the seed: TLS and the durable outbox of documents not yet acknowledged.
      CAFile: str().default(""),
      InsecureSkipVerify: bool().default(false),
      OutboxPath: str().default(""),
      OutboxMaxSize: int(1).default(1024),
      BulkSize: int(1, 10_000).default(500),
    }),
    LocalFile: section({
      Path: str().default("huatuo-local"),
      RotationSize: int(1).default(100),
      MaxRotation: int(0).default(10),
    }),
  }),

  AutoTracing: section({
    IssuesList: issuesList(),
    CPUIdle: section({
      UserThreshold: percent().default(75),
      SysThreshold: percent().default(45),
      UsageThreshold: percent().default(90),
      DeltaUserThreshold: percent().default(45),
      DeltaSysThreshold: percent().default(20),
      DeltaUsageThreshold: percent().default(55),
      Interval: int(1).default(10),
      IntervalTracing: int(0).default(1800),
      RunTracingToolTimeout: int(1).default(10),
      Filter: containerFilter,
    }),
    CPUSys: section({
      SysThreshold: percent().default(45),
      DeltaSysThreshold: percent().default(20),
      Interval: int(1).default(10),
      RunTracingToolTimeout: int(1).default(10),
    }),
    Dload: section({
      ThresholdLoad: nonNegativeNumber().default(5),
      Interval: int(1).default(10),
      IntervalTracing: int(0).default(1800),
      Filter: containerFilter,
    }),
    IOTracing: section({
      WbpsThreshold: int(0).default(1500),
      RbpsThreshold: int(0).default(2000),
      UtilThreshold: percent().default(90),
      AwaitThreshold: int(0).default(100),
      RunTracingToolTimeout: int(1).default(10),
      MaxProcDump: int(1).default(10),
      MaxFilesPerProcDump: int(0).default(5),
      Filter: containerFilter,
    }),
    MemoryBurst: section({
      DeltaMemoryBurst: int(0).default(100),
      DeltaAnonThreshold: int(0).default(70),
      Interval: int(1).default(10),
      IntervalTracing: int(0).default(1800),
      SlidingWindowLength: int(1).default(60),
      DumpProcessMaxNum: int(1).default(10),
    }),
  }),

  EventTracing: section({
    IssuesList: issuesList(),
    Softirq: section({
      DisabledThreshold: int(0).default(10_000_000),
    }),
    MemoryReclaim: section({
      BlockedThreshold: int(0).default(900_000_000),
    }),
    NetRxLatency: section({
      Driver2NetRx: int(0).default(5),
      Driver2TCP: int(0).default(10),
      Driver2Userspace: int(0).default(115),
      ExcludedContainerQos: z.array(containerQos, { error: `an array of strings, each ${QOS_EXPECTED}` })
        .default(() => []),
      ExcludedHostNetnamespace: bool().default(true),
    }),
    Netdev: section({
      DeviceList: stringList().default(() => []),
    }),
    Dropwatch: section({
      ExcludedNeighInvalidate: bool().default(true),
      // Beyond the seed: reported drops per second per CPU (BPF token bucket); the rest are counted. 0: no limit.
      EventsPerSecond: int(0).default(100),
    }),
    Ras: section({
      MceThrBackoff: int(0).default(1800),
    }),
  }),

  MetricCollector: section({
    NetdevStats: section({
      EnableNetlink: bool().default(false),
      DeviceIncluded: regex().default(""),
      DeviceExcluded: regex().default(""),
    }),
    NetdevDCB: section({
      DeviceList: stringList().default(() => []),
    }),
    NetdevHW: section({
      DeviceList: stringList().default(() => []),
    }),
    Qdisc: section({
      DeviceIncluded: regex().default(""),
      DeviceExcluded: regex().default(""),
    }),
    Vmstat: section({
      IncludedOnHost: regex().default(""),
      ExcludedOnHost: regex().default(""),
      IncludedOnContainer: regex().default(""),
      ExcludedOnContainer: regex().default(""),
    }),
    MemoryEvents: section({
      Included: regex().default(""),
      Excluded: regex().default(""),
    }),
    Netstat: section({
      Included: regex().default(""),
      Excluded: regex().default(""),
    }),
    MountPointStat: section({
      MountPointsIncluded: regex().default(""),
    }),
  }),

  Pod: section({
    KubeletReadOnlyPort: int(0, 65535).default(10255),
    KubeletAuthorizedPort: int(0, 65535).default(10250),
    KubeletClientCertPath: str().default(""),
  }),

  EventsWatch: section({
    MaxClients: int(1).default(100),
    KeepAliveInterval: int(1).default(30),
  }),

  // Not in the seed guide: the HTTP listen address of the agent.
  APIServer: section({
    TCPAddr: tcpAddr.default(":19704"),
    // Required (Authorization: Bearer) by requests that change state, e.g. starting or stopping a tracer.
    Token: str().default(""),
    // Not in the seed: limits that keep one client from exhausting the agent (see src/server/transport.ts).
    // 0: derived from RLIMIT_NOFILE (min(1024, limit - open descriptors - 256)).
    MaxConnections: int(0).default(0),
    // Seconds a client has to send a request head (and a body).
    ReadHeaderTimeout: positiveNumber().default(10),
    // Seconds a kept-alive connection may wait for its next request.
    IdleTimeout: positiveNumber().default(60),
    // Seconds one write of a response may take before the client is dropped.
    WriteTimeout: positiveNumber().default(30),
  }),
});

export type Config = z.output<typeof configSchema>;
export type FilterRule = Config["AutoTracing"]["CPUIdle"]["Filter"]["Included"][number];
export type ContainerFilter = Config["AutoTracing"]["CPUIdle"]["Filter"];

/** A fresh copy of the configuration an empty file yields. */
export function defaultConfig(): Config {
  return configSchema.parse({});
}

/**
 * The keys the schema knows for the table at `path` (for "did you mean"
 * suggestions), or undefined when `path` does not lead to a table.
 */
export function knownKeys(path: readonly PropertyKey[]): string[] | undefined {
  let node: z.core.$ZodType = configSchema;
  for (let i = 0;; i++) {
    node = unwrap(node);
    if (i === path.length) break;
    const seg = path[i];
    if (node instanceof z.ZodObject && typeof seg === "string") {
      const next: z.core.$ZodType | undefined = (node.shape as Record<string, z.core.$ZodType>)[seg];
      if (!next) return undefined;
      node = next;
    } else if (node instanceof z.ZodArray && typeof seg === "number") {
      node = node.element;
    } else {
      return undefined;
    }
  }
  return node instanceof z.ZodObject ? Object.keys(node.shape) : undefined;
}

function unwrap(node: z.core.$ZodType): z.core.$ZodType {
  for (;;) {
    if (node instanceof z.ZodDefault || node instanceof z.ZodPrefault || node instanceof z.ZodOptional) {
      node = node.unwrap();
    } else {
      return node;
    }
  }
}
