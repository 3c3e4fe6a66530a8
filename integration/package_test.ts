// The RPM (huatuo-bamai.spec + systemd unit) built from this tree installs a
// working agent: its files land where the unit expects them and the packaged
// binary runs with the packaged config.

import { assert, assertEquals, assertMatch } from "../testing/assert.ts";
import { freePort, ROOT } from "./agent.ts";

async function run(cmd: string, args: string[], cwd = ROOT): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}):\n${text}`);
  return text;
}

Deno.test("RPM: files, systemd unit, and the packaged agent runs", async () => {
  await run("bash", ["build.sh", "rpm"]);
  const rpms = [...Deno.readDirSync(`${ROOT}/_output/rpm/x86_64`)].map((e) => e.name);
  assertEquals(rpms.length, 1);
  const rpm = `${ROOT}/_output/rpm/x86_64/${rpms[0]}`;
  const files = (await run("rpm", ["-qlp", rpm])).split("\n");
  for (
    const f of [
      "/usr/bin/huatuo-bamai",
      "/usr/lib/huatuo-bamai/bin/huatuo-bamai",
      "/etc/huatuo-bamai/huatuo-bamai.conf",
      "/usr/lib/systemd/system/huatuo-bamai.service",
      "/etc/sysconfig/huatuo-bamai",
    ]
  ) assert(files.includes(f), `${f} not in the RPM`);
  assertMatch(await run("rpm", ["-qp", "--configfiles", rpm]), /\/etc\/huatuo-bamai\/huatuo-bamai\.conf/);

  const root = Deno.makeTempDirSync({ prefix: "huatuo-rpm-" });
  try {
    await run("sh", ["-c", `rpm2cpio '${rpm}' | cpio -idm --quiet`], root);
    const unit = Deno.readTextFileSync(`${root}/usr/lib/systemd/system/huatuo-bamai.service`);
    assertMatch(
      unit,
      /^ExecStart=\/usr\/bin\/huatuo-bamai --region \$\{HUATUO_REGION\} --config-dir \/etc\/huatuo-bamai/m,
    );
    const bin = `${root}/usr/lib/huatuo-bamai/bin/huatuo-bamai`;
    assertMatch(await run(bin, ["--version"]), /^huatuo-bamai \d+\.\d+\.\d+/);
    // The packaged config, on a free port, against the fixture tree.
    const conf = Deno.readTextFileSync(`${root}/etc/huatuo-bamai/huatuo-bamai.conf`)
      .replace(/^\s*#\s*TCPAddr = ":19704"\s*$/m, `\tTCPAddr = "127.0.0.1:${freePort()}"`);
    Deno.writeTextFileSync(`${root}/etc/huatuo-bamai/huatuo-bamai.conf`, conf);
    const out = await run(bin, [
      "--region",
      "rpm",
      "--config-dir",
      `${root}/etc/huatuo-bamai`,
      "--procfs-prefix",
      `${ROOT}/fixtures`,
      "--dry-run",
    ]);
    assertMatch(out, /msg="dry run scrape" series=\d+ collectors=\d+ failed=""/);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
