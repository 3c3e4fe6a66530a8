// huatuo-bamai: HUATUO kernel observability agent.

import { EXIT_USAGE, runAgent } from "./src/agent/agent.ts";
import { parseArgs, usage, UsageError } from "./src/cli/flags.ts";
import { agentBuild } from "./src/agent/build_info.ts";

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
      {
        const b = agentBuild();
        console.log(
          `huatuo-bamai ${b.version} (revision ${b.revision}, built ${b.buildTime}, deno ${b.deno})`,
        );
      }
      return 0;
    case "run":
      return await runAgent(cmd.options);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
