import { defineConfig } from 'vitest/config';

/**
 * Two projects, both run by `npm test`: `unit` (fast, in-process; every test/**.test.ts outside
 * test/e2e/) and `e2e` (whole training runs, subprocesses, run directories: test/e2e/). Run one with
 * `npx vitest run --project unit`. Timings belong in test/bench/, never in assertions.
 */
const shared = {
  testTimeout: 120_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
};

export default defineConfig({
  test: {
    maxWorkers: 2,
    projects: [
      { test: { ...shared, name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/e2e/**', 'test/bench/**', 'node_modules/**'] } },
      { test: { ...shared, name: 'e2e', include: ['test/e2e/**/*.test.ts'], exclude: ['test/bench/**', 'node_modules/**'] } },
    ],
  },
});
