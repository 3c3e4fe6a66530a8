// Leveled logger writing one logfmt line per record to stderr and, when
// Log.File is set, appending the same line to that file. reopen() (on SIGHUP)
// closes the file and opens it again by its path, so logrotate can move it away
// and the next lines go to a new file.

export const LOG_LEVELS = ["Debug", "Info", "Warn", "Error", "Panic"] as const;
export type LogLevel = typeof LOG_LEVELS[number];

const RANK: Record<LogLevel, number> = { Debug: 0, Info: 1, Warn: 2, Error: 3, Panic: 4 };

export type LogFields = Record<string, string | number | boolean | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  enabled(level: LogLevel): boolean;
  /** Closes Log.File and opens it again by path (after logrotate moved it); a no-op without one. */
  reopen(): void;
  close(): void;
}

export interface LoggerOptions {
  level: LogLevel;
  file?: string;
  /** Where console lines go; stderr unless a test captures them. */
  write?: (line: string) => void;
}

const encoder = new TextEncoder();

export function createLogger(opts: LoggerOptions): Logger {
  const min = RANK[opts.level];
  const toConsole = opts.write ?? ((line: string) => Deno.stderr.writeSync(encoder.encode(line)));
  const path = opts.file;
  const open = (p: string) => Deno.openSync(p, { append: true, create: true, write: true });
  let file: Deno.FsFile | undefined = path ? open(path) : undefined;
  let closed = false;
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (RANK[level] < min) return;
    const line = formatLine(new Date(), level, msg, fields);
    toConsole(line);
    file?.writeSync(encoder.encode(line));
  };
  return {
    debug: (m, f) => emit("Debug", m, f),
    info: (m, f) => emit("Info", m, f),
    warn: (m, f) => emit("Warn", m, f),
    error: (m, f) => emit("Error", m, f),
    enabled: (level) => RANK[level] >= min,
    reopen: () => {
      if (!path || closed) return;
      file?.close();
      file = undefined;
      try {
        file = open(path);
      } catch (err) {
        // The agent keeps running on stderr alone; the next SIGHUP tries again.
        emit("Error", "cannot reopen log file", {
          file: path,
          error: err instanceof Error ? err.message : String(err),
        });
        return;
      }
      emit("Info", "log file reopened", { file: path });
    },
    close: () => {
      closed = true;
      file?.close();
      file = undefined;
    },
  };
}

export function formatLine(time: Date, level: LogLevel, msg: string, fields?: LogFields): string {
  let line = `time=${time.toISOString()} level=${level.toLowerCase()} msg=${quote(msg)}`;
  if (fields) {
    for (const [k, v] of Object.entries(fields)) {
      // A line never repeats a key: log parsers keep one of two (which one differs), so a field named like a
      // fixed key is written as field_<name>.
      if (v !== undefined) line += ` ${RESERVED.has(k) ? `field_${k}` : k}=${quote(String(v))}`;
    }
  }
  return line + "\n";
}

const RESERVED = new Set(["time", "level", "msg"]);

function quote(s: string): string {
  return /^[\w.:/@+-]+$/.test(s) ? s : JSON.stringify(s);
}

/** A logger that drops everything; for unit tests. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  enabled: () => false,
  reopen() {},
  close() {},
};
