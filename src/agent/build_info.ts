// What --version, /version and huatuo_bamai_build_info say about this build.

import { BUILD_REVISION, BUILD_TIME } from "../core/build_info.ts";
import { VERSION } from "../core/version.ts";

export interface AgentBuild {
  version: string;
  revision: string;
  buildTime: string;
  deno: string;
  v8: string;
}

let cached: AgentBuild | undefined;

export function agentBuild(): AgentBuild {
  cached ??= {
    version: VERSION,
    revision: BUILD_REVISION !== "unknown" ? BUILD_REVISION : gitRevision(),
    buildTime: BUILD_TIME,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
  };
  return cached;
}

/** Unstamped, i.e. run from source: the checkout's commit when git is there, else "unknown". */
function gitRevision(): string {
  const here = new URL(".", import.meta.url);
  if (here.protocol !== "file:") return "unknown";
  try {
    const out = new Deno.Command("git", {
      args: ["rev-parse", "--short=12", "HEAD"],
      cwd: here.pathname,
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    const rev = new TextDecoder().decode(out.stdout).trim();
    return out.success && /^[0-9a-f]+$/.test(rev) ? rev : "unknown";
  } catch {
    return "unknown"; // no git, or no permission to run it
  }
}
