/**
 * Hand-assembled minimal uncompressed little-endian TIFFs for tests: any of uint8/uint16/int16/
 * float32, striped or tiled, pixel- or band-interleaved, optional alpha (ExtraSamples) and
 * GDAL_NODATA tag. Used where geotiff's writer cannot express the layout (tiles, planar 2).
 */
export type SampleType = 'uint8' | 'uint16' | 'int16' | 'float32';

export interface TiffSpec {
  width: number;
  height: number;
  bands: number;
  type: SampleType;
  /** Sample value of band b at (x, y). */
  value(x: number, y: number, b: number): number;
  tile?: number;
  rowsPerStrip?: number;
  planar?: 1 | 2;
  /** Index of an alpha band (ExtraSamples = 2). */
  alpha?: number;
  nodata?: string;
}

const BYTES: Record<SampleType, number> = { uint8: 1, uint16: 2, int16: 2, float32: 4 };
const FORMAT: Record<SampleType, number> = { uint8: 1, uint16: 1, int16: 2, float32: 3 };

export function makeTiff(spec: TiffSpec): Buffer {
  const { width: W, height: H, bands: B, type } = spec;
  const bs = BYTES[type];
  const planar = spec.planar ?? 1;
  const tile = spec.tile;
  const chunks: Buffer[] = [];
  const write = (buf: Buffer, off: number, v: number): void => {
    if (type === 'uint8') buf.writeUInt8(v, off);
    else if (type === 'uint16') buf.writeUInt16LE(v, off);
    else if (type === 'int16') buf.writeInt16LE(v, off);
    else buf.writeFloatLE(v, off);
  };
  const block = (x0: number, y0: number, w: number, h: number, bandList: number[]): Buffer => {
    const buf = Buffer.alloc(w * h * bandList.length * bs);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        bandList.forEach((b, j) => {
          const inside = x0 + x < W && y0 + y < H;
          write(buf, ((y * w + x) * bandList.length + j) * bs, inside ? spec.value(x0 + x, y0 + y, b) : 0);
        });
    return buf;
  };
  const bandSets = planar === 1 ? [Array.from({ length: B }, (_, b) => b)] : Array.from({ length: B }, (_, b) => [b]);
  if (tile) {
    for (const bl of bandSets)
      for (let ty = 0; ty < H; ty += tile) for (let tx = 0; tx < W; tx += tile) chunks.push(block(tx, ty, tile, tile, bl));
  } else {
    const rps = spec.rowsPerStrip ?? H;
    for (const bl of bandSets) for (let y = 0; y < H; y += rps) chunks.push(block(0, y, W, Math.min(rps, H - y), bl));
  }
  // Layout: header (8) | data chunks | IFD | out-of-line values.
  let off = 8;
  const offsets: number[] = [];
  for (const c of chunks) {
    offsets.push(off);
    off += c.length;
  }
  type Tag = [number, number, number[] | string]; // id, type (3 SHORT, 4 LONG, 2 ASCII), values
  const tags: Tag[] = [
    [256, 4, [W]],
    [257, 4, [H]],
    [258, 3, new Array<number>(B).fill(bs * 8)],
    [259, 3, [1]],
    [262, 3, [B >= 3 ? 2 : 1]],
    [277, 3, [B]],
    [284, 3, [planar]],
    [339, 3, new Array<number>(B).fill(FORMAT[type])],
  ];
  if (tile) tags.push([322, 4, [tile]], [323, 4, [tile]], [324, 4, offsets], [325, 4, chunks.map((c) => c.length)]);
  else tags.push([273, 4, offsets], [278, 4, [spec.rowsPerStrip ?? H]], [279, 4, chunks.map((c) => c.length)]);
  const extras = B - (B >= 3 ? 3 : 1);
  if (extras > 0) tags.push([338, 3, Array.from({ length: extras }, (_, i) => (spec.alpha === B - extras + i ? 2 : 0))]);
  if (spec.nodata !== undefined) tags.push([42113, 2, spec.nodata + '\0']);
  tags.sort((a, b) => a[0] - b[0]);
  const ifdOff = off;
  const ifd = Buffer.alloc(2 + tags.length * 12 + 4);
  let extraOff = ifdOff + ifd.length;
  const extra: Buffer[] = [];
  ifd.writeUInt16LE(tags.length, 0);
  tags.forEach(([id, t, vals], i) => {
    const e = 2 + i * 12;
    ifd.writeUInt16LE(id, e);
    ifd.writeUInt16LE(t, e + 2);
    let data: Buffer;
    if (typeof vals === 'string') data = Buffer.from(vals, 'latin1');
    else {
      data = Buffer.alloc(vals.length * (t === 3 ? 2 : 4));
      vals.forEach((v, j) => (t === 3 ? data.writeUInt16LE(v, j * 2) : data.writeUInt32LE(v, j * 4)));
    }
    ifd.writeUInt32LE(typeof vals === 'string' ? data.length : vals.length, e + 4);
    if (data.length <= 4) data.copy(ifd, e + 8);
    else {
      ifd.writeUInt32LE(extraOff, e + 8);
      extra.push(data);
      extraOff += data.length + (data.length % 2);
      if (data.length % 2) extra.push(Buffer.alloc(1));
    }
  });
  const header = Buffer.alloc(8);
  header.write('II', 0, 'latin1');
  header.writeUInt16LE(42, 2);
  header.writeUInt32LE(ifdOff, 4);
  return Buffer.concat([header, ...chunks, ifd, ...extra]);
}
