// Command-line flags, compatible with HUATUO's huatuo-bamai. Both `--flag v`,
// `--flag=v` and the single-dash Go style `-flag v` are accepted.

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export interface CliOptions {
  region: string;
  config: string;
  configDir?: string;
  procfsPrefix: string;
  disableStorage: boolean;
  disableKubelet: boolean;
  disableTracing: string[];
  enableCgroup: boolean;
  bpfDir?: string;
  toolsBinDir?: string;
  logDebug: boolean;
  dryRun: boolean;
  /** True when --config or --config-dir was given: a missing file is then an error. */
  configExplicit: boolean;
}

export type CliCommand = { kind: "run"; options: CliOptions } | { kind: "help" } | { kind: "version" };

interface FlagSpec {
  name: string;
  value?: string; // metavariable; absent for booleans
  help: string;
}

export const FLAGS: readonly FlagSpec[] = [
  {
    name: "region",
    value: "REGION",
    help: "region (availability zone) of this host, added to every series (required)",
  },
  { name: "config", value: "FILE", help: "config file name (default huatuo-bamai.conf)" },
  {
    name: "config-dir",
    value: "DIR",
    help: "directory holding the config file (default: current directory)",
  },
  { name: "procfs-prefix", value: "DIR", help: "prefix for /proc, /sys and /dev, e.g. a fixture tree" },
  { name: "disable-storage", help: "do not store events in Elasticsearch/OpenSearch" },
  { name: "disable-kubelet", help: "do not fetch pods from the kubelet (host only)" },
  {
    name: "disable-tracing",
    value: "NAME",
    help: "disable a tracer or collector (repeatable; added to BlackList)",
  },
  { name: "enable-cgroup", help: "confine the agent in its own cgroup with RuntimeCgroup limits" },
  { name: "bpf-dir", value: "DIR", help: "directory of the BPF objects" },
  { name: "tools-bin-dir", value: "DIR", help: "directory of the tracing tools binaries" },
  { name: "log-debug", help: "log at Debug level, overriding Log.Level" },
  { name: "dry-run", help: "start everything, run one scrape, then exit 0" },
  { name: "version", help: "print the version and exit" },
  { name: "help", help: "show this help and exit" },
];

export function usage(): string {
  const rows = FLAGS.map((f) => {
    const left = `  --${f.name}${f.value ? ` ${f.value}` : ""}`;
    return `${left.padEnd(28)} ${f.help}`;
  });
  return [
    "Usage: huatuo-bamai --region REGION [options]",
    "",
    "HUATUO kernel observability agent: host metrics on :19704/metrics.",
    "",
    "Options:",
    ...rows,
    "",
    "Example: huatuo-bamai --region example --config huatuo-bamai.conf",
    "",
  ].join("\n");
}

export function parseArgs(args: readonly string[]): CliCommand {
  const opts: CliOptions = {
    region: "",
    config: "huatuo-bamai.conf",
    procfsPrefix: "",
    disableStorage: false,
    disableKubelet: false,
    disableTracing: [],
    enableCgroup: false,
    logDebug: false,
    dryRun: false,
    configExplicit: false,
  };
  let help = false;
  let version = false;
  let regionSeen = false;

  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-h") {
      help = true;
      continue;
    }
    const m = /^--?([a-z][a-z-]*)(?:=(.*))?$/s.exec(arg);
    if (!m) throw new UsageError(`unexpected argument ${JSON.stringify(arg)}`);
    const [, name, inline] = m;
    const spec = FLAGS.find((f) => f.name === name);
    if (!spec) throw new UsageError(`unknown flag --${name}`);

    let value: string | undefined = inline;
    if (spec.value) {
      if (value === undefined) {
        if (i + 1 >= args.length) throw new UsageError(`flag --${name} needs a value (${spec.value})`);
        value = args[++i];
      }
    }
    const bool = spec.value ? true : parseBool(name, value);

    switch (name) {
      case "region":
        opts.region = value!;
        regionSeen = true;
        break;
      case "config":
        opts.config = value!;
        opts.configExplicit = true;
        break;
      case "config-dir":
        opts.configDir = value!;
        opts.configExplicit = true;
        break;
      case "procfs-prefix":
        opts.procfsPrefix = value!;
        break;
      case "disable-storage":
        opts.disableStorage = bool;
        break;
      case "disable-kubelet":
        opts.disableKubelet = bool;
        break;
      case "disable-tracing":
        opts.disableTracing.push(...value!.split(",").map((s) => s.trim()).filter((s) => s !== ""));
        break;
      case "enable-cgroup":
        opts.enableCgroup = bool;
        break;
      case "bpf-dir":
        opts.bpfDir = value!;
        break;
      case "tools-bin-dir":
        opts.toolsBinDir = value!;
        break;
      case "log-debug":
        opts.logDebug = bool;
        break;
      case "dry-run":
        opts.dryRun = bool;
        break;
      case "version":
        version = bool;
        break;
      case "help":
        help = bool;
        break;
    }
  }
  if (help) return { kind: "help" };
  if (version) return { kind: "version" };
  if (!regionSeen || opts.region.trim() === "") throw new UsageError("flag --region is required");
  return { kind: "run", options: opts };
}

function parseBool(name: string, value: string | undefined): boolean {
  if (value === undefined || value === "true" || value === "1") return true;
  if (value === "false" || value === "0") return false;
  throw new UsageError(`flag --${name} takes true or false, found ${JSON.stringify(value)}`);
}

/** Path of the config file: --config as given when absolute, else under --config-dir. */
export function configPath(opts: CliOptions): string {
  if (opts.config.startsWith("/")) return opts.config;
  return `${(opts.configDir ?? ".").replace(/\/+$/, "")}/${opts.config}`;
}
