// BTF through libbpf's btf__* API: the one way this project reads type
// information, whether the kernel's (/sys/kernel/btf/vmlinux: enum names,
// per-CPU variable offsets) or a compiled BPF object's (.BTF of
// _output/bpf/*.o: the layout of the records its programs emit).
//
// libbpf parses and validates; this module only reads the parsed types.
// Every struct btf_type starts {u32 name_off; u32 info; u32 size|type} and is
// followed by kind-specific data (include/uapi/linux/btf.h):
//   STRUCT/UNION vlen × {u32 name_off; u32 type; u32 offset}  (offset in bits;
//                       with kind_flag: bitfield size << 24 | bit offset)
//   ENUM         vlen × {u32 name_off; s32 val}
//   ENUM64       vlen × {u32 name_off; u32 val_lo32; u32 val_hi32}
//   DATASEC      vlen × {u32 type; u32 offset; u32 size}
//   ARRAY        {u32 type; u32 index_type; u32 nelems}

import { libbpf } from "./libbpf_lib.ts";
import { errno, errnoName, strerror } from "./libc.ts";

export const BTF_KIND = {
  INT: 1,
  PTR: 2,
  ARRAY: 3,
  STRUCT: 4,
  UNION: 5,
  ENUM: 6,
  FWD: 7,
  TYPEDEF: 8,
  VOLATILE: 9,
  CONST: 10,
  RESTRICT: 11,
  FUNC: 12,
  FUNC_PROTO: 13,
  VAR: 14,
  DATASEC: 15,
  FLOAT: 16,
  DECL_TAG: 17,
  TYPE_TAG: 18,
  ENUM64: 19,
} as const;

export interface BtfType {
  id: number;
  kind: number;
  name: string;
  vlen: number;
  kindFlag: boolean;
  /** size for INT/STRUCT/UNION/ENUM/DATASEC, the referenced type id for the others. */
  sizeOrType: number;
}

export interface BtfMember {
  name: string;
  type: number;
  /** Offset from the start of the struct, in bits. */
  bitOffset: number;
  /** Bitfield width, 0 for a whole member. */
  bitfieldSize: number;
}

export interface BtfVarSecinfo {
  type: number;
  offset: number;
  size: number;
}

const encoder = new TextEncoder();

function cstr(s: string): Uint8Array<ArrayBuffer> {
  const b = encoder.encode(s);
  const out = new Uint8Array(b.byteLength + 1);
  out.set(b);
  return out;
}

/** Parsed BTF: owned (parsed from a file, freed by close()) or borrowed from a BPF object. */
export class Btf {
  #ptr: Deno.PointerValue;
  readonly #owned: boolean;

  private constructor(ptr: NonNullable<Deno.PointerValue>, owned: boolean) {
    this.#ptr = ptr;
    this.#owned = owned;
  }

  /** Raw BTF (/sys/kernel/btf/vmlinux) or an ELF object's .BTF section. */
  static parse(path: string): Btf {
    const p = libbpf().btf__parse(cstr(path), null);
    if (p === null) {
      const e = errno();
      throw new Error(`btf__parse ${path}: ${errnoName(e)} (${strerror(e)})`);
    }
    return new Btf(p, true);
  }

  /** The BTF a loaded or opened object carries; valid while the object is open. */
  static borrow(ptr: NonNullable<Deno.PointerValue>): Btf {
    return new Btf(ptr, false);
  }

