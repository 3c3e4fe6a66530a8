// Text forms of IP addresses in network byte order, as the kernel's records
// carry them (saddr/daddr arrays of 16 bytes, IPv4 in the first 4).

/** Dotted quad of the first 4 bytes. */
export function formatIPv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** IPv6 text form (RFC 5952: lower case, longest run of >= 2 zero groups as "::"). */
export function formatIPv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(b[i] << 8 | b[i + 1]);
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  // IPv4-mapped addresses keep the dotted tail, as inet_ntop prints them.
  if (best === 0 && bestLen === 5 && g[5] === 0xffff) return `::ffff:${formatIPv4(b.subarray(12))}`;
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}
