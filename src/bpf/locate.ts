// Where the compiled BPF objects are when --bpf-dir is not given: in
// HUATUO_BAMAI_BPF_DIR when set (tests, or a bundle run by hand); a single-file
// build (packaging/single/loader.c) passes them as one tar archive, in
// HUATUO_BAMAI_BPF_ARCHIVE; a `deno compile` binary carries _output/bpf inside,
// next to main.ts in its embedded tree; a development run uses the
// repository's _output/bpf.

export function defaultBpfDir(): string {
  const fromLauncher = Deno.env.get("HUATUO_BAMAI_BPF_DIR");
  if (fromLauncher) return fromLauncher;
  return new URL("../../_output/bpf", import.meta.url).pathname;
}

/**
 * The objects of HUATUO_BAMAI_BPF_ARCHIVE by file name (relative to the
 * archive's root); undefined without it, or when HUATUO_BAMAI_BPF_DIR names a
 * directory to use instead (tests point a single file at other objects).
 */
export function embeddedBpfObjects(): Map<string, Uint8Array> | undefined {
  if (Deno.env.get("HUATUO_BAMAI_BPF_DIR")) return undefined;
  const path = Deno.env.get("HUATUO_BAMAI_BPF_ARCHIVE");
  return path ? readTar(Deno.readFileSync(path)) : undefined;
}

/** The regular files of an uncompressed ustar archive (as `tar --format=ustar` writes it). */
export function readTar(bytes: Uint8Array): Map<string, Uint8Array> {
  const files = new Map<string, Uint8Array>();
  const text = (at: number, len: number) =>
    new TextDecoder().decode(bytes.subarray(at, at + len)).replace(/\0.*$/s, "");
  for (let at = 0; at + 512 <= bytes.length;) {
    const name = text(at, 100);
    if (name === "") break; // the two zero blocks that end the archive
    const prefix = text(at + 345, 155);
    const size = parseInt(text(at + 124, 12).trim() || "0", 8);
    const type = text(at + 156, 1);
    if (!Number.isFinite(size) || at + 512 + size > bytes.length) {
      throw new Error(`corrupt tar archive at ${at}`);
    }
    if (type === "0" || type === "") {
      const full = (prefix ? `${prefix}/${name}` : name).replace(/^(\.\/)+/, "");
      files.set(full, bytes.subarray(at + 512, at + 512 + size));
    }
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}