  close(): void {
    if (this.#ptr !== null && this.#owned) libbpf().btf__free(this.#ptr);
    this.#ptr = null;
  }

  #handle(): NonNullable<Deno.PointerValue> {
    if (this.#ptr === null) throw new Error("BTF used after close()");
    return this.#ptr;
  }

  /** Type ids run from 1 to typeCount() - 1 (0 is void). */
  typeCount(): number {
    return libbpf().btf__type_cnt(this.#handle());
  }

  /** Id of the type with this name and kind, or undefined. */
  find(name: string, kind: number): number | undefined {
    const id = libbpf().btf__find_by_name_kind(this.#handle(), cstr(name), kind);
    return id > 0 ? id : undefined;
  }

  #view(id: number): Deno.UnsafePointerView {
    const p = libbpf().btf__type_by_id(this.#handle(), id);
    if (p === null) throw new RangeError(`BTF has no type ${id}`);
    return new Deno.UnsafePointerView(p);
  }

  #name(off: number): string {
    const p = libbpf().btf__name_by_offset(this.#handle(), off);
    return p === null ? "" : Deno.UnsafePointerView.getCString(p);
  }

  type(id: number): BtfType {
    const v = this.#view(id);
    const info = v.getUint32(4);
    return {
      id,
      kind: (info >>> 24) & 0x1f,
      name: this.#name(v.getUint32(0)),
      vlen: info & 0xffff,
      kindFlag: info >>> 31 === 1,
      sizeOrType: v.getUint32(8),
    };
  }

  /** Size in bytes of a type (through typedefs, modifiers and arrays). */
  size(id: number): number {
    const n = Number(libbpf().btf__resolve_size(this.#handle(), id));
    if (n < 0) throw new RangeError(`BTF type ${id}: cannot resolve size (${errnoName(-n)})`);
    return n;
  }

  /** The type behind typedefs, const, volatile, restrict and type tags. */
  resolve(id: number): BtfType {
    for (let t = this.type(id);; t = this.type(t.sizeOrType)) {
      const k = t.kind;
      if (
        k !== BTF_KIND.TYPEDEF && k !== BTF_KIND.CONST && k !== BTF_KIND.VOLATILE &&
        k !== BTF_KIND.RESTRICT && k !== BTF_KIND.TYPE_TAG
      ) return t;
    }
  }

  members(id: number): BtfMember[] {
    const t = this.type(id);
    if (t.kind !== BTF_KIND.STRUCT && t.kind !== BTF_KIND.UNION) {
      throw new TypeError(`BTF type ${id} (${t.name || "anonymous"}) is not a struct or union`);
    }
    const v = this.#view(id);
    const out: BtfMember[] = [];
    for (let i = 0; i < t.vlen; i++) {
      const at = 12 + i * 12;
      const raw = v.getUint32(at + 8);
      out.push({
        name: this.#name(v.getUint32(at)),
        type: v.getUint32(at + 4),
        bitOffset: t.kindFlag ? raw & 0xffffff : raw,
        bitfieldSize: t.kindFlag ? raw >>> 24 : 0,
      });
    }
    return out;
  }

  /** An ENUM's or ENUM64's members as value → name (signed per the kind flag). */
  enumMembers(id: number): Map<number, string> {
    const t = this.type(id);
    const v = this.#view(id);
    const out = new Map<number, string>();
    if (t.kind === BTF_KIND.ENUM) {
      for (let i = 0; i < t.vlen; i++) {
        const at = 12 + i * 8;
        out.set(t.kindFlag ? v.getInt32(at + 4) : v.getUint32(at + 4), this.#name(v.getUint32(at)));
      }
    } else if (t.kind === BTF_KIND.ENUM64) {
      for (let i = 0; i < t.vlen; i++) {
        const at = 12 + i * 12;
        const lo = BigInt(v.getUint32(at + 4));
        const hi = BigInt(v.getUint32(at + 8));
        let value = (hi << 32n) | lo;
        if (t.kindFlag && value >= 1n << 63n) value -= 1n << 64n;
        out.set(Number(value), this.#name(v.getUint32(at)));
      }
    } else {
      throw new TypeError(`BTF type ${id} (${t.name || "anonymous"}) is not an enum`);
    }
    return out;
  }

  /** A DATASEC's variables: each VAR's type id, offset and size in the section. */
  datasec(id: number): BtfVarSecinfo[] {
    const t = this.type(id);
    if (t.kind !== BTF_KIND.DATASEC) throw new TypeError(`BTF type ${id} is not a DATASEC`);
    const v = this.#view(id);
    const out: BtfVarSecinfo[] = [];
    for (let i = 0; i < t.vlen; i++) {
      const at = 12 + i * 12;
      out.push({ type: v.getUint32(at), offset: v.getUint32(at + 4), size: v.getUint32(at + 8) });
    }
    return out;
  }

  /** The first type of one of `kinds` for which `match` holds (a linear scan; for lookups by content). */
  findWhere(kinds: readonly number[], match: (t: BtfType) => boolean): BtfType | undefined {
    const n = this.typeCount();
    const l = libbpf();
    const h = this.#handle();
    for (let id = 1; id < n; id++) {
      const p = l.btf__type_by_id(h, id);
      if (p === null) continue;
      const kind = (new Deno.UnsafePointerView(p).getUint32(4) >>> 24) & 0x1f;
      if (!kinds.includes(kind)) continue;
      const t = this.type(id);
      if (match(t)) return t;
    }
    return undefined;
  }

  /**
   * Byte offset of a member path ("a.b.c") inside a struct, looking through
   * anonymous members and typedefs; undefined when absent or a bitfield.
   */
  memberOffset(structId: number, path: string): { offset: number; type: number } | undefined {
    let id = structId;
    let offset = 0;
    let member: BtfMember | undefined;
    for (const part of path.split(".")) {
      member = this.#findMember(id, part);
      if (!member || member.bitOffset % 8 !== 0) return undefined;
      offset += member.bitOffset / 8;
      id = member.type;
    }
    return member && { offset, type: member.type };
  }

  #findMember(id: number, name: string): BtfMember | undefined {
    const t = this.resolve(id);
    if (t.kind !== BTF_KIND.STRUCT && t.kind !== BTF_KIND.UNION) return undefined;
    for (const m of this.members(t.id)) {
      if (m.name === name) return m;
      if (m.name === "") {
        const inner = this.#findMember(m.type, name);
        if (inner) return { ...inner, bitOffset: m.bitOffset + inner.bitOffset };
      }
    }
    return undefined;
  }
}
