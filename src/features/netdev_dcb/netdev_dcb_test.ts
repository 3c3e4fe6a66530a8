// netdev_dcb: through the registry on the DCB replies of fixtures/netlink/
// (exactly the samples of dcb_expected.txt, promtool-clean), a device without
// DCB support or gone is logged once and reports nothing, an unexpected error
// fails the collector; and a real veth device (root): EOPNOTSUPP, nothing.
import { assert, assertEquals } from "../../../testing/assert.ts";
import { ErrnoError } from "../../../ffi/libc.ts";
import { parseDcbIeeeReply } from "../../host/dcbnl.ts";
import { readDcbPfc } from "../../host/rtnetlink_read.ts";
import type { Logger } from "../../log/logger.ts";
import { silentLogger } from "../../log/logger.ts";
import { Registry } from "../../metrics/registry.ts";
import { OnceLog } from "../common/once_log.ts";
import { netdevDcbSamples, type PfcReader } from "./netdev_dcb.ts";

const DIR = new URL("../../../fixtures/netlink/", import.meta.url);
const REPLIES: Record<string, string> = {
  ens1f0: "dcb_ieee_pfc.bin",
  veth0: "dcb_eopnotsupp.bin",
  gone0: "dcb_enodev.bin",
};
function caught(fn: () => unknown): ErrnoError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ErrnoError) return err;
    throw err;
  }
  throw new Error("no error");
}

const captured: PfcReader = (d) => parseDcbIeeeReply([Deno.readFileSync(new URL(REPLIES[d], DIR))]);

function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const log = {
    ...silentLogger,
    warn: (msg: string, f?: Record<string, unknown>) => lines.push(`${msg} ${JSON.stringify(f)}`),
  };
  return { log, lines };
}

const hasPromtool = (() => {
  try {
    return new Deno.Command("promtool", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
})();

Deno.test("netdev_dcb on captured replies: exactly dcb_expected.txt; no-DCB and gone devices logged once", async () => {
  const { log, lines } = recordingLog();
  const once = new OnceLog(log, "netdev_dcb: device not reported");
  const registry = new Registry({ host: "huatuo-dev", region: "dev" }, silentLogger);
  registry.register({
    name: "netdev_dcb",
    collect: () => Promise.resolve(netdevDcbSamples(["veth0", "ens1f0", "gone0"], captured, once)),
  });
  let text = "";
  for (let i = 0; i < 3; i++) text = (await registry.scrape()).text;
  const got = text.split("\n").filter((l) => l.startsWith("huatuo_bamai_netdev_dcb"));
  const expected = Deno.readTextFileSync(new URL("dcb_expected.txt", DIR)).split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"));
  assertEquals(got, expected);
  assertEquals(lines, [
    'netdev_dcb: device not reported {"device":"veth0","reason":"no DCB support (EOPNOTSUPP: its driver has no DCB netlink operations)"}',
    'netdev_dcb: device not reported {"device":"gone0","reason":"no such device (ENODEV)"}',
  ]);
  if (hasPromtool) {
    const dcbOnly = text.split("\n").filter((l) => l.includes("netdev_dcb_pfc_")).join("\n") + "\n";
    const out = await new Deno.Command("sh", {
      args: ["-c", `printf '%s' "$0" | promtool check metrics`, dcbOnly],
      stderr: "piped",
    })
      .output();
    assertEquals(new TextDecoder().decode(out.stderr).trim(), "", "promtool findings");
    assert(out.success);
  }
});

Deno.test("netdev_dcb: a device without PFC is logged; an unexpected error fails the collection", () => {
  const { log, lines } = recordingLog();
  const once = new OnceLog(log, "netdev_dcb: device not reported");
  assertEquals(netdevDcbSamples(["x"], () => undefined, once), []);
  assert(lines[0].includes("no IEEE PFC"), lines[0]);
  const enomem = () => {
    throw new ErrnoError("RTM_GETDCB", 12);
  };
  assertEquals(caught(() => netdevDcbSamples(["x"], enomem, once)).code, "ENOMEM");
});

Deno.test({
  name: "netdev_dcb on a real veth device: EOPNOTSUPP, nothing reported, said once",
  ignore: Deno.uid() !== 0,
  async fn() {
    const ip = (...args: string[]) => new Deno.Command("ip", { args, stderr: "null" }).output();
    await ip("link", "del", "huatuo-ut-dcb0");
    assert(
      (await ip("link", "add", "huatuo-ut-dcb0", "type", "veth", "peer", "name", "huatuo-ut-dcb1")).success,
    );
    try {
      assertEquals(caught(() => readDcbPfc("huatuo-ut-dcb0")).code, "EOPNOTSUPP");
      const { log, lines } = recordingLog();
      const once = new OnceLog(log, "netdev_dcb: device not reported");
      for (let i = 0; i < 2; i++) {
        assertEquals(netdevDcbSamples(["huatuo-ut-dcb0"], (d) => readDcbPfc(d), once), []);
      }
      assertEquals(lines.length, 1);
    } finally {
      await ip("link", "del", "huatuo-ut-dcb0");
    }
  },
});
