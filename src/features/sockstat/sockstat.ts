// Socket usage of the host net namespace from net/sockstat (and net/sockstat6
// when IPv6 is enabled): sockstat_sockets_used, sockstat_TCP_inuse, ..., and
// sockstat_{TCP,UDP}_mem_bytes (the host-wide protocol memory pools in bytes).

import { metricsFeature } from "../feature.ts";
import { sockstatContainer } from "./container.ts";
import { sockstatMemBytes, sockstatSamples } from "./samples.ts";
import { pageSize } from "../../../ffi/libc.ts";

export default metricsFeature("sockstat", ({ fs }) => {
  const page = pageSize();
  return {
    async collect() {
      const v4 = fs.proc("1/net/sockstat");
      const v6 = fs.proc("1/net/sockstat6");
      const [text4, text6] = await Promise.all([fs.readText(v4), fs.readText(v6).catch(() => undefined)]);
      return [...sockstatSamples(text4, v4, text6, v6), ...sockstatMemBytes(text4, v4, page)];
    },
  };
}, { container: sockstatContainer });
