// The agent's configuration: the file named by the flags (defaults when the
// default file is absent), its BlackList names checked against the features,
// then the flags applied on top.

import { type CliOptions, configPath } from "../cli/flags.ts";
import { loadConfig } from "../config/load.ts";
import { type Config, defaultConfig } from "../config/schema.ts";
import { checkFeatureNames } from "../features/names.ts";

/** Loads the config named by the flags; a missing default file means defaults. */
export async function resolveConfig(opts: CliOptions, warn: (msg: string) => void): Promise<Config> {
  const path = configPath(opts);
  if (!opts.configExplicit) {
    try {
      await Deno.stat(path);
    } catch {
      warn(`config ${path} not found; running with defaults`);
      return defaultConfig();
    }
  }
  return await loadConfig(path);
}

export function applyFlags(config: Config, opts: CliOptions): Config {
  const blackList = [...new Set([...config.BlackList, ...opts.disableTracing])];
  const level = opts.logDebug ? "Debug" : config.Log.Level;
  return { ...config, BlackList: blackList, Log: { ...config.Log, Level: level } };
}

/** The config the agent runs with; throws ConfigError (exit 2) for a bad file or an unknown feature name. */
export async function agentConfig(opts: CliOptions, warn: (msg: string) => void): Promise<Config> {
  const loaded = await resolveConfig(opts, warn);
  // Before anything starts: a misspelt BlackList name would leave its feature on.
  checkFeatureNames(loaded.BlackList, opts.disableTracing, configPath(opts));
  return applyFlags(loaded, opts);
}
