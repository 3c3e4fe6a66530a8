import { assert, assertEquals, assertStrictEquals } from "../../testing/assert.ts";
import {
  configSchema,
  defaultConfig,
  indexNameError,
  knownKeys,
  regexError,
  splitHostPort,
} from "./schema.ts";

Deno.test("defaultConfig has the seed defaults", () => {
  const c = defaultConfig();
  assertEquals(c.BlackList, []);
  assertEquals(c.Log, { Level: "Info", File: "" });
  assertEquals(c.RuntimeCgroup, { LimitInitCPU: 0.5, LimitCPU: 2.0, LimitMem: 2048 });
  assertEquals(c.Storage.ES, {
    Address: "http://127.0.0.1:9200",
    Index: "huatuo_bamai",
    Username: "",
    Password: "",
    CAFile: "",
    InsecureSkipVerify: false,
    OutboxPath: "",
    OutboxMaxSize: 1024,
    BulkSize: 500,
  });
  assertEquals(c.Storage.LocalFile, { Path: "huatuo-local", RotationSize: 100, MaxRotation: 10 });
  assertEquals(c.AutoTracing.IssuesList, []);
  assertEquals(c.AutoTracing.CPUIdle, {
    UserThreshold: 75,
    SysThreshold: 45,
    UsageThreshold: 90,
    DeltaUserThreshold: 45,
    DeltaSysThreshold: 20,
    DeltaUsageThreshold: 55,
    Interval: 10,
    IntervalTracing: 1800,
    RunTracingToolTimeout: 10,
    Filter: { Included: [], Excluded: [] },
  });
  assertEquals(c.AutoTracing.CPUSys, {
    SysThreshold: 45,
    DeltaSysThreshold: 20,
    Interval: 10,
    RunTracingToolTimeout: 10,
  });
  assertEquals(c.AutoTracing.Dload, {
    ThresholdLoad: 5,
    Interval: 10,
    IntervalTracing: 1800,
    Filter: { Included: [], Excluded: [] },
  });
  assertEquals(c.AutoTracing.IOTracing, {
    WbpsThreshold: 1500,
    RbpsThreshold: 2000,
    UtilThreshold: 90,
    AwaitThreshold: 100,
    RunTracingToolTimeout: 10,
    MaxProcDump: 10,
    MaxFilesPerProcDump: 5,
    Filter: { Included: [], Excluded: [] },
  });
  assertEquals(c.AutoTracing.MemoryBurst, {
    DeltaMemoryBurst: 100,
    DeltaAnonThreshold: 70,
    Interval: 10,
    IntervalTracing: 1800,
    SlidingWindowLength: 60,
    DumpProcessMaxNum: 10,
  });
  assertEquals(c.EventTracing.IssuesList, []);
  assertStrictEquals(c.EventTracing.Softirq.DisabledThreshold, 10000000);
  assertStrictEquals(c.EventTracing.MemoryReclaim.BlockedThreshold, 900000000);
  assertEquals(c.EventTracing.NetRxLatency, {
    Driver2NetRx: 5,
    Driver2TCP: 10,
    Driver2Userspace: 115,
    ExcludedContainerQos: [],
    ExcludedHostNetnamespace: true,
  });
  assertEquals(c.EventTracing.Netdev.DeviceList, []);
  assertStrictEquals(c.EventTracing.Dropwatch.ExcludedNeighInvalidate, true);
  assertStrictEquals(c.EventTracing.Dropwatch.EventsPerSecond, 100);
  assertStrictEquals(c.EventTracing.Ras.MceThrBackoff, 1800);
  assertEquals(c.MetricCollector.NetdevStats, {
    EnableNetlink: false,
    DeviceIncluded: "",
    DeviceExcluded: "",
  });
  assertEquals(c.MetricCollector.NetdevDCB.DeviceList, []);
  assertEquals(c.MetricCollector.NetdevHW.DeviceList, []);
  assertEquals(c.MetricCollector.Qdisc, { DeviceIncluded: "", DeviceExcluded: "" });
  assertEquals(c.MetricCollector.Vmstat, {
    IncludedOnHost: "",
    ExcludedOnHost: "",
    IncludedOnContainer: "",
    ExcludedOnContainer: "",
  });
  assertEquals(c.MetricCollector.MemoryEvents, { Included: "", Excluded: "" });
  assertEquals(c.MetricCollector.Netstat, { Included: "", Excluded: "" });
  assertEquals(c.MetricCollector.MountPointStat, { MountPointsIncluded: "" });
  assertEquals(c.Pod, {
    KubeletReadOnlyPort: 10255,
    KubeletAuthorizedPort: 10250,
    KubeletClientCertPath: "",
  });
  assertEquals(c.EventsWatch, { MaxClients: 100, KeepAliveInterval: 30 });
  assertEquals(c.APIServer, {
    TCPAddr: ":19704",
    Token: "",
    MaxConnections: 0,
    ReadHeaderTimeout: 10,
    IdleTimeout: 60,
    WriteTimeout: 30,
  });
});

