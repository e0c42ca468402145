/**
 * Where this process sits in a training cluster: its rank, the world size, a job id every rank
 * shares, and how to reach the others. Read from the environment the common launchers set:
 * Kubeflow's TF_CONFIG, torchrun's RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT, MPI launchers' rank
 * variables (mpirun: OMPI_COMM_WORLD_*, MPICH/Hydra and `srun --mpi=pmi2`: PMI_*, PMIx: PMIX_RANK)
 * and Slurm's SLURM_*. Every convention ends in the same TCP rendezvous at rank 0's address.
 */

/** Which launcher convention a {@link ClusterSpec} was read from. */
export type ClusterSource = 'single' | 'tf_config' | 'torchrun' | 'mpi' | 'slurm' | 'explicit';

/** This process's place in the cluster. */
export interface ClusterSpec {
  /** This process's rank, 0-based; rank 0 writes files and coordinates the rendezvous. */
  rank: number;
  /** Number of processes (replicas) in the job. */
  worldSize: number;
  /** Identifier shared by every rank of the job; the TCP handshake rejects peers of other jobs. */
  jobId: string;
  /**
   * `host:port` per rank when every address is known up front (TF_CONFIG), or just rank 0's
   * (torchrun, Slurm): the others then listen on any free port and rank 0 gathers and hands out
   * the address table during the rendezvous.
   */
  addresses: string[];
  /** Which launcher convention the description came from. */
  source: ClusterSource;
}

/** A malformed cluster description; `variable` names the environment variable or option at fault. */
export class ClusterConfigError extends Error {
  /** The environment variable (or option) whose value is wrong. */
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`${variable}: ${message}`);
    this.name = 'ClusterConfigError';
    this.variable = variable;
  }
}

/** A parsed `host:port`. */
export interface HostPort {
  /** Host name or IP literal (IPv6 without brackets). */
  host: string;
  /** TCP port, 0-65535 (0 = any free port, only where listening). */
  port: number;
}

/** Parse `host:port` or `[v6addr]:port`; errors name `variable`. */
export function parseAddress(text: string, variable = 'address'): HostPort {
  const s = text.trim();
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s[close + 1] !== ':') throw new ClusterConfigError(variable, `'${text}' is not [ipv6]:port`);
    host = s.slice(1, close);
    portText = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon <= 0 || s.indexOf(':') !== colon) throw new ClusterConfigError(variable, `'${text}' is not host:port`);
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
  }
  const port = parsePort(portText, variable, text);
  if (host === '') throw new ClusterConfigError(variable, `'${text}' has an empty host`);
  return { host, port };
}

/** Format a host and port as `host:port`, bracketing IPv6 literals. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function parsePort(text: string, variable: string, whole: string = text): number {
  if (!/^\d{1,5}$/.test(text)) throw new ClusterConfigError(variable, `'${whole}' has no valid port`);
  const port = Number(text);
  if (port > 65535) throw new ClusterConfigError(variable, `port ${port} in '${whole}' is out of range`);
  return port;
}

function parseNonNegInt(text: string | undefined, variable: string): number {
  if (text === undefined || text.trim() === '') throw new ClusterConfigError(variable, 'is not set');
  if (!/^\d+$/.test(text.trim())) throw new ClusterConfigError(variable, `'${text}' is not a non-negative integer`);
  return Number(text.trim());
}

function checkRank(rank: number, worldSize: number, rankVar: string, sizeVar: string): void {
  if (worldSize < 1) throw new ClusterConfigError(sizeVar, `world size must be >= 1, got ${worldSize}`);
  if (rank >= worldSize) {
    throw new ClusterConfigError(rankVar, `rank ${rank} is out of range for world size ${worldSize} (${sizeVar})`);
  }
}

/** 32-bit FNV-1a of a string, as 8 hex digits; used to derive a job id every rank agrees on. */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** Options of the cluster parsers. */
export interface ClusterOptions {
  /** Job id for every rank; default `PROGGAN_JOB_ID`, else derived from the launcher's variables. */
  jobId?: string;
  /** Rendezvous port on rank 0's host for Slurm; default `PROGGAN_MASTER_PORT`, `MASTER_PORT`, else 29500 + SLURM_JOB_ID mod 1000. */
  port?: number;
}

/**
 * Read a Kubeflow TFJob `TF_CONFIG`:
 * `{"cluster": {"chief": ["h:p"], "worker": ["h:p", ...]}, "task": {"type": "worker", "index": i}}`.
 * A chief, when present, is rank 0 and the workers follow; other task types (ps, evaluator) are
 * rejected because mirrored training has none.
 */
