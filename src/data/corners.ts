/**
 * Corner tiling for image completion. A 2R x 2R image is cut into four R x R corners; the GAN sees
 * three and generates the fourth. The generated corner is always the bottom-right one: any other
 * missing corner is moved there by flipping the whole image (see {@link orientCorner}).
 *
 * All arrays are HWC (row-major, channels last) Float32Arrays.
 */

/** A corner of a square image: top-left, top-right, bottom-left, bottom-right. */
export type Corner = 'tl' | 'tr' | 'bl' | 'br';

/** The four corners in a fixed order (row-major). */
export const CORNERS: readonly Corner[] = ['tl', 'tr', 'bl', 'br'];

function checkImage(img: Float32Array, h: number, w: number, channels: number, what: string): void {
  if (!Number.isInteger(h) || !Number.isInteger(w) || !Number.isInteger(channels) || h < 1 || w < 1 || channels < 1) {
    throw new RangeError(`${what}: invalid shape [${h}, ${w}, ${channels}]`);
  }
  if (img.length !== h * w * channels) {
    throw new RangeError(`${what}: array has ${img.length} values, expected ${h}x${w}x${channels} = ${h * w * channels}`);
  }
}

/** Row and column offset (in corner units) of each corner. */
function cornerOffset(c: Corner): [number, number] {
  switch (c) {
    case 'tl':
      return [0, 0];
    case 'tr':
      return [0, 1];
    case 'bl':
      return [1, 0];
    case 'br':
      return [1, 1];
  }
}

/**
 * Cut a square HWC image of side `size` (= 2R, even) into its four R x R corners (copies).
 */
export function splitCorners(img: Float32Array, size: number, channels: number): Record<Corner, Float32Array> {
  checkImage(img, size, size, channels, 'splitCorners');
  if (size % 2 !== 0) throw new RangeError(`splitCorners: image side ${size} is odd; corners need an even side`);
  const r = size / 2;
  const rowLen = r * channels;
  const out = {} as Record<Corner, Float32Array>;
  for (const c of CORNERS) {
    const [oy, ox] = cornerOffset(c);
    const dst = new Float32Array(r * rowLen);
    for (let y = 0; y < r; y++) {
      const src = ((oy * r + y) * size + ox * r) * channels;
      dst.set(img.subarray(src, src + rowLen), y * rowLen);
    }
    out[c] = dst;
  }
  return out;
}

/**
 * Assemble four R x R HWC corners into one square image of side `size` (= 2R); the inverse of
 * {@link splitCorners}.
 */
export function joinCorners(corners: Record<Corner, Float32Array>, size: number, channels: number): Float32Array {
  if (size % 2 !== 0) throw new RangeError(`joinCorners: image side ${size} is odd; corners need an even side`);
  const r = size / 2;
  const rowLen = r * channels;
  const out = new Float32Array(size * size * channels);
  for (const c of CORNERS) {
    const src = corners[c];
    checkImage(src, r, r, channels, `joinCorners (${c})`);
    const [oy, ox] = cornerOffset(c);
    for (let y = 0; y < r; y++) {
      const dst = ((oy * r + y) * size + ox * r) * channels;
      out.set(src.subarray(y * rowLen, (y + 1) * rowLen), dst);
    }
  }
  return out;
}

/** Mirror an HWC image left-right (a new array). */
export function flipH(img: Float32Array, h: number, w: number, c: number): Float32Array {
  checkImage(img, h, w, c, 'flipH');
  const out = new Float32Array(img.length);
  for (let y = 0; y < h; y++) {
    const row = y * w * c;
    for (let x = 0; x < w; x++) {
      const s = row + x * c;
      const d = row + (w - 1 - x) * c;
      for (let k = 0; k < c; k++) out[d + k] = img[s + k] as number;
    }
  }
  return out;
}

/** Mirror an HWC image top-bottom (a new array). */
export function flipV(img: Float32Array, h: number, w: number, c: number): Float32Array {
  checkImage(img, h, w, c, 'flipV');
  const out = new Float32Array(img.length);
  const rowLen = w * c;
  for (let y = 0; y < h; y++) {
    out.set(img.subarray(y * rowLen, (y + 1) * rowLen), (h - 1 - y) * rowLen);
  }
  return out;
}

/** Which flips move corner `c` to the bottom-right (and back: each flip is its own inverse). */
export function cornerFlips(c: Corner): { h: boolean; v: boolean } {
  const [oy, ox] = cornerOffset(c);
  return { h: ox === 0, v: oy === 0 };
}

/**
 * Flip a square HWC image so that corner `c` lands at the bottom-right, where the generator works.
 * Applying it twice with the same corner restores the original.
 */
export function orientCorner(img: Float32Array, size: number, channels: number, c: Corner): Float32Array {
  const f = cornerFlips(c);
  let out = f.h ? flipH(img, size, size, channels) : img.slice();
  if (f.v) out = flipV(out, size, size, channels);
  return out;
}
