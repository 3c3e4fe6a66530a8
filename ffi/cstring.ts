// Text of fixed-size C char arrays: kernel records, ioctl and netlink structs.
// The one place the agent decodes them (src/bpf/record.ts re-exports it).

const decoder = new TextDecoder();

/** The text before the first NUL of a fixed-size C char array (all of it when there is no NUL). */
export function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return decoder.decode(end < 0 ? bytes : bytes.subarray(0, end));
}
