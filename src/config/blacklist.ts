// BlackList names (and --disable-tracing values) must name a real feature: a
// typo ("dropwatchh") would otherwise leave the feature on without a word.
// The names come from the collector and tracer tables, which src/config must
// not import; the caller passes them in (see src/features/names.ts).

import { suggest } from "./load.ts";

export interface UnknownName {
  name: string;
  /** The closest known name, when one is close enough to be a likely typo. */
  suggestion?: string;
}

/** The entries of `names` not in `known`, each with a did-you-mean suggestion when one is close. */
export function unknownNames(names: readonly string[], known: readonly string[]): UnknownName[] {
  const set = new Set(known);
  const out: UnknownName[] = [];
  for (const name of new Set(names)) {
    if (set.has(name)) continue;
    const suggestion = suggest(name, known);
    out.push(suggestion === undefined ? { name } : { name, suggestion });
  }
  return out;
}

/**
 * One line per unknown name, `where` first (`config <file>: BlackList` or
 * `flag --disable-tracing`); the known names follow when a name had no close match.
 */
export function unknownNamesMessage(
  where: string,
  unknown: readonly UnknownName[],
  known: readonly string[],
): string {
  const lines = unknown.map((u) =>
    `${where}: unknown name ${JSON.stringify(u.name)}` +
    (u.suggestion === undefined ? "" : ` (did you mean ${JSON.stringify(u.suggestion)}?)`)
  );
  if (unknown.some((u) => u.suggestion === undefined)) {
    lines.push(`${where}: known names are ${[...known].sort().join(", ")}`);
  }
  return lines.join("\n");
}
