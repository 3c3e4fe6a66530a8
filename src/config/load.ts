// Reads huatuo-bamai.conf: TOML (smol-toml) validated against configSchema.
// Every problem is reported at once, one per line, naming the key path, what
// was expected and what was found:
//
//   config /etc/huatuo-bamai/huatuo-bamai.conf: Storage.LocalFile.RotationSize: expected an integer >= 1, found -5

import { parse as parseToml, TomlError } from "smol-toml";
import type { z } from "zod";
import { MiB, NotRegularFileError, ReadLimitError, readRegularFile } from "../io/read.ts";
import {
  type Config,
  configSchema,
  INDEX_EXPECTED,
  indexNameError,
  knownKeys,
  REGEX_EXPECTED,
  regexError,
} from "./schema.ts";

/** The shipped file with every key commented is ~30 KB: a config above 1 MiB is a wrong path, not a config. */
export const MAX_CONFIG_BYTES = 1 * MiB;

export interface ConfigProblem {
  /** Dotted key path, e.g. `AutoTracing.CPUIdle.Filter.Included[1].Pattern`. */
  path: string;
  /** What the key should hold, e.g. `an integer >= 1`. */
  expected: string;
  /** What the file holds, rendered TOML-ish: `-5`, `"Verbose"`, `true`, `a table`, `an array`. */
  found: string;
}

/**
 * A configuration file that cannot be used. `problems` lists every schema
 * violation; it is empty when the file could not be read or is not valid TOML
 * (then `line`/`column` locate a TOML syntax error).
 */
export class ConfigError extends Error {
  readonly file: string;
  readonly problems: ConfigProblem[];
  readonly line?: number;
  readonly column?: number;

  constructor(
    file: string,
    message: string,
    problems: ConfigProblem[] = [],
    position?: { line: number; column: number },
  ) {
    super(message);
    this.name = "ConfigError";
    this.file = file;
    this.problems = problems;
    this.line = position?.line;
    this.column = position?.column;
  }
}

/** Parses and validates configuration text; `file` names it in errors. */
export function parseConfig(text: string, file: string): Config {
  let raw: unknown;
  try {
    raw = parseToml(text.startsWith("\uFEFF") ? text.slice(1) : text);
  } catch (err) {
    if (err instanceof TomlError) {
      const reason = err.message.split("\n")[0].replace(/^Invalid TOML document:\s*/, "");
      throw new ConfigError(
        file,
        `config ${file}:${err.line}:${err.column}: invalid TOML at line ${err.line}, column ${err.column}: ${reason}`,
        [],
        { line: err.line, column: err.column },
      );
    }
    throw new ConfigError(file, `config ${file}: invalid TOML: ${describe(err)}`);
  }
  const result = configSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap((issue) => toProblems(issue, raw));
  const lines = problems.map((p) => `config ${file}: ${p.path}: expected ${p.expected}, found ${p.found}`);
  throw new ConfigError(file, lines.join("\n"), problems);
}

/**
 * Reads, parses and validates a configuration file. It must be a regular file
 * of at most MAX_CONFIG_BYTES: /dev/zero, a FIFO or a huge file is refused
 * before anything is read (a FIFO would block start-up for good).
 */
export async function loadConfig(file: string, maxBytes = MAX_CONFIG_BYTES): Promise<Config> {
  let bytes: Uint8Array;
  try {
    bytes = await readRegularFile(file, maxBytes);
  } catch (err) {
    throw new ConfigError(file, `config ${file}: cannot read: ${readFailure(err)}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError(file, `config ${file}: cannot read: not valid UTF-8 text`);
  }
  return parseConfig(text, file);
}

// ---------------------------------------------------------------------------
// zod issues → problems

function toProblems(issue: z.core.$ZodIssue, raw: unknown): ConfigProblem[] {
  if (issue.code === "unrecognized_keys") {
    const known = knownKeys(issue.path) ?? [];
    const where = issue.path.length === 0
      ? "a known top-level key"
      : `a known key of ${formatPath(issue.path)}`;
    return issue.keys.map((key) => {
      const path = [...issue.path, key];
      const guess = suggest(key, known);
      return {
        path: formatPath(path),
        expected: guess === undefined ? where : `${where} (did you mean "${guess}"?)`,
        found: render(valueAt(raw, path)),
      };
    });
  }
  const value = valueAt(raw, issue.path);
  let found = render(value);
  if (typeof value === "string") {
    // The value alone does not say what is wrong with it: add why.
    const why = issue.message === REGEX_EXPECTED
      ? regexError(value)
      : issue.message === INDEX_EXPECTED
      ? indexNameError(value)
      : undefined;
    if (why !== undefined) found += ` (${why})`;
  }
  return [{ path: formatPath(issue.path), expected: issue.message, found }];
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const seg of path) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<PropertyKey, unknown>)[seg];
  }
  return node;
}

/** `["AutoTracing", "CPUIdle", "Filter", "Included", 1, "Pattern"]` → `AutoTracing.CPUIdle.Filter.Included[1].Pattern`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") {
      out += `[${seg}]`;
    } else {
      const key = String(seg);
      const bare = /^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key);
      out += out === "" ? bare : `.${bare}`;
    }
  }
  return out === "" ? "(top level)" : out;
}

/** A TOML-ish rendering of a parsed value. */
export function render(value: unknown): string {
  if (value === undefined) return "nothing (the key is missing)";
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "nan";
    if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
    return String(value);
  }
  if (typeof value === "bigint" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a date-time";
  if (typeof value === "object" && value !== null) return "a table";
  return String(value);
}

/** The known key closest to `key`: a case-insensitive match first, then a small edit distance. */
export function suggest(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const same = known.find((k) => k.toLowerCase() === lower);
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(lower, k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  const limit = Math.max(2, Math.floor(key.length / 3));
  return bestDistance <= limit ? best : undefined;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent transpositions. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => {
    const row = new Array<number>(b.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

function readFailure(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "file not found";
  if (err instanceof NotRegularFileError) return `${err.message}; the config must be a regular file`;
  if (err instanceof ReadLimitError) return `${err.message}, the limit for a config file`;
  return describe(err);
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