export function parseTfConfig(json: string, env: NodeJS.ProcessEnv = {}, opts: ClusterOptions = {}): ClusterSpec {
  const V = 'TF_CONFIG';
  let cfg: unknown;
  try {
    cfg = JSON.parse(json);
  } catch (err) {
    throw new ClusterConfigError(V, `is not valid JSON (${(err as Error).message})`);
  }
  if (!isRecord(cfg)) throw new ClusterConfigError(V, 'must be a JSON object');
  const cluster = cfg['cluster'];
  const task = cfg['task'];
  if (!isRecord(cluster)) throw new ClusterConfigError(V, 'has no "cluster" object');
  if (!isRecord(task)) throw new ClusterConfigError(V, 'has no "task" object');
  for (const key of Object.keys(cluster)) {
    if (key !== 'chief' && key !== 'worker') {
      throw new ClusterConfigError(V, `cluster has a "${key}" job; mirrored training supports only "chief" and "worker"`);
    }
  }
  const chief = addressList(cluster['chief'], `${V} cluster.chief`);
  const workers = addressList(cluster['worker'], `${V} cluster.worker`);
  if (chief.length > 1) throw new ClusterConfigError(V, `cluster.chief must list at most one address, got ${chief.length}`);
  const addresses = [...chief, ...workers];
  if (addresses.length === 0) throw new ClusterConfigError(V, 'cluster lists no chief or worker addresses');
  const type = task['type'];
  const index = task['index'];
  if (type !== 'chief' && type !== 'worker') {
    throw new ClusterConfigError(V, `task.type must be "chief" or "worker", got ${JSON.stringify(type)}`);
  }
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0) {
    throw new ClusterConfigError(V, `task.index must be a non-negative integer, got ${JSON.stringify(index)}`);
  }
  const group = type === 'chief' ? chief : workers;
  if (index >= group.length) {
    throw new ClusterConfigError(V, `task.index ${index} is out of range: cluster.${type} has ${group.length} entries`);
  }
  const seen = new Set<string>();
  for (const a of addresses) {
    if (seen.has(a)) throw new ClusterConfigError(V, `address ${a} is listed twice`);
    seen.add(a);
  }
  const rank = type === 'chief' ? index : chief.length + index;
  const jobId = opts.jobId ?? nonEmpty(env['PROGGAN_JOB_ID']) ?? `tf-${fnv1a(addresses.join(','))}`;
  return { rank, worldSize: addresses.length, jobId, addresses, source: 'tf_config' };
}

function addressList(value: unknown, variable: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ClusterConfigError(variable, 'must be an array of "host:port" strings');
  return value.map((v, i) => {
    if (typeof v !== 'string') throw new ClusterConfigError(variable, `entry ${i} is not a string`);
    const { host, port } = parseAddress(v, `${variable}[${i}]`);
    if (port === 0) throw new ClusterConfigError(`${variable}[${i}]`, 'port 0 is not allowed in a cluster table');
    return formatAddress(host, port);
  });
}

/**
 * Read torchrun-style RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT. Ranks do not know each other's
 * addresses: the spec carries only rank 0's, and the TCP rendezvous gathers the rest there.
 * Returns undefined when RANK and WORLD_SIZE are both unset.
 */
export function parseTorchrunEnv(env: NodeJS.ProcessEnv, opts: ClusterOptions = {}): ClusterSpec | undefined {
  if (env['RANK'] === undefined && env['WORLD_SIZE'] === undefined) return undefined;
  const rank = parseNonNegInt(env['RANK'], 'RANK');
  const worldSize = parseNonNegInt(env['WORLD_SIZE'], 'WORLD_SIZE');
  checkRank(rank, worldSize, 'RANK', 'WORLD_SIZE');
  const host = nonEmpty(env['MASTER_ADDR']) ?? (worldSize === 1 ? '127.0.0.1' : undefined);
  if (host === undefined) throw new ClusterConfigError('MASTER_ADDR', `is not set (needed for WORLD_SIZE=${worldSize})`);
  if (/[\s/]/.test(host) || (host.includes(':') && !isIpv6(host))) {
    throw new ClusterConfigError('MASTER_ADDR', `'${host}' is not a host name or IP address`);
  }
  const portText = nonEmpty(env['MASTER_PORT']) ?? (worldSize === 1 ? '29500' : undefined);
  if (portText === undefined) throw new ClusterConfigError('MASTER_PORT', `is not set (needed for WORLD_SIZE=${worldSize})`);
  const port = parsePort(portText, 'MASTER_PORT');
  if (port === 0) throw new ClusterConfigError('MASTER_PORT', 'must not be 0');
  const master = formatAddress(host, port);
  const jobId =
    opts.jobId ??
    nonEmpty(env['PROGGAN_JOB_ID']) ??
    nonEmpty(env['TORCHELASTIC_RUN_ID']) ??
    `torchrun-${fnv1a(`${master}/${worldSize}`)}`;
  return { rank, worldSize, jobId, addresses: [master], source: 'torchrun' };
}

