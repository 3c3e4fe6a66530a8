// Stamped by build.sh into the build (bundle and `deno compile` alike) and restored right after, so the
// committed file always says "unknown"; `deno run main.ts` from a checkout asks git instead.
export const BUILD_REVISION: string = "unknown";
export const BUILD_TIME: string = "unknown";
