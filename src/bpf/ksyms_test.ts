import { assert, assertEquals } from "../../testing/assert.ts";
import { KernelSymbols, parseKallsyms } from "./ksyms.ts";

const SAMPLE = [
  "ffffffff81000000 T _stext",
  "ffffffff81000100 t do_one_thing",
  "ffffffff81000300 D some_data",
  "ffffffff81000400 W weak_fn",
  "ffffffffc0a01000 t xfs_foo\t[xfs]",
  "0000000000000000 A fixed_percpu_data",
  "ffffffff81000200 T kfree_skb_reason",
].join("\n");

Deno.test("parseKallsyms keeps text symbols sorted by address and drops data symbols", () => {
  const { addrs, names, starts } = parseKallsyms(new TextEncoder().encode(SAMPLE));
  const all = Array.from(
    { length: addrs.length },
    (_, i) => new TextDecoder().decode(names.subarray(starts[i], starts[i + 1])),
  );
  assertEquals(all, ["_stext", "do_one_thing", "kfree_skb_reason", "weak_fn", "xfs_foo\t[xfs]"]);
  assertEquals(addrs[0], 0xffffffff81000000n);
  assertEquals(addrs[4], 0xffffffffc0a01000n);
});

Deno.test("KernelSymbols formats frames as symbol+0xoff/0xsize, modules in brackets", () => {
  const k = KernelSymbols.fromText(SAMPLE);
  assertEquals(k.formatFrame(0xffffffff81000232n), "kfree_skb_reason+0x32/0x200");
  assertEquals(k.formatFrame(0xffffffff81000100n), "do_one_thing+0x0/0x100");
  assertEquals(k.formatFrame(0xffffffffc0a01010n), "xfs_foo+0x10/0x0 [xfs]");
  assertEquals(k.formatFrame(0x1000n), "0x1000");
  assertEquals(
    k.formatStack([0xffffffff81000232n, 0xffffffff81000110n, 0n, 0xffffffff81000000n]),
    "kfree_skb_reason+0x32/0x200\ndo_one_thing+0x10/0x100",
  );
});

Deno.test("KernelSymbols.range spans one symbol up to the next", () => {
  const k = KernelSymbols.fromText(SAMPLE);
  assertEquals(k.range("do_one_thing"), [0xffffffff81000100n, 0xffffffff81000200n]);
  assertEquals(k.range("do_one"), undefined);
  assertEquals(k.range("weak_fn"), [0xffffffff81000400n, 0xffffffffc0a01000n]);
  assertEquals(k.range("xfs_foo"), undefined, "the last symbol has no end");
});

if (Deno.uid() !== 0) {
  console.warn("ksyms_test: real kallsyms test skipped (needs root: kallsyms hides addresses)");
}

Deno.test({
  name: "KernelSymbols.load resolves a real kernel function (root: kallsyms shows addresses)",
  ignore: Deno.uid() !== 0,
  fn() {
    const k = KernelSymbols.load();
    assert(k.size > 1000, `only ${k.size} text symbols`);
    const line = Deno.readTextFileSync("/proc/kallsyms").split("\n").find((l) => / T schedule$/.test(l));
    assert(line, "no schedule symbol");
    const addr = BigInt("0x" + line.split(" ")[0]);
    assertEquals(k.resolve(addr + 4n)?.name, "schedule");
  },
});
