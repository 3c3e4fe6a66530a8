// A small, strict XML 1.0 well-formedness checker and parser for tests: one
// root element, properly nested and matched tags, unique and quoted
// attributes, only the five predefined entities and character references, no
// raw "<" or stray "&" in text or attribute values, no characters XML cannot
// carry. It throws naming the offset of the first fault and returns the
// element tree (text unescaped) so tests can look inside. No DTDs.

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** The element's own character data (children's excluded), unescaped. */
  text: string;
}

export class XmlError extends Error {}

const NAME = /[A-Za-z_:][A-Za-z0-9_:.\-]*/y;
const SPACE = /[ \t\r\n]*/y;
const INVALID_CHAR =
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function unescape(raw: string, at: number): string {
  return raw.replace(/&([^;]*);|&/g, (m, ref: string | undefined, off: number) => {
    if (ref === undefined) throw new XmlError(`offset ${at + off}: "&" that starts no reference`);
    if (ref in ENTITIES) return ENTITIES[ref];
    const n = /^#x([0-9A-Fa-f]+)$/.exec(ref)?.[1];
    const d = /^#([0-9]+)$/.exec(ref)?.[1];
    const code = n !== undefined ? parseInt(n, 16) : d !== undefined ? parseInt(d, 10) : NaN;
    if (Number.isNaN(code) || code > 0x10ffff) throw new XmlError(`offset ${at + off}: bad reference ${m}`);
    const ch = String.fromCodePoint(code);
    if (INVALID_CHAR.test(ch) && code !== 0x9 && code !== 0xa && code !== 0xd) {
      throw new XmlError(`offset ${at + off}: reference to a character XML cannot carry: ${m}`);
    }
    return ch;
  });
}

export function parseXml(doc: string): XmlElement {
  const bad = INVALID_CHAR.exec(doc);
  if (bad) throw new XmlError(`offset ${bad.index}: a character XML cannot carry`);
  let i = 0;
  const fail = (msg: string): never => {
    throw new XmlError(`offset ${i}: ${msg}`);
  };
  const skipSpace = () => {
    SPACE.lastIndex = i;
    SPACE.exec(doc);
    i = SPACE.lastIndex;
  };
  const name = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(doc);
    if (!m) fail("expected a name");
    i = NAME.lastIndex;
    return m![0];
  };
  const skipUntil = (end: string, what: string) => {
    const at = doc.indexOf(end, i);
    if (at < 0) fail(`unterminated ${what}`);
    i = at + end.length;
  };
  /** Comments and processing instructions, allowed between elements. */
  const misc = (): boolean => {
    if (doc.startsWith("<!--", i)) {
      const end = doc.indexOf("-->", i + 4);
      if (end < 0) fail("unterminated comment");
      if (doc.slice(i + 4, end).includes("--")) fail('"--" inside a comment');
      i = end + 3;
      return true;
    }
    if (doc.startsWith("<?", i)) {
      if (/^<\?xml[ \t\r\n?]/i.test(doc.slice(i, i + 6)) && i !== 0) fail("XML declaration not at the start");
      skipUntil("?>", "processing instruction");
      return true;
    }
    if (doc.startsWith("<!DOCTYPE", i)) fail("DOCTYPE is not supported");
    return false;
  };

  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  while (true) {
    if (stack.length === 0) {
      skipSpace();
      if (i >= doc.length) break;
      if (misc()) continue;
      if (root) fail("content after the root element");
      if (doc[i] !== "<") fail("text outside the root element");
    }
    if (i >= doc.length) fail(`unclosed <${stack[stack.length - 1].name}>`);
    const lt = doc.indexOf("<", i);
    const textEnd = lt < 0 ? doc.length : lt;
    if (textEnd > i) {
      const raw = doc.slice(i, textEnd);
      if (raw.includes("]]>")) fail('"]]>" in text');
      stack[stack.length - 1].text += unescape(raw, i);
      i = textEnd;
      continue;
    }
    if (stack.length > 0 && misc()) continue;
    if (doc.startsWith("<![CDATA[", i)) {
      if (stack.length === 0) fail("CDATA outside the root element");
      const end = doc.indexOf("]]>", i);
      if (end < 0) fail("unterminated CDATA section");
      stack[stack.length - 1].text += doc.slice(i + 9, end);
      i = end + 3;
      continue;
    }
    if (doc.startsWith("</", i)) {
      i += 2;
      const n = name();
      skipSpace();
      if (doc[i] !== ">") fail(`expected ">" closing </${n}`);
      i++;
      const open = stack.pop();
      if (!open) fail(`</${n}> closes nothing`);
      if (open!.name !== n) fail(`</${n}> closes <${open!.name}>`);
      continue;
    }
    // A start tag.
    i++;
    const el: XmlElement = { name: name(), attrs: {}, children: [], text: "" };
    while (true) {
      const before = i;
      skipSpace();
      if (doc.startsWith("/>", i) || doc[i] === ">") break;
      if (i === before) fail(`expected a space before an attribute of <${el.name}>`);
      const a = name();
      skipSpace();
      if (doc[i] !== "=") fail(`attribute ${a} has no "="`);
      i++;
      skipSpace();
      const q = doc[i];
      if (q !== '"' && q !== "'") fail(`attribute ${a} is not quoted`);
      const end = doc.indexOf(q, i + 1);
      if (end < 0) fail(`unterminated value of attribute ${a}`);
      const raw = doc.slice(i + 1, end);
      if (raw.includes("<")) fail(`"<" in the value of attribute ${a}`);
      if (a in el.attrs) fail(`attribute ${a} given twice`);
      el.attrs[a] = unescape(raw, i + 1);
      i = end + 1;
    }
    if (stack.length > 0) stack[stack.length - 1].children.push(el);
    else root = el;
    if (doc.startsWith("/>", i)) {
      i += 2;
    } else {
      i++;
      stack.push(el);
    }
  }
  if (!root) throw new XmlError("no root element");
  return root;
}

/** Every element of a tree named `name`, in document order. */
export function elementsNamed(root: XmlElement, name: string): XmlElement[] {
  const out: XmlElement[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const e = todo.pop()!;
    if (e.name === name) out.push(e);
    for (let k = e.children.length - 1; k >= 0; k--) todo.push(e.children[k]);
  }
  return out;
}
