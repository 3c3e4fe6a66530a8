// Headless Chromium for tests that must see what a browser draws (an SVG
// flame graph). build.sh's ensure_test_deps installs Debian's `chromium`;
// tests that need it use `ignore: !CHROMIUM` with the reason.

const CANDIDATES = ["chromium", "chromium-browser", "google-chrome"];

function onPath(cmd: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    const p = `${dir}/${cmd}`;
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

/** The browser to use, or undefined when none is installed. */
export const CHROMIUM: string | undefined = CANDIDATES.map(onPath).find((p) => p !== undefined);

/** A PNG screenshot of a local file as Chromium renders it. */
export async function screenshot(
  file: string,
  opts: { width: number; height: number; timeoutMs?: number },
): Promise<Uint8Array> {
  if (!CHROMIUM) throw new Error("no chromium on PATH (./build.sh deps installs it)");
  const dir = await Deno.makeTempDir({ prefix: "huatuo-chromium-" });
  try {
    const png = `${dir}/shot.png`;
    const out = await new Deno.Command(CHROMIUM, {
      args: [
        "--headless",
        // Root on the test machines: Chromium's sandbox refuses to run as root.
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        `--user-data-dir=${dir}/profile`,
        `--screenshot=${png}`,
        `--window-size=${opts.width},${opts.height}`,
        `file://${file}`,
      ],
      env: { HOME: dir },
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000),
    }).output();
    if (!out.success) {
      throw new Error(
        `chromium exited with ${out.code}: ${new TextDecoder().decode(out.stderr).slice(-2000)}`,
      );
    }
    return await Deno.readFile(png);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
