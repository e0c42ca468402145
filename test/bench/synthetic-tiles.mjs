// How fast the embedded procedural tiles are generated (they must keep up with training): ms per tile
// at 64 px RGB and 256 px greyscale. Run after `npm run build`: node test/bench/synthetic-tiles.mjs
// Targets (formerly asserted in test/data-synthetic.test.ts, which failed under load): < 20 ms at 64 px,
// < 200 ms at 256 px.
import { syntheticTiles } from '../../dist/data/synthetic.js';

function timePerTile(resolution, channels, warm, n) {
  const ds = syntheticTiles({ count: warm + n, resolution, channels, seed: 9 });
  for (let i = 0; i < warm; i++) ds.generate(i);
  const t0 = performance.now();
  for (let i = warm; i < warm + n; i++) ds.generate(i);
  return (performance.now() - t0) / n;
}

const ms64 = timePerTile(64, 3, 5, 40);
const ms256 = timePerTile(256, 1, 1, 4);
console.log(`synthetic tiles: ${ms64.toFixed(2)} ms/tile at 64 px x3 (target < 20), ${ms256.toFixed(1)} ms/tile at 256 px x1 (target < 200)`);