Deno.test("defaultConfig returns a fresh copy every time", () => {
  const a = defaultConfig();
  a.BlackList.push("cpu_util");
  a.AutoTracing.CPUIdle.Filter.Included.push({ Field: "container_qos", Pattern: "x" });
  a.Log.Level = "Debug";
  const b = defaultConfig();
  assertEquals(b.BlackList, []);
  assertEquals(b.AutoTracing.CPUIdle.Filter.Included, []);
  assertStrictEquals(b.Log.Level, "Info");
});

Deno.test("a partial section keeps the defaults of its other keys", () => {
  const c = configSchema.parse({ Storage: { LocalFile: { RotationSize: 5 } }, Log: { Level: "Debug" } });
  assertEquals(c.Storage.LocalFile, { Path: "huatuo-local", RotationSize: 5, MaxRotation: 10 });
  assertEquals(c.Storage.ES.Index, "huatuo_bamai");
  assertEquals(c.Log, { Level: "Debug", File: "" });
});

Deno.test("valid values of every kind are accepted", () => {
  const c = configSchema.parse({
    RuntimeCgroup: { LimitCPU: 4, LimitInitCPU: 0.25 },
    AutoTracing: {
      IssuesList: [["known_issue1", "softlockup"], ["known_issue2", "alloc_pages.*failed"]],
      CPUIdle: {
        Filter: {
          Excluded: [{ Field: "container_qos", Pattern: "besteffort" }],
          Included: [{ Field: "container_host_namespace", Pattern: "^application-" }],
        },
      },
      Dload: { ThresholdLoad: 2.5, Filter: { Included: [{ Field: "container_hostname", Pattern: "^db-" }] } },
    },
    EventTracing: { NetRxLatency: { ExcludedContainerQos: ["BestEffort", "burstable", ""] } },
    Pod: { KubeletReadOnlyPort: 0, KubeletAuthorizedPort: 0 },
    APIServer: { TCPAddr: "[::1]:8080" },
    Storage: { ES: { Address: "https://es.example.com:9200" } },
  });
  assertStrictEquals(c.RuntimeCgroup.LimitCPU, 4);
  assertEquals(c.AutoTracing.IssuesList[1], ["known_issue2", "alloc_pages.*failed"]);
  assertEquals(c.AutoTracing.CPUIdle.Filter.Excluded, [{ Field: "container_qos", Pattern: "besteffort" }]);
  assertStrictEquals(c.AutoTracing.Dload.Filter.Included[0].Field, "container_hostname");
  assertEquals(c.AutoTracing.Dload.Filter.Excluded, []);
  assertStrictEquals(c.AutoTracing.Dload.ThresholdLoad, 2.5);
  assertEquals(c.EventTracing.NetRxLatency.ExcludedContainerQos, ["BestEffort", "burstable", ""]);
  assertStrictEquals(c.APIServer.TCPAddr, "[::1]:8080");
});

