import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ClusterConfigError,
  DEFAULT_OP_TIMEOUT_MS,
  formatAddress,
  opTimeoutFromEnv,
  parseAddress,
  parseMpiEnv,
  parseSlurmEnv,
  parseSlurmNodelist,
  parseTfConfig,
  parseTorchrunEnv,
  resolveCluster,
  validateClusterSpec,
} from '../src/distributed/index.js';

/** The variable a parser blamed, or undefined when it did not throw a ClusterConfigError. */
function blamed(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ClusterConfigError) return err.variable;
    throw err;
  }
  return undefined;
}

describe('parseAddress', () => {
  it('reads host:port and [ipv6]:port', () => {
    expect(parseAddress('worker-0.svc:2222')).toEqual({ host: 'worker-0.svc', port: 2222 });
    expect(parseAddress('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(formatAddress('::1', 80)).toBe('[::1]:80');
    expect(formatAddress('10.0.0.1', 80)).toBe('10.0.0.1:80');
  });

  it('rejects malformed addresses naming the variable', () => {
    for (const bad of ['host', 'host:', ':80', 'host:99999', 'host:8x', '::1:80', '[::1]80']) {
      expect(blamed(() => parseAddress(bad, 'X'))).toBe('X');
    }
  });
});

describe('TF_CONFIG', () => {
  const cluster = { worker: ['w0:2222', 'w1:2222', 'w2:2222'] };

  it('reads the worker list and this task index', () => {
    const spec = parseTfConfig(JSON.stringify({ cluster, task: { type: 'worker', index: 2 } }));
    expect(spec).toMatchObject({ rank: 2, worldSize: 3, addresses: cluster.worker, source: 'tf_config' });
    expect(spec.jobId).toMatch(/^tf-[0-9a-f]{8}$/);
    // Every rank derives the same job id from the same cluster.
    expect(parseTfConfig(JSON.stringify({ cluster, task: { type: 'worker', index: 0 } })).jobId).toBe(spec.jobId);
  });

  it('puts a chief first as rank 0', () => {
    const withChief = { chief: ['c:1'], worker: ['w0:2', 'w1:3'] };
    expect(parseTfConfig(JSON.stringify({ cluster: withChief, task: { type: 'chief', index: 0 } }))).toMatchObject({
      rank: 0,
      worldSize: 3,
      addresses: ['c:1', 'w0:2', 'w1:3'],
    });
    expect(parseTfConfig(JSON.stringify({ cluster: withChief, task: { type: 'worker', index: 1 } })).rank).toBe(2);
  });

  it('takes the job id from PROGGAN_JOB_ID when set', () => {
    const spec = parseTfConfig(JSON.stringify({ cluster, task: { type: 'worker', index: 0 } }), { PROGGAN_JOB_ID: 'run-7' });
    expect(spec.jobId).toBe('run-7');
  });

  it('rejects malformed configs naming TF_CONFIG', () => {
    const bad = [
      'not json',
      '[]',
      JSON.stringify({ task: { type: 'worker', index: 0 } }),
      JSON.stringify({ cluster }),
      JSON.stringify({ cluster, task: { type: 'worker', index: 3 } }),
      JSON.stringify({ cluster, task: { type: 'worker', index: -1 } }),
      JSON.stringify({ cluster, task: { type: 'ps', index: 0 } }),
      JSON.stringify({ cluster: { ...cluster, ps: ['p:1'] }, task: { type: 'worker', index: 0 } }),
      JSON.stringify({ cluster: { worker: ['w0'] }, task: { type: 'worker', index: 0 } }),
      JSON.stringify({ cluster: { worker: ['a:1', 'a:1'] }, task: { type: 'worker', index: 0 } }),
      JSON.stringify({ cluster: { chief: ['a:1', 'b:1'] }, task: { type: 'chief', index: 0 } }),
      JSON.stringify({ cluster: {}, task: { type: 'worker', index: 0 } }),
    ];
    for (const json of bad) expect(blamed(() => parseTfConfig(json)), json).toMatch(/^TF_CONFIG/);
  });
});

describe('torchrun environment', () => {
  const env = { RANK: '1', WORLD_SIZE: '4', MASTER_ADDR: '10.1.2.3', MASTER_PORT: '29400' };

  it('reads rank, world size and the master address', () => {
    const spec = parseTorchrunEnv(env);
    expect(spec).toMatchObject({ rank: 1, worldSize: 4, addresses: ['10.1.2.3:29400'], source: 'torchrun' });
    expect(parseTorchrunEnv({ ...env, RANK: '3' })?.jobId).toBe(spec?.jobId);
    expect(parseTorchrunEnv({ ...env, TORCHELASTIC_RUN_ID: 'abc' })?.jobId).toBe('abc');
    expect(parseTorchrunEnv({ ...env, MASTER_ADDR: '::1' })?.addresses).toEqual(['[::1]:29400']);
  });

  it('is absent without RANK and WORLD_SIZE, and a world of one needs no master', () => {
    expect(parseTorchrunEnv({})).toBeUndefined();
    expect(parseTorchrunEnv({ RANK: '0', WORLD_SIZE: '1' })).toMatchObject({ worldSize: 1 });
  });

  it('names the variable at fault', () => {
    expect(blamed(() => parseTorchrunEnv({ ...env, RANK: 'one' }))).toBe('RANK');
    expect(blamed(() => parseTorchrunEnv({ ...env, RANK: '4' }))).toBe('RANK');
    expect(blamed(() => parseTorchrunEnv({ ...env, WORLD_SIZE: undefined }))).toBe('WORLD_SIZE');
    expect(blamed(() => parseTorchrunEnv({ ...env, WORLD_SIZE: '0' }))).toBe('WORLD_SIZE');
    expect(blamed(() => parseTorchrunEnv({ ...env, MASTER_ADDR: '' }))).toBe('MASTER_ADDR');
    expect(blamed(() => parseTorchrunEnv({ ...env, MASTER_ADDR: 'a b' }))).toBe('MASTER_ADDR');
    expect(blamed(() => parseTorchrunEnv({ ...env, MASTER_PORT: '70000' }))).toBe('MASTER_PORT');
    expect(blamed(() => parseTorchrunEnv({ ...env, MASTER_PORT: undefined }))).toBe('MASTER_PORT');
  });
});

describe('Slurm', () => {
  it('expands node lists', () => {
    expect(parseSlurmNodelist('node[01-03,07],gpu5')).toEqual(['node01', 'node02', 'node03', 'node07', 'gpu5']);
    expect(parseSlurmNodelist('a1')).toEqual(['a1']);
    expect(parseSlurmNodelist('n[8-11]')).toEqual(['n8', 'n9', 'n10', 'n11']);
    expect(parseSlurmNodelist('r[1-2]-n[01-02]')).toEqual(['r1-n01', 'r1-n02', 'r2-n01', 'r2-n02']);
    expect(parseSlurmNodelist('x[3],y[009-010],z')).toEqual(['x3', 'y009', 'y010', 'z']);
  });

  it('rejects malformed node lists naming the variable', () => {
    for (const bad of ['', 'node[01-03', 'node01-03]', 'node[3-1]', 'node[a-b]', 'node[1,,2]', 'a,,b', 'n[[1]]']) {
      expect(blamed(() => parseSlurmNodelist(bad)), bad).toBe('SLURM_JOB_NODELIST');
    }
  });

  const env = { SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_JOB_NODELIST: 'gpu[07-08]', SLURM_JOB_ID: '123456' };

  it('reads rank, world size, job id and rank 0 on the first node', () => {
    const spec = parseSlurmEnv(env);
    expect(spec).toMatchObject({ rank: 5, worldSize: 8, jobId: 'slurm-123456', addresses: ['gpu07:29956'], source: 'slurm' });
    expect(parseSlurmEnv(env, { port: 4000 })?.addresses).toEqual(['gpu07:4000']);
    expect(parseSlurmEnv({ ...env, PROGGAN_MASTER_PORT: '4001' })?.addresses).toEqual(['gpu07:4001']);
    expect(parseSlurmEnv({ ...env, MASTER_ADDR: 'login1' })?.addresses).toEqual(['login1:29956']);
    expect(parseSlurmEnv({ ...env, SLURM_STEP_ID: '2' })?.jobId).toBe('slurm-123456.2');
    expect(parseSlurmEnv({})).toBeUndefined();
  });

  it('names the variable at fault', () => {
    expect(blamed(() => parseSlurmEnv({ ...env, SLURM_PROCID: '8' }))).toBe('SLURM_PROCID');
    expect(blamed(() => parseSlurmEnv({ ...env, SLURM_PROCID: 'x' }))).toBe('SLURM_PROCID');
    expect(blamed(() => parseSlurmEnv({ ...env, SLURM_NTASKS: undefined }))).toBe('SLURM_NTASKS');
    expect(blamed(() => parseSlurmEnv({ ...env, SLURM_JOB_ID: undefined }))).toBe('SLURM_JOB_ID');
    expect(blamed(() => parseSlurmEnv({ ...env, SLURM_JOB_NODELIST: 'gpu[07-' }))).toBe('SLURM_JOB_NODELIST');
    expect(blamed(() => parseSlurmEnv({ ...env, SLURM_JOB_NODELIST: undefined }))).toBe('SLURM_JOB_NODELIST');
    expect(blamed(() => parseSlurmEnv({ ...env, PROGGAN_MASTER_PORT: 'http' }))).toBe('PROGGAN_MASTER_PORT');
  });
});

describe('MPI launchers (mpirun, srun --mpi)', () => {
  // What `mpirun -n 3` (Open MPI 4) sets in each rank on one host.
  const ompi = (rank: number) => ({
    OMPI_COMM_WORLD_RANK: String(rank),
    OMPI_COMM_WORLD_SIZE: '3',
    OMPI_COMM_WORLD_LOCAL_RANK: String(rank),
    OMPI_COMM_WORLD_LOCAL_SIZE: '3',
    OMPI_MCA_ess_base_jobid: '2857631745',
  });

  it('reads Open MPI ranks; one host meets on loopback, and every rank agrees on the job id and port', () => {
    const specs = [0, 1, 2].map((r) => resolveCluster(ompi(r)));
    expect(specs.map((s) => s.rank)).toEqual([0, 1, 2]);
    for (const s of specs) {
      expect(s).toMatchObject({ worldSize: 3, source: 'mpi' });
      expect(s.jobId).toBe(specs[0]!.jobId);
      expect(s.addresses).toEqual(specs[0]!.addresses);
    }
    const { host, port } = parseAddress(specs[0]!.addresses[0]!);
    expect(host).toBe('127.0.0.1');
    expect(port).toBeGreaterThanOrEqual(29500);
    expect(port).toBeLessThan(30500);
    // Another MPI job gets another job id, so its ranks cannot join this one.
    expect(resolveCluster({ ...ompi(0), OMPI_MCA_ess_base_jobid: '2857631746' }).jobId).not.toBe(specs[0]!.jobId);
  });

  it('uses MASTER_ADDR/MASTER_PORT when given, and refuses ranks across hosts without MASTER_ADDR', () => {
    const multi = { ...ompi(1), OMPI_COMM_WORLD_LOCAL_SIZE: '1' };
    expect(blamed(() => parseMpiEnv(multi))).toBe('MASTER_ADDR');
    expect(() => parseMpiEnv(multi)).toThrow(/span hosts.*mpirun -x MASTER_ADDR/);
    expect(parseMpiEnv({ ...multi, MASTER_ADDR: 'node1', MASTER_PORT: '4000' })?.addresses).toEqual(['node1:4000']);
    // Inside a Slurm allocation rank 0 is on the first node.
    expect(parseMpiEnv({ ...multi, SLURM_JOB_NODELIST: 'gpu[03-04]', SLURM_JOB_ID: '77' })?.addresses[0]).toMatch(/^gpu03:\d+$/);
  });

  it('reads PMI (MPICH/Hydra, srun --mpi=pmi2) and PMIx (srun --mpi=pmix) ranks', () => {
    expect(parseMpiEnv({ PMI_RANK: '2', PMI_SIZE: '4', PMI_JOBID: 'kvs_1' })).toMatchObject({ rank: 2, worldSize: 4, source: 'mpi' });
    const pmix = { PMIX_RANK: '1', PMIX_NAMESPACE: 'slurm.pmix.42.0', SLURM_NTASKS: '2', SLURM_JOB_NODELIST: 'n[1-2]', SLURM_JOB_ID: '42' };
    expect(parseMpiEnv(pmix)).toMatchObject({ rank: 1, worldSize: 2, source: 'mpi' });
    expect(parseMpiEnv(pmix)?.addresses[0]).toMatch(/^n1:/);
    expect(parseMpiEnv({})).toBeUndefined();
  });

  it('names the variable at fault', () => {
    expect(blamed(() => parseMpiEnv({ OMPI_COMM_WORLD_RANK: '3', OMPI_COMM_WORLD_SIZE: '3' }))).toBe('OMPI_COMM_WORLD_RANK');
    expect(blamed(() => parseMpiEnv({ OMPI_COMM_WORLD_RANK: '0' }))).toBe('OMPI_COMM_WORLD_SIZE');
    expect(blamed(() => parseMpiEnv({ PMI_RANK: 'x', PMI_SIZE: '2' }))).toBe('PMI_RANK');
    expect(blamed(() => parseMpiEnv({ PMIX_RANK: '0' }))).toBe('SLURM_NTASKS');
    expect(blamed(() => parseMpiEnv({ ...ompi(0), MASTER_PORT: '99999' }))).toBe('MASTER_PORT');
  });

  // Open MPI's mpirun, when installed (Debian: openmpi-bin); the ranks import the compiled dist/.
  const hasMpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!hasMpirun)('mpirun -n 3 starts one job of three ranks, not three runs', () => {
    const here = dirname(fileURLToPath(import.meta.url));
    const res = spawnSync(
      'mpirun',
      ['--allow-run-as-root', '--oversubscribe', '-n', '3', '-x', `PROGGAN_DIST_DIR=${join(here, '..', 'dist', 'distributed')}`,
        process.execPath, join(here, 'fixtures', 'mpi-worker.mjs')],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(res.status, res.stderr).toBe(0);
    const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { rank: number; worldSize: number; source: string; jobId: string; sum: number[] });
    expect(lines.map((l) => l.rank).sort()).toEqual([0, 1, 2]);
    for (const l of lines) expect(l).toMatchObject({ worldSize: 3, source: 'mpi', jobId: lines[0]!.jobId, sum: [3, 3] });
  });

  it('wins over the SLURM_PROCID=0 that mpirun inside an sbatch script passes to every rank', () => {
    const batch = { SLURM_PROCID: '0', SLURM_NTASKS: '3', SLURM_JOB_NODELIST: 'n1', SLURM_JOB_ID: '9' };
    expect(resolveCluster({ ...batch, ...ompi(2) })).toMatchObject({ rank: 2, source: 'mpi' });
    // torchrun variables set on purpose still win.
    expect(resolveCluster({ ...ompi(2), RANK: '0', WORLD_SIZE: '1' }).source).toBe('torchrun');
  });
});

describe('resolveCluster', () => {
  it('prefers TF_CONFIG, then torchrun, then Slurm, else one process', () => {
    const tf = JSON.stringify({ cluster: { worker: ['a:1', 'b:1'] }, task: { type: 'worker', index: 1 } });
    const torch = { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'm', MASTER_PORT: '1' };
    const slurm = { SLURM_PROCID: '1', SLURM_NTASKS: '3', SLURM_JOB_NODELIST: 'n1', SLURM_JOB_ID: '9' };
    expect(resolveCluster({ TF_CONFIG: tf, ...torch, ...slurm }).source).toBe('tf_config');
    expect(resolveCluster({ ...torch, ...slurm }).source).toBe('torchrun');
    expect(resolveCluster(slurm).source).toBe('slurm');
    expect(resolveCluster({})).toEqual({ rank: 0, worldSize: 1, jobId: 'single', addresses: [], source: 'single' });
  });

  it('validates hand-made specs', () => {
    const ok = { rank: 1, worldSize: 3, jobId: 'j', addresses: ['h:1'], source: 'explicit' as const };
    expect(() => validateClusterSpec(ok)).not.toThrow();
    expect(blamed(() => validateClusterSpec({ ...ok, rank: 3 }))).toBe('rank');
    expect(blamed(() => validateClusterSpec({ ...ok, addresses: ['h:1', 'h:2'] }))).toBe('addresses');
    expect(blamed(() => validateClusterSpec({ ...ok, addresses: ['nope'] }))).toBe('addresses[0]');
    expect(blamed(() => validateClusterSpec({ ...ok, jobId: '' }))).toBe('jobId');
  });
});

describe('op timeout from the environment', () => {
  it('defaults to 60 s and reads PROGGAN_COLLECTIVE_TIMEOUT_MS', () => {
    expect(opTimeoutFromEnv({})).toBe(DEFAULT_OP_TIMEOUT_MS);
    expect(DEFAULT_OP_TIMEOUT_MS).toBe(60_000);
    expect(opTimeoutFromEnv({ PROGGAN_COLLECTIVE_TIMEOUT_MS: '2500' })).toBe(2500);
    expect(() => opTimeoutFromEnv({ PROGGAN_COLLECTIVE_TIMEOUT_MS: '-1' })).toThrow(/PROGGAN_COLLECTIVE_TIMEOUT_MS/);
  });
});
