// Stands in for `sharp` inside the GPU-check bundle (gpu-bundle/check.mjs): the check writes no
// images, and sharp's native binary cannot be bundled. Any use throws and says so.
export default function sharp() {
  throw new Error('sharp is not available in the GPU-check bundle (the check writes no images)');
}