Deno.test("invalid values are rejected", () => {
  const bad: unknown[] = [
    { Log: { Level: "Verbose" } },
    { Log: { level: "Info" } },
    { Unknown: 1 },
    { Storage: { LocalFile: { RotationSize: 0 } } },
    { Storage: { LocalFile: { MaxRotation: -1 } } },
    { Storage: { ES: { Address: "127.0.0.1:9200" } } },
    { RuntimeCgroup: { LimitCPU: 0 } },
    { RuntimeCgroup: { LimitMem: 1.5 } },
    { AutoTracing: { CPUIdle: { UserThreshold: 101 } } },
    { AutoTracing: { IOTracing: { UtilThreshold: -1 } } },
    { AutoTracing: { CPUIdle: { Filter: { Included: [{ Field: "container_name", Pattern: "x" }] } } } },
    { AutoTracing: { CPUIdle: { Filter: { Included: [{ Field: "container_qos" }] } } } },
    { AutoTracing: { IOTracing: { Filter: { Excluded: [{ Field: "container_qos", Pattern: "(" }] } } } },
    { AutoTracing: { IssuesList: [["only-a-name"]] } },
    { EventTracing: { IssuesList: [["name", "[unclosed"]] } },
    { EventTracing: { NetRxLatency: { ExcludedContainerQos: ["gold"] } } },
    { MetricCollector: { Vmstat: { IncludedOnHost: "*" } } },
    { Pod: { KubeletReadOnlyPort: 65536 } },
    { EventsWatch: { MaxClients: 0 } },
    { APIServer: { TCPAddr: "19704" } },
    { APIServer: { TCPAddr: ":0" } },
    { APIServer: { TCPAddr: ":70000" } },
    { BlackList: "netdev_hw" },
  ];
  for (const input of bad) {
    assert(!configSchema.safeParse(input).success, `accepted ${JSON.stringify(input)}`);
  }
});

Deno.test("splitHostPort accepts host:port, :port and [v6]:port", () => {
  assertEquals(splitHostPort(":19704"), { hostname: "", port: 19704 });
  assertEquals(splitHostPort("127.0.0.1:80"), { hostname: "127.0.0.1", port: 80 });
  assertEquals(splitHostPort("localhost:65535"), { hostname: "localhost", port: 65535 });
  assertEquals(splitHostPort("[::]:19704"), { hostname: "::", port: 19704 });
  assertEquals(splitHostPort("[fe80::1%eth0]:1"), { hostname: "fe80::1%eth0", port: 1 });
  for (const bad of ["", "19704", ":", ":0", ":65536", "::1:80", "[127.0.0.1]:80", "host:port", "a b:1"]) {
    assertStrictEquals(splitHostPort(bad), undefined, bad);
  }
});

Deno.test("indexNameError follows Elasticsearch's index-name rules", () => {
  for (const ok of ["huatuo_bamai", "huatuo-bamai-2025.06", "a", "x+y", "日志", "a".repeat(255)]) {
    assertStrictEquals(indexNameError(ok), undefined, ok);
  }
  const cases: [string, string][] = [
    ["", "empty"],
    [".", '"." is reserved'],
    ["..", '".." is reserved'],
    ["-x", "starts with -"],
    ["_x", "starts with _"],
    ["+x", "starts with +"],
    ["UPPER", "has uppercase letters"],
    ["a b", "has a space"],
    ["a,b", 'has ","'],
    ["a#b", 'has "#"'],
    ["a:b", 'has ":"'],
    ["a\\b", 'has "\\\\"'],
    ["a/b", 'has "/"'],
    ["a*", 'has "*"'],
    ["a?", 'has "?"'],
    ['a"', 'has "\\""'],
    ["a<", 'has "<"'],
    ["a>", 'has ">"'],
    ["a|", 'has "|"'],
    ["a".repeat(256), "256 bytes long"],
    ["é".repeat(128), "256 bytes long"],
  ];
  for (const [name, why] of cases) assertStrictEquals(indexNameError(name), why, name);
  assert(!configSchema.safeParse({ Storage: { ES: { Index: "UPPER" } } }).success);
  assert(configSchema.safeParse({ Storage: { ES: { Index: "huatuo_bamai" } } }).success);
});

Deno.test("regexError explains a bad regular expression", () => {
  assertStrictEquals(regexError("^(lo)|(docker\\w*)|(veth\\w*)$"), undefined);
  assertStrictEquals(regexError(""), undefined);
  assertStrictEquals(regexError("(unclosed"), "Unterminated group");
});

Deno.test("knownKeys walks sections, arrays of tables and stops at leaves", () => {
  assert(knownKeys([])?.includes("APIServer"));
  assertEquals(knownKeys(["Log"]), ["Level", "File"]);
  assertEquals(knownKeys(["AutoTracing", "Dload", "Filter", "Excluded", 3]), ["Field", "Pattern"]);
  assertStrictEquals(knownKeys(["Log", "Level"]), undefined);
  assertStrictEquals(knownKeys(["Nope"]), undefined);
});
