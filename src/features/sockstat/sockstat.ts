// Socket usage of the host net namespace from net/sockstat (and net/sockstat6
// when IPv6 is enabled): sockstat_sockets_used, sockstat_TCP_inuse, ...

import { metricsFeature } from "../feature.ts";
import { sockstatContainer } from "./container.ts";
import { sockstatSamples } from "./samples.ts";

export default metricsFeature("sockstat", ({ fs }) => ({
  async collect() {
    const v4 = fs.proc("1/net/sockstat");
    const v6 = fs.proc("1/net/sockstat6");
    const [text4, text6] = await Promise.all([fs.readText(v4), fs.readText(v6).catch(() => undefined)]);
    return sockstatSamples(text4, v4, text6, v6);
  },
}), { container: sockstatContainer });