/**
 * Expand a Slurm host list such as `node[01-03,07],gpu5` or `rack[1-2]-n[1-2]` into host names,
 * in order. Zero padding follows the lower bound of each range. Errors name `variable`.
 */
export function parseSlurmNodelist(text: string, variable = 'SLURM_JOB_NODELIST'): string[] {
  const s = text.trim();
  if (s === '') throw new ClusterConfigError(variable, 'is empty');
  const out: string[] = [];
  for (const token of splitTopLevel(s, variable)) {
    if (token === '') throw new ClusterConfigError(variable, `'${text}' has an empty entry`);
    out.push(...expandHost(token, variable, text));
  }
  return out;
}

function splitTopLevel(s: string, variable: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '[') {
      if (depth > 0) throw new ClusterConfigError(variable, `'${s}' has nested brackets`);
      depth++;
    } else if (c === ']') {
      if (depth === 0) throw new ClusterConfigError(variable, `'${s}' has an unmatched ']'`);
      depth--;
    } else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) throw new ClusterConfigError(variable, `'${s}' has an unmatched '['`);
  parts.push(s.slice(start));
  return parts;
}

function expandHost(token: string, variable: string, whole: string): string[] {
  const open = token.indexOf('[');
  if (open < 0) {
    if (token.includes(']')) throw new ClusterConfigError(variable, `'${whole}' has an unmatched ']'`);
    return [token];
  }
  const close = token.indexOf(']', open);
  const prefix = token.slice(0, open);
  const body = token.slice(open + 1, close);
  const rest = expandHost(token.slice(close + 1), variable, whole);
  const values: string[] = [];
  for (const item of body.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(item);
    if (!m || m[1] === undefined) throw new ClusterConfigError(variable, `'${whole}': bad range '${item}' in [${body}]`);
    const lo = m[1];
    const hi = m[2] ?? lo;
    const a = Number(lo);
    const b = Number(hi);
    if (b < a) throw new ClusterConfigError(variable, `'${whole}': range ${item} runs backwards`);
    if (b - a > 100_000) throw new ClusterConfigError(variable, `'${whole}': range ${item} is implausibly large`);
    for (let v = a; v <= b; v++) values.push(String(v).padStart(lo.length, '0'));
  }
  const out: string[] = [];
  for (const v of values) for (const r of rest) out.push(prefix + v + r);
  return out;
}

/**
 * Read Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_JOB_NODELIST and SLURM_JOB_ID. Rank 0 runs on the
 * first node of the list (true for Slurm's block and cyclic distributions); set MASTER_ADDR to
 * override. The rendezvous port comes from `opts.port`, PROGGAN_MASTER_PORT or MASTER_PORT, else
 * 29500 + SLURM_JOB_ID mod 1000 so concurrent jobs on a node rarely collide.
 * Returns undefined when SLURM_PROCID is unset.
 */
