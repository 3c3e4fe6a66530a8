// Kernel CPU lists: /sys/devices/system/cpu/online, cpuset.cpus, cpuset.effective_cpus.

/** Parses a kernel CPU list ("0-3,5,7-8") as in /sys/devices/system/cpu/online. */
export function parseCpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(",")) {
    if (part === "") continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new SyntaxError(`bad CPU list element ${JSON.stringify(part)}`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new SyntaxError(`bad CPU range ${JSON.stringify(part)}`);
    for (let c = lo; c <= hi; c++) out.push(c);
  }
  return out;
}
