// Where the compiled BPF objects are when --bpf-dir is not given: the bundle
// launcher exports HUATUO_BAMAI_BPF_DIR (its _output/bpf); a `deno compile`
// binary carries _output/bpf inside, next to main.ts in its embedded tree; a
// development run uses the repository's _output/bpf.

export function defaultBpfDir(): string {
  const fromLauncher = Deno.env.get("HUATUO_BAMAI_BPF_DIR");
  if (fromLauncher) return fromLauncher;
  return new URL("../../_output/bpf", import.meta.url).pathname;
}
