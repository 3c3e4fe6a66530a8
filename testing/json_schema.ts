// A JSON Schema (draft-07) validator for the keywords speedscope's schema
// (fixtures/speedscope/file-format-schema.json) uses: $ref to
// "#/definitions/...", anyOf, const, enum, items (one schema), properties,
// required, type; title and $schema are annotations. Any other keyword is an
// error, not ignored, so a schema that needs more cannot pass half-checked.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const ANNOTATIONS = new Set(["title", "$schema", "definitions", "description"]);
const KEYWORDS = new Set(["$ref", "anyOf", "const", "enum", "items", "properties", "required", "type"]);

function typeOf(v: Json): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

function hasType(v: Json, type: string): boolean {
  switch (type) {
    case "integer":
      return typeof v === "number" && Number.isInteger(v);
    case "number":
      return typeof v === "number" && Number.isFinite(v);
    default:
      return typeOf(v) === type;
  }
}

function sameJson(a: Json, b: Json): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function isObject(v: Json | undefined): v is { [key: string]: Json } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Every way `value` breaks `schema`, as "path: why" (empty when it conforms). */
export function validate(schema: Json, value: Json): string[] {
  if (!isObject(schema)) throw new Error("schema: the root is not an object");
  const root = schema;
  const errors: string[] = [];

  const resolve = (ref: string): { [key: string]: Json } => {
    const m = /^#\/definitions\/(.+)$/.exec(ref);
    const defs = root.definitions;
    const target = m && isObject(defs) ? defs[m[1]] : undefined;
    if (!isObject(target)) throw new Error(`schema: cannot resolve $ref ${ref}`);
    return target;
  };

  const check = (s: Json, v: Json, path: string, out: string[]): void => {
    if (!isObject(s)) throw new Error(`schema at ${path}: not an object`);
    for (const k of Object.keys(s)) {
      if (!KEYWORDS.has(k) && !ANNOTATIONS.has(k)) throw new Error(`schema: unsupported keyword "${k}"`);
    }
    if (typeof s.$ref === "string") check(resolve(s.$ref), v, path, out);
    if (typeof s.type === "string" && !hasType(v, s.type)) {
      out.push(`${path}: expected ${s.type}, got ${typeOf(v)}`);
      return;
    }
    if ("const" in s && !sameJson(s.const, v)) out.push(`${path}: expected ${JSON.stringify(s.const)}`);
    if (Array.isArray(s.enum) && !s.enum.some((e) => sameJson(e, v))) {
      out.push(`${path}: ${JSON.stringify(v)} is not one of ${JSON.stringify(s.enum)}`);
    }
    if (Array.isArray(s.anyOf)) {
      const branches = s.anyOf.map((b) => {
        const e: string[] = [];
        check(b, v, path, e);
        return e;
      });
      if (!branches.some((e) => e.length === 0)) {
        out.push(`${path}: matches none of anyOf (${branches.map((e) => e[0]).join(" | ")})`);
      }
    }
    if (isObject(v)) {
      if (Array.isArray(s.required)) {
        for (const r of s.required) if (typeof r === "string" && !(r in v)) out.push(`${path}: missing ${r}`);
      }
      if (isObject(s.properties)) {
        for (const [k, ps] of Object.entries(s.properties)) if (k in v) check(ps, v[k], `${path}.${k}`, out);
      }
    }
    if (Array.isArray(v) && s.items !== undefined) {
      if (!isObject(s.items)) throw new Error(`schema at ${path}: only one "items" schema is supported`);
      v.forEach((item, i) => check(s.items!, item, `${path}[${i}]`, out));
    }
  };

  check(root, value, "$", errors);
  return errors;
}
