import { defineConfig } from 'vitest/config';

/**
 * Three projects. `npm test` runs `unit` (fast, in-process; every test/**.test.ts outside test/e2e/)
 * and `e2e` (whole training runs, subprocesses, run directories: test/e2e/). `system` holds the
 * suites that take minutes on a 2-core machine (executed notebooks, 3DGAN runs through the CLI,
 * mpirun jobs, network-namespace clusters, the resume-safety scenarios): `npm run test:system`,
 * which CI (.ci/run) runs after `npm test`. Timings belong in test/bench/, never in assertions.
 */
const shared = {
  testTimeout: 120_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
};

const SYSTEM = [
  'test/e2e/examples.test.ts',
  'test/e2e/gan3d-train.test.ts',
  'test/e2e/resume-safety.test.ts',
  'test/gan3d-networks.test.ts',
  'test/mpi.test.ts',
  'test/netns.test.ts',
];

export default defineConfig({
  test: {
    maxWorkers: 2,
    projects: [
      { test: { ...shared, name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/e2e/**', 'test/bench/**', 'node_modules/**', ...SYSTEM] } },
      { test: { ...shared, name: 'e2e', include: ['test/e2e/**/*.test.ts'], exclude: ['test/bench/**', 'node_modules/**', ...SYSTEM] } },
      { test: { ...shared, name: 'system', include: SYSTEM } },
    ],
  },
});
