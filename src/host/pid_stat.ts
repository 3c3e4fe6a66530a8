// /proc/<pid>/stat and /proc/<pid>/task/<tid>/stat: "pid (comm) state ppid …".
// comm may hold spaces and parentheses, so fields are counted after the LAST
// ")"; the one place the agent splits such a line.

/**
 * The fields after the command name, or undefined when the line has none.
 * proc(5) numbers fields from 1, so field n is `fields[n - 3]` (state is 3).
 */
export function fieldsAfterComm(text: string): string[] | undefined {
  const close = text.lastIndexOf(")");
  if (close < 0 || text.charAt(close + 1) !== " ") return undefined;
  return text.slice(close + 2).trim().split(" ");
}

/** Field `n` as proc(5) numbers it (3: state, 14: utime, 22: starttime, ...). */
export function statField(fields: readonly string[], n: number): string | undefined {
  return fields[n - 3];
}
