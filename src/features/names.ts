// The names BlackList and --disable-tracing accept: every feature, plus the features HUATUO
// documents that this agent does not implement (a HUATUO config that disables
// them must still start; there is nothing here to disable).

import { ConfigError } from "../config/load.ts";
import { unknownNames, unknownNamesMessage } from "../config/blacklist.ts";
import { FEATURES } from "./index.ts";

/** HUATUO features without an implementation here (the shipped config's BlackList names metax_gpu). */
export const SEED_ONLY_FEATURES: readonly string[] = [
  "metax_gpu",
];

/** Every name a BlackList entry may hold. */
export function featureNames(): string[] {
  return [
    ...new Set([
      ...FEATURES.map((f) => f.name),
      ...SEED_ONLY_FEATURES,
    ]),
  ];
}

/**
 * Throws a ConfigError naming every unknown name: the config file's BlackList
 * first (naming `file`), then --disable-tracing values.
 */
export function checkFeatureNames(
  blackList: readonly string[],
  disableTracing: readonly string[],
  file: string,
  known: readonly string[] = featureNames(),
): void {
  const parts: string[] = [];
  const fromFile = unknownNames(blackList, known);
  if (fromFile.length > 0) parts.push(unknownNamesMessage(`config ${file}: BlackList`, fromFile, known));
  const fromFlag = unknownNames(disableTracing, known);
  if (fromFlag.length > 0) parts.push(unknownNamesMessage("flag --disable-tracing", fromFlag, known));
  if (parts.length > 0) throw new ConfigError(file, parts.join("\n"));
}
