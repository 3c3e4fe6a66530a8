// "host:port" / ":port" / "[v6]:port" → Deno.serve hostname and port.

export interface ListenAddr {
  hostname: string;
  port: number;
}

export function parseListenAddr(addr: string): ListenAddr {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new Error(`listen address ${JSON.stringify(addr)}: expected host:port, :port or [v6]:port`);
  }
  // An empty host means every interface, as in Go's net.Listen.
  return { hostname: m[1] ?? (m[2] || "0.0.0.0"), port };
}
