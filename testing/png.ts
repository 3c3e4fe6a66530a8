// A small PNG decoder for tests (screenshots): 8-bit greyscale, grey+alpha,
// RGB and RGBA, not interlaced — what Chromium writes. The IDAT stream is
// zlib, which DecompressionStream("deflate") reads.

export interface Image {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel, rows top to bottom. */
  rgba: Uint8Array;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 4: 2, 6: 4 };

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

export async function decodePng(bytes: Uint8Array): Promise<Image> {
  if (SIGNATURE.some((b, i) => bytes[i] !== b)) throw new Error("png: bad signature");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 8;
  let width = 0, height = 0, depth = 0, colorType = -1, interlace = 0;
  const idat: Uint8Array[] = [];
  while (off + 8 <= bytes.length) {
    const len = view.getUint32(off);
    const type = String.fromCharCode(...bytes.subarray(off + 4, off + 8));
    const data = bytes.subarray(off + 8, off + 8 + len);
    if (data.length !== len) throw new Error(`png: chunk ${type} cut short`);
    if (type === "IHDR") {
      width = view.getUint32(off + 8);
      height = view.getUint32(off + 12);
      depth = data[8];
      colorType = data[9];
      interlace = data[12];
    } else if (type === "IDAT") {
      idat.push(data);
    } else if (type === "IEND") {
      break;
    }
    off += 12 + len;
  }
  const channels = CHANNELS[colorType];
  if (depth !== 8 || channels === undefined || interlace !== 0) {
    throw new Error(`png: unsupported bit depth ${depth}, colour type ${colorType}, interlace ${interlace}`);
  }
  const packed = new Uint8Array(idat.reduce((n, d) => n + d.length, 0));
  idat.reduce((at, d) => (packed.set(d, at), at + d.length), 0);
  const raw = await inflate(packed);
  const stride = width * channels;
  if (raw.length < height * (stride + 1)) throw new Error("png: image data cut short");
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? row[x - channels] : 0;
      const b = prev[x];
      const c = x >= channels ? prev[x - channels] : 0;
      const pred = filter === 0
        ? 0
        : filter === 1
        ? a
        : filter === 2
        ? b
        : filter === 3
        ? (a + b) >> 1
        : filter === 4
        ? paeth(a, b, c)
        : NaN;
      if (Number.isNaN(pred)) throw new Error(`png: bad filter ${filter} in row ${y}`);
      row[x] = (src[x] + pred) & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let p = 0; p < width * height; p++) {
    const s = p * channels;
    const [r, g, b, a] = channels === 1
      ? [pixels[s], pixels[s], pixels[s], 255]
      : channels === 2
      ? [pixels[s], pixels[s], pixels[s], pixels[s + 1]]
      : channels === 3
      ? [pixels[s], pixels[s + 1], pixels[s + 2], 255]
      : [pixels[s], pixels[s + 1], pixels[s + 2], pixels[s + 3]];
    rgba.set([r, g, b, a], p * 4);
  }
  return { width, height, rgba };
}
