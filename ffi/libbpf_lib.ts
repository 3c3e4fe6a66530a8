// libbpf.so.1: its symbols, opened once on first use (so importing a binding
// needs no --allow-ffi), for the bindings over it (ffi/libbpf.ts, ffi/btf.ts).

const SYMBOLS = {
  libbpf_set_print: { parameters: ["function"], result: "pointer" },
  libbpf_num_possible_cpus: { parameters: [], result: "i32" },
  bpf_object__open_file: { parameters: ["buffer", "buffer"], result: "pointer" },
  bpf_object__open_mem: { parameters: ["buffer", "usize", "buffer"], result: "pointer" },
  bpf_object__load: { parameters: ["pointer"], result: "i32" },
  bpf_object__close: { parameters: ["pointer"], result: "void" },
  bpf_object__btf: { parameters: ["pointer"], result: "pointer" },
  bpf_object__next_program: { parameters: ["pointer", "pointer"], result: "pointer" },
  bpf_object__next_map: { parameters: ["pointer", "pointer"], result: "pointer" },
  bpf_program__name: { parameters: ["pointer"], result: "pointer" },
  bpf_program__section_name: { parameters: ["pointer"], result: "pointer" },
  bpf_program__fd: { parameters: ["pointer"], result: "i32" },
  bpf_program__type: { parameters: ["pointer"], result: "u32" },
  bpf_program__autoload: { parameters: ["pointer"], result: "bool" },
  bpf_program__set_autoload: { parameters: ["pointer", "bool"], result: "i32" },
  bpf_program__attach: { parameters: ["pointer"], result: "pointer" },
  bpf_program__attach_perf_event: { parameters: ["pointer", "i32"], result: "pointer" },
  bpf_link__destroy: { parameters: ["pointer"], result: "i32" },
  bpf_map__name: { parameters: ["pointer"], result: "pointer" },
  bpf_map__fd: { parameters: ["pointer"], result: "i32" },
  bpf_map__type: { parameters: ["pointer"], result: "u32" },
  bpf_map__key_size: { parameters: ["pointer"], result: "u32" },
  bpf_map__value_size: { parameters: ["pointer"], result: "u32" },
  bpf_map__max_entries: { parameters: ["pointer"], result: "u32" },
  bpf_map__set_max_entries: { parameters: ["pointer", "u32"], result: "i32" },
  bpf_map__initial_value: { parameters: ["pointer", "buffer"], result: "pointer" },
  btf__find_by_name_kind: { parameters: ["pointer", "buffer", "u32"], result: "i32" },
  btf__type_by_id: { parameters: ["pointer", "u32"], result: "pointer" },
  btf__name_by_offset: { parameters: ["pointer", "u32"], result: "pointer" },
  btf__parse: { parameters: ["buffer", "pointer"], result: "pointer" },
  btf__free: { parameters: ["pointer"], result: "void" },
  btf__type_cnt: { parameters: ["pointer"], result: "u32" },
  btf__resolve_size: { parameters: ["pointer", "u32"], result: "i64" },
  bpf_map_lookup_elem: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bpf_map_update_elem: { parameters: ["i32", "buffer", "buffer", "u64"], result: "i32" },
  bpf_map_delete_elem: { parameters: ["i32", "buffer"], result: "i32" },
  bpf_map_get_next_key: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bpf_map_lookup_batch: {
    parameters: ["i32", "buffer", "buffer", "buffer", "buffer", "buffer", "buffer"],
    result: "i32",
  },
  // libbpf 1.1 has no bpf_prog_get_info_by_fd (added in 1.2).
  bpf_obj_get_info_by_fd: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
} as const;

export type Libbpf = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Libbpf | undefined;
const onLoad: Array<(l: Libbpf) => void> = [];

/** Runs `fn` with the library once it is open (now, if it already is). */
export function whenLoaded(fn: (l: Libbpf) => void): void {
  if (lib) fn(lib);
  else onLoad.push(fn);
}

export class LibbpfUnavailableError extends Error {
  constructor(readonly dlopenError: string) {
    super(libbpfUnavailableMessage(dlopenError));
    this.name = "LibbpfUnavailableError";
  }
}

/** "libbpf.so.1 not found: <why>" (or "cannot be loaded" when it exists but is unusable). */
export function libbpfUnavailableMessage(dlopenError: string): string {
  // Deno prefixes dlopen's own message with "Could not open library: ", sometimes twice.
  const why = dlopenError.replace(/^(Could not open library: )+/, "");
  return /No such file or directory/.test(why)
    ? `libbpf.so.1 not found: ${why}`
    : `libbpf.so.1 cannot be loaded: ${why}`;
}

/**
 * Where libbpf is: a single-file build (packaging/single/loader.c) carries it
 * and its libraries as /proc/self/fd/N paths in HUATUO_BAMAI_LIBBPF, _LIBELF
 * and _LIBZ; otherwise the host's, by soname.
 */
function openLibbpf(): Libbpf {
  const env = (name: string) => Deno.env.get(`HUATUO_BAMAI_${name}`);
  const path = env("LIBBPF");
  if (!path) return Deno.dlopen("libbpf.so.1", SYMBOLS).symbols;
  // Its dependencies first: the dynamic loader then satisfies libbpf's
  // DT_NEEDED libz.so.1 and libelf.so.1 by soname from these, not the host.
  for (const dep of [env("LIBZ"), env("LIBELF")]) if (dep) Deno.dlopen(dep, {});
  return Deno.dlopen(path, SYMBOLS).symbols;
}

/** The libbpf symbols; throws LibbpfUnavailableError when the library cannot be opened. */
export function libbpf(): Libbpf {
  if (lib === undefined) {
    try {
      lib = openLibbpf();
    } catch (err) {
      throw new LibbpfUnavailableError(err instanceof Error ? err.message : String(err));
    }
    for (const fn of onLoad.splice(0)) fn(lib);
  }
  return lib;
}

/**
 * Loads libbpf now; throws LibbpfUnavailableError when it cannot be. Checked
 * before anything else a tracer needs (kernel BTF, objects), so a host without
 * libbpf is told that rather than what else it might lack.
 */
export function ensureLibbpf(): void {
  libbpf();
}
