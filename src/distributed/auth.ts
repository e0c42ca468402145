/**
 * The per-job secret that authenticates rendezvous connections, and the HMAC challenge-response
 * built on it (node:crypto). The secret never goes on the wire: each side proves it knows the
 * secret by an HMAC-SHA256 over a fresh random nonce chosen by the other side, so a recorded
 * handshake cannot be replayed and a stranger learns nothing it could reuse.
 *
 * Where the secret comes from:
 * - `proggan train --workers N` generates 32 random bytes per group start and hands them to its
 *   workers in `PROGGAN_JOB_SECRET` (the environment of a process is readable only by its user
 *   and root, through /proc/<pid>/environ).
 * - Under another launcher set the same value for every rank, before the ranks start:
 *   Slurm: `export PROGGAN_JOB_SECRET=$(openssl rand -hex 32)` in the sbatch script before `srun`
 *   (srun passes the environment on to every task); torchrun / mpirun across hosts: export it on
 *   each host (or `mpirun -x PROGGAN_JOB_SECRET`); Kubernetes (TF_CONFIG): a Secret mounted as a
 *   file and `PROGGAN_JOB_SECRET_FILE=/path`, or an env entry with `valueFrom.secretKeyRef`.
 * - Without either variable the key is derived from the job id alone: peers of other jobs are
 *   still refused, but any process that knows the job id can join (a warning says so).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Environment variable holding the job's secret (any string; 32+ random bytes in hex recommended). */
export const JOB_SECRET_ENV = 'PROGGAN_JOB_SECRET';
/** Environment variable naming a file whose content (trimmed) is the job's secret. */
export const JOB_SECRET_FILE_ENV = 'PROGGAN_JOB_SECRET_FILE';
/** Bytes of an HMAC-SHA256 tag. */
export const MAC_BYTES = 32;
/** Bytes of a challenge nonce. */
export const NONCE_BYTES = 32;

/** A fresh random secret for one job, as 64 hex digits. */
export function generateJobSecret(): string {
  return randomBytes(32).toString('hex');
}

/**
 * The job secret from `PROGGAN_JOB_SECRET` or the file named by `PROGGAN_JOB_SECRET_FILE`, or
 * undefined when neither is set. Throws naming the variable when the file cannot be read or is empty.
 */
export function jobSecretFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const direct = env[JOB_SECRET_ENV];
  if (direct !== undefined && direct !== '') return direct;
  const file = env[JOB_SECRET_FILE_ENV];
  if (file === undefined || file.trim() === '') return undefined;
  let text: string;
  try {
    text = readFileSync(file.trim(), 'utf8').trim();
  } catch (err) {
    throw new Error(`${JOB_SECRET_FILE_ENV}: cannot read '${file}': ${(err as Error).message}`);
  }
  if (text === '') throw new Error(`${JOB_SECRET_FILE_ENV}: '${file}' is empty; put the job's secret in it`);
  return text;
}

/**
 * The HMAC key of a job: the secret when there is one, else one derived from the job id (which
 * authenticates nothing beyond knowing the job id). The job id is bound into every tag either way,
 * so one secret reused by two jobs does not let a rank of one join the other.
 */
export function jobKey(jobId: string, secret: string | undefined): Buffer {
  return createHmac('sha256', secret === undefined ? 'proggan-no-secret' : `proggan-secret:${secret}`).update(jobId, 'utf8').digest();
}

/** A fresh random challenge nonce. */
export function newNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/** HMAC-SHA256 of `body` under `key`, bound to a purpose label and the other side's nonce. */
export function macOf(key: Buffer, label: 'hello' | 'welcome', nonce: Uint8Array, body: Uint8Array): Buffer {
  const h = createHmac('sha256', key);
  h.update(`proggan-${label}\u0000`, 'utf8');
  h.update(nonce);
  h.update(body);
  return h.digest();
}

/** Constant-time check of a tag. */
export function macMatches(expected: Buffer, got: Uint8Array): boolean {
  return got.length === expected.length && timingSafeEqual(expected, got);
}
