import { assertEquals } from "../../testing/assert.ts";
import { readTar } from "./locate.ts";

Deno.test("readTar: the regular files of a ustar archive from tar(1), by name without ./", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(`${dir}/a.o`, "alpha");
    Deno.mkdirSync(`${dir}/btf`);
    Deno.writeFileSync(`${dir}/btf/b.btf`, new Uint8Array(700).fill(7)); // spans two blocks
    const out = new Deno.Command("tar", {
      args: ["--format=ustar", "-C", dir, "-cf", "-", "."],
      stdout: "piped",
    })
      .outputSync();
    const files = readTar(out.stdout);
    assertEquals([...files.keys()].sort(), ["a.o", "btf/b.btf"]);
    assertEquals(new TextDecoder().decode(files.get("a.o")), "alpha");
    assertEquals(files.get("btf/b.btf"), new Uint8Array(700).fill(7));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
