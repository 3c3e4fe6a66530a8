// Small file-system checks shared by tests that need a kernel feature or a
// built BPF object before they can run (the agent's own, from src/host/fs.ts).

export { exists } from "../src/host/fs.ts";
