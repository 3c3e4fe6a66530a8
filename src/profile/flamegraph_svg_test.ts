import { assert, assertEquals, assertMatch } from "../../testing/assert.ts";
import { CHROMIUM, screenshot } from "../../testing/chromium.ts";
import { decodePng } from "../../testing/png.ts";
import { elementsNamed, parseXml, XmlError } from "../../testing/xml.ts";
import { type FlameNode, flameTree, flameTreeFromSamples } from "./flamegraph.ts";
import { fitText, flameSvg, frameColor, layout, xmlEscape } from "./flamegraph_svg.ts";
import type { StackSample } from "./profile.ts";

/** A fixed pseudo-random profile: a few processes, stacks 0-14 frames deep. */
function profile(n: number, seed = 7): StackSample[] {
  const rnd = (k: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % k;
  };
  const samples: StackSample[] = [];
  for (let i = 0; i < n; i++) {
    const depth = rnd(15);
    const frames = Array.from({ length: depth }, (_, d) => `func_${d}_${rnd(3 + d)}`);
    samples.push({ tgid: 100 + rnd(4), process: `proc${rnd(3)}`, frames, count: 1 + rnd(20) });
  }
  return samples;
}

const titles = (svg: string) => elementsNamed(parseXml(svg), "title").map((t) => t.text);