export function parseSlurmEnv(env: NodeJS.ProcessEnv, opts: ClusterOptions = {}): ClusterSpec | undefined {
  if (env['SLURM_PROCID'] === undefined) return undefined;
  const rank = parseNonNegInt(env['SLURM_PROCID'], 'SLURM_PROCID');
  const worldSize = parseNonNegInt(env['SLURM_NTASKS'] ?? env['SLURM_NPROCS'], 'SLURM_NTASKS');
  checkRank(rank, worldSize, 'SLURM_PROCID', 'SLURM_NTASKS');
  const slurmJob = nonEmpty(env['SLURM_JOB_ID']) ?? nonEmpty(env['SLURM_JOBID']);
  if (slurmJob === undefined) throw new ClusterConfigError('SLURM_JOB_ID', 'is not set');
  const nodelistVar = env['SLURM_JOB_NODELIST'] !== undefined ? 'SLURM_JOB_NODELIST' : 'SLURM_NODELIST';
  const nodelist = env[nodelistVar];
  let host = nonEmpty(env['MASTER_ADDR']);
  if (host === undefined) {
    if (nodelist === undefined) throw new ClusterConfigError('SLURM_JOB_NODELIST', 'is not set');
    const nodes = parseSlurmNodelist(nodelist, nodelistVar);
    host = nodes[0];
    if (host === undefined) throw new ClusterConfigError(nodelistVar, 'lists no nodes');
  }
  let port = opts.port;
  if (port === undefined) {
    const portVar = env['PROGGAN_MASTER_PORT'] !== undefined ? 'PROGGAN_MASTER_PORT' : 'MASTER_PORT';
    const portText = nonEmpty(env[portVar]);
    port = portText !== undefined ? parsePort(portText, portVar) : 29500 + (/^\d+$/.test(slurmJob) ? Number(slurmJob) % 1000 : 0);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ClusterConfigError('port', `${port} is not a valid port`);
  const step = nonEmpty(env['SLURM_STEP_ID']);
  const jobId = opts.jobId ?? nonEmpty(env['PROGGAN_JOB_ID']) ?? (step !== undefined ? `slurm-${slurmJob}.${step}` : `slurm-${slurmJob}`);
  return { rank, worldSize, jobId, addresses: [formatAddress(host, port)], source: 'slurm' };
}

/** Default rendezvous port base of MPI jobs without MASTER_PORT (29500 + a hash of the job mod 1000). */
export const MPI_DEFAULT_PORT_BASE = 29500;

/**
 * Read the rank variables MPI launchers set: Open MPI's `mpirun` (OMPI_COMM_WORLD_RANK/SIZE),
 * MPICH/Hydra and `srun --mpi=pmi2` (PMI_RANK/PMI_SIZE), PMIx (`srun --mpi=pmix`, PRRTE:
 * PMIX_RANK, the size from OMPI_COMM_WORLD_SIZE, PMI_SIZE or SLURM_NTASKS). proggan does not use
 * MPI for the collectives: the ranks meet at the TCP rendezvous on rank 0's host.
 *
 * Rank 0's address: MASTER_ADDR (`mpirun -x MASTER_ADDR=<host of rank 0>`); else the first node
 * of SLURM_JOB_NODELIST inside a Slurm allocation; else 127.0.0.1 when every rank is on this host
 * (OMPI_COMM_WORLD_LOCAL_SIZE or MPI_LOCALNRANKS equals the world size, or neither is set); ranks
 * known to span hosts without MASTER_ADDR are an error naming it. Port: MASTER_PORT or
 * PROGGAN_MASTER_PORT, else 29500 + a hash of the MPI job's id mod 1000 (every rank computes the
 * same). Returns undefined when none of the rank variables is set.
 */
export function parseMpiEnv(env: NodeJS.ProcessEnv, opts: ClusterOptions = {}): ClusterSpec | undefined {
  let rankVar: string;
  let sizeVar: string;
  if (env['OMPI_COMM_WORLD_RANK'] !== undefined) {
    rankVar = 'OMPI_COMM_WORLD_RANK';
    sizeVar = 'OMPI_COMM_WORLD_SIZE';
  } else if (env['PMI_RANK'] !== undefined) {
    rankVar = 'PMI_RANK';
    sizeVar = 'PMI_SIZE';
  } else if (env['PMIX_RANK'] !== undefined) {
    rankVar = 'PMIX_RANK';
    sizeVar = ['OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'SLURM_NTASKS'].find((v) => env[v] !== undefined) ?? 'SLURM_NTASKS';
  } else {
    return undefined;
  }
  const rank = parseNonNegInt(env[rankVar], rankVar);
  const worldSize = parseNonNegInt(env[sizeVar], sizeVar);
  checkRank(rank, worldSize, rankVar, sizeVar);
  // What every rank of this MPI job shares (and another job does not), for the job id and port.
  const mpiJob =
    nonEmpty(env['PMIX_NAMESPACE']) ??
    nonEmpty(env['OMPI_MCA_ess_base_jobid']) ??
    nonEmpty(env['OMPI_MCA_orte_ess_jobid']) ??
    nonEmpty(env['PMI_JOBID']) ??
    (nonEmpty(env['SLURM_JOB_ID']) !== undefined ? `slurm-${nonEmpty(env['SLURM_JOB_ID'])}.${nonEmpty(env['SLURM_STEP_ID']) ?? ''}` : undefined);
  let host = nonEmpty(env['MASTER_ADDR']);
  if (host === undefined && nonEmpty(env['SLURM_JOB_NODELIST']) !== undefined) {
    host = parseSlurmNodelist(env['SLURM_JOB_NODELIST'] ?? '', 'SLURM_JOB_NODELIST')[0];
  }
  if (host === undefined) {
    const localVar = env['OMPI_COMM_WORLD_LOCAL_SIZE'] !== undefined ? 'OMPI_COMM_WORLD_LOCAL_SIZE' : 'MPI_LOCALNRANKS';
    const localText = nonEmpty(env[localVar]);
    if (localText !== undefined && parseNonNegInt(localText, localVar) < worldSize) {
      throw new ClusterConfigError(
        'MASTER_ADDR',
        `is not set and the ${worldSize} MPI ranks span hosts (${localVar}=${localText}); ` +
          `pass the host of rank 0, e.g. mpirun -x MASTER_ADDR=<host> -x MASTER_PORT=<port>`,
      );
    }
    host = '127.0.0.1';
  }
  if (/[\s/]/.test(host) || (host.includes(':') && !isIpv6(host))) {
    throw new ClusterConfigError('MASTER_ADDR', `'${host}' is not a host name or IP address`);
  }
  let port = opts.port;
  if (port === undefined) {
    const portVar = env['MASTER_PORT'] !== undefined ? 'MASTER_PORT' : 'PROGGAN_MASTER_PORT';
    const portText = nonEmpty(env[portVar]);
    port =
      portText !== undefined
        ? parsePort(portText, portVar)
        : MPI_DEFAULT_PORT_BASE + (parseInt(fnv1a(mpiJob ?? `${host}/${worldSize}`), 16) % 1000);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ClusterConfigError('MASTER_PORT', `${port} is not a valid port`);
  const master = formatAddress(host, port);
  const jobId = opts.jobId ?? nonEmpty(env['PROGGAN_JOB_ID']) ?? `mpi-${fnv1a(`${mpiJob ?? master}/${worldSize}`)}`;
  return { rank, worldSize, jobId, addresses: [master], source: 'mpi' };
}

/**
 * This process's cluster description from the environment. Precedence: TF_CONFIG, then
 * RANK/WORLD_SIZE (torchrun), then the MPI rank variables, then SLURM_PROCID (Slurm), else a single
 * process. MPI comes before Slurm because `mpirun` inside an sbatch script passes the batch step's
 * SLURM_PROCID=0 on to every rank, while the MPI variables are each process's own.
 */
export function resolveCluster(env: NodeJS.ProcessEnv = process.env, opts: ClusterOptions = {}): ClusterSpec {
  const tf = nonEmpty(env['TF_CONFIG']);
  if (tf !== undefined) return parseTfConfig(tf, env, opts);
  const torch = parseTorchrunEnv(env, opts);
  if (torch) return torch;
  const mpi = parseMpiEnv(env, opts);
  if (mpi) return mpi;
  const slurm = parseSlurmEnv(env, opts);
  if (slurm) return slurm;
  const jobId = opts.jobId ?? nonEmpty(env['PROGGAN_JOB_ID']) ?? 'single';
  return { rank: 0, worldSize: 1, jobId, addresses: [], source: 'single' };
}

/** Throw a {@link ClusterConfigError} unless `spec` is self-consistent. */
export function validateClusterSpec(spec: ClusterSpec): void {
  checkRank(spec.rank, spec.worldSize, 'rank', 'worldSize');
  if (!Number.isInteger(spec.rank) || spec.rank < 0) throw new ClusterConfigError('rank', `${spec.rank} is not a rank`);
  if (spec.jobId === '') throw new ClusterConfigError('jobId', 'must not be empty');
  if (spec.worldSize > 1 && spec.addresses.length !== 1 && spec.addresses.length !== spec.worldSize) {
    throw new ClusterConfigError(
      'addresses',
      `must list rank 0's address or one per rank; got ${spec.addresses.length} for world size ${spec.worldSize}`,
    );
  }
  spec.addresses.forEach((a, i) => parseAddress(a, `addresses[${i}]`));
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function isIpv6(host: string): boolean {
  return /^[0-9a-fA-F:.]+$/.test(host) && host.includes(':');
}
