// huatuo-bamai: HUATUO kernel observability agent.

import { EXIT_USAGE, runAgent } from "./src/agent/agent.ts";
import { parseArgs, usage, UsageError } from "./src/cli/flags.ts";
import { VERSION } from "./src/core/version.ts";

async function main(args: string[]): Promise<number> {
  let cmd;
  try {
    cmd = parseArgs(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`huatuo-bamai: ${err.message}\n\n${usage()}`);
      return EXIT_USAGE;
    }
    throw err;
  }
  switch (cmd.kind) {
    case "help":
      console.log(usage());
      return 0;
    case "version":
      console.log(`huatuo-bamai ${VERSION} (deno ${Deno.version.deno})`);
      return 0;
    case "run":
      return await runAgent(cmd.options);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