Deno.test("svg: well-formed, one <title> per frame, heading with the sample total", () => {
  const tree = flameTreeFromSamples(profile(300));
  const svg = flameSvg(tree, { title: "cpusys", subtitle: "tracer_id abc" });
  const root = parseXml(svg);
  assertEquals(root.name, "svg");
  assertEquals(root.attrs.xmlns, "http://www.w3.org/2000/svg");
  const groups = elementsNamed(root, "g");
  const frameTitles = titles(svg).slice(1);
  assertEquals(frameTitles.length, groups.length);
  assertEquals(titles(svg)[0], "cpusys");
  assertMatch(
    frameTitles[0],
    new RegExp(`^all \\(${tree.value.toLocaleString("en-US")} samples, 100\\.00%\\)$`),
  );
  const legend = elementsNamed(root, "text")[1].text;
  assertEquals(
    legend,
    `${tree.value.toLocaleString("en-US")} samples · ${
      groups.length.toLocaleString("en-US")
    } frames · tracer_id abc`,
  );
  // Nothing from outside: no script, no stylesheet, no link.
  for (const el of ["script", "style", "link", "image", "foreignObject"]) {
    assertEquals(elementsNamed(root, el), []);
  }
  assert(!/href|url\(|https?:\/\/(?!www\.w3\.org\/2000\/svg)/.test(svg), "no external reference");
});

Deno.test("svg: labels are escaped, bad characters replaced, text cut to the frame", () => {
  const evil = `<script>alert("x")</script>&amp;\u0001'`;
  const tree = flameTreeFromSamples([
    { tgid: 1, process: evil, frames: ["a_rather_long_function_name_that_cannot_fit"], count: 1 },
    { tgid: 2, process: "wide", frames: [], count: 999 },
  ]);
  const svg = flameSvg(tree);
  const root = parseXml(svg);
  assertEquals(elementsNamed(root, "script"), []);
  assert(titles(svg).some((t) => t.startsWith(`<script>alert("x")</script>&amp;\ufffd'`)));
  for (const t of elementsNamed(root, "text").slice(2)) {
    const g = elementsNamed(root, "g").find((g) => g.children.includes(t))!;
    const rect = elementsNamed(g, "rect")[0];
    // 0.6 em per character at 12 px, 3 px padding either side.
    assert(Array.from(t.text).length * 7.2 <= Number(rect.attrs.width) - 6 + 1e-9, `${t.text} fits`);
  }
  assertEquals(xmlEscape(`a<b>&"'`), "a&#60;b&#62;&#38;&#34;&#39;");
  assertEquals(xmlEscape("\ud800x\uffff"), "\ufffdx\ufffd");
});

Deno.test("svg: fitText and colours", () => {
  assertEquals(fitText("abcdef", 6 + 7.2 * 6), "abcdef");
  assertEquals(fitText("abcdefg", 6 + 7.2 * 6), "abcd..");
  assertEquals(fitText("abc", 6 + 7.2 * 2.9), "");
  assertEquals(fitText("😀😀😀😀😀", 6 + 7.2 * 4), "😀😀..");
  assertEquals(frameColor("do_syscall_64"), frameColor("do_syscall_64"));
  assert(frameColor("do_syscall_64") !== frameColor("do_syscall_32"));
  for (const l of ["a", "b", "schedule", "[unknown]"]) {
    const [r, g, b] = /rgb\((\d+),(\d+),(\d+)\)/.exec(frameColor(l))!.slice(1).map(Number);
    assert(r >= 205 && r <= 255 && g <= 230 && b <= 55, `${l}: ${frameColor(l)}`);
  }
});

Deno.test("svg: frames under 0.1 px are dropped with a note; maxFrames caps what is drawn", () => {
  // 100000 samples in one frame and 5000 one-sample frames: each 0.0118 px wide at 1180 px.
  const samples: StackSample[] = [{ tgid: 1, process: "big", frames: ["hot"], count: 100000 }];
  for (let i = 0; i < 5000; i++) samples.push({ tgid: 2, process: "small", frames: [`f${i}`], count: 1 });
  const tree = flameTreeFromSamples(samples);
  const svg = flameSvg(tree);
  const groups = elementsNamed(parseXml(svg), "g");
  assertEquals(groups.length, 4); // all, big, hot and small (56 px); small's 5000 frames are 0.011 px each
  assertMatch(
    svg,
    /5,000 frames narrower than 0\.1 px or past 20000 frames not drawn, with what is above them \(5,000 samples, 4\.76%\)/,
  );

  const capped = layout(flameTreeFromSamples(profile(2000)), 1, 0, 50);
  assert(capped.frames.length <= 50, `${capped.frames.length} frames`);
  assert(capped.droppedFrames > 0);
  // Every kept frame's parent is kept, and it sits inside its parent.
  for (const f of capped.frames) {
    if (f.parent < 0) continue;
    const p = capped.frames[f.parent];
    assertEquals(p.level, f.level - 1);
    assert(p.node.children.includes(f.node));
    assert(f.x >= p.x && f.x + f.w <= p.x + p.w);
  }
});

Deno.test("svg: an empty profile says so", () => {
  const svg = flameSvg(flameTree([{ level: 0, value: 0, self: 0, label: "all" }]));
  assertEquals(elementsNamed(parseXml(svg), "g"), []);
  assertMatch(svg, />no samples</);
});

Deno.test("svg: 5000-deep stacks render", () => {
  const frames = Array.from({ length: 5000 }, (_, i) => `f${i}`);
  const svg = flameSvg(flameTreeFromSamples([{ tgid: 1, process: "deep", frames, count: 1 }]));
  assertEquals(elementsNamed(parseXml(svg), "g").length, 5002);
});

Deno.test("xml checker rejects what a browser would", () => {
  const bad = [
    "<a><b></a></b>",
    "<a>x & y</a>",
    "<a b=1/>",
    '<a b="1" b="2"/>',
    "<a>&foo;</a>",
    "<a/><b/>",
    "<a>\u0001</a>",
    '<a b="<"/>',
    "<a>",
    "text",
  ];
  for (const doc of bad) {
    let threw = false;
    try {
      parseXml(doc);
    } catch (err) {
      threw = err instanceof XmlError;
    }
    assert(threw, doc);
  }
  const ok = parseXml(`<?xml version="1.0"?>\n<!-- c --><a x='1'>t&amp;<![CDATA[<]]>&#x41;<b/></a>`);
  assertEquals([ok.name, ok.attrs.x, ok.text, ok.children[0].name], ["a", "1", "t&<A", "b"]);
});

/** Pixels of flamegraph.pl's hot palette (frames), and pixels that are not white at all. */
function census(rgba: Uint8Array): { hot: number; ink: number; total: number } {
  let hot = 0;
  let ink = 0;
  for (let p = 0; p < rgba.length; p += 4) {
    const [r, g, b] = [rgba[p], rgba[p + 1], rgba[p + 2]];
    if (r >= 200 && g <= 235 && b <= 60) hot++;
    if (r < 240 || g < 240 || b < 240) ink++;
  }
  return { hot, ink, total: rgba.length / 4 };
}

Deno.test({
  name: "svg: headless Chromium draws the flame graph (frames in the hot palette, text)",
  ignore: !CHROMIUM,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "huatuo-flame-" });
    try {
      const tree: FlameNode = flameTreeFromSamples(profile(400));
      const svg = flameSvg(tree, { title: "synthetic profile" });
      const height = Number(parseXml(svg).attrs.height);
      await Deno.writeTextFile(`${dir}/flame.svg`, svg);
      const img = await decodePng(await screenshot(`${dir}/flame.svg`, { width: 1200, height: 800 }));
      assertEquals([img.width, img.height], [1200, 800]);
      const c = census(img.rgba);
      // The frames fill most of the graph's area (1180 px × its levels); the rest of the window is white.
      const graphArea = 1180 * (height - 80);
      assert(c.hot > graphArea * 0.3, `hot pixels ${c.hot} of a graph area ${graphArea}`);
      assert(c.ink > c.hot, `text and frames: ${c.ink} non-white pixels`);
      assert(c.ink < c.total * 0.9, "not a blank or black page");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
