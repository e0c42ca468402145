#!/usr/bin/env bash
# CI: a real single-host Slurm cluster running examples/slurm.sbatch.
#
# Installs Slurm and MUNGE from the distribution if missing (Debian: slurmctld slurmd slurm-client
# munge), starts munged, slurmctld and slurmd directly (no systemd) from a slurm.conf generated in
# a temporary directory (loopback only, ports picked free), then:
#   1. sbatch --wait: a tiny WAE run with 2 ranks; checks every step is in stats.jsonl once;
#   2. the same with one rank killed (SIGKILL) mid-run: checks the job restarted the step with
#      --resume, finished, and stats.jsonl still holds every step exactly once.
# Stops the daemons it started, by pid, and removes its directory (KEEP=1 keeps it for a look).
# Prints a PASS/FAIL line per check and a summary; exits non-zero on any failure.
#
# Environment: STEPS (default 40), KILL_STEPS (default 160), KILL_RANK (default 1), KEEP=1, SLURM_CI_TIMEOUT (seconds
# per job, default 300).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T0=$(date +%s)
STEPS=${STEPS:-40}
KILL_STEPS=${KILL_STEPS:-160}
KILL_RANK=${KILL_RANK:-1}
JOB_TIMEOUT=${SLURM_CI_TIMEOUT:-300}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
RESULTS=()
FAILED=0
DAEMON_PIDS=()
WORK=""

log() { printf '[slurm-ci %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
pass() { RESULTS+=("PASS  $1"); log "PASS: $1"; }
fail() { RESULTS+=("FAIL  $1"); FAILED=1; log "FAIL: $1"; }

summary() {
  echo
  echo "== Slurm CI summary ($(($(date +%s) - T0)) s) =="
  for r in "${RESULTS[@]}"; do echo "  $r"; done
  if [ "$FAILED" = 0 ] && [ "${#RESULTS[@]}" -gt 0 ]; then echo "  => PASS"; else echo "  => FAIL"; fi
}

cleanup() {
  local rc=$?
  if [ -n "${SLURM_CONF:-}" ] && [ -f "${SLURM_CONF:-}" ]; then
    scancel --full --quiet --user="$(id -un)" >/dev/null 2>&1 || true
  fi
  # Daemons in reverse start order, each by the pid we started: TERM, then KILL after 10 s.
  local i pid
  for ((i = ${#DAEMON_PIDS[@]} - 1; i >= 0; i--)); do
    pid=${DAEMON_PIDS[$i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Job tasks are children of slurmstepd; any left (there should be none) are found by our job ids.
  for pid in $(job_pids "" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then log "kept $WORK"; elif [ -n "$WORK" ]; then rm -rf "$WORK"; fi
  summary
  [ "$FAILED" = 0 ] && [ "$rc" = 0 ] || exit 1
}
trap cleanup EXIT
trap 'fail "interrupted"; exit 1' INT TERM

# Pids of processes of our Slurm cluster's jobs: SLURM_CONF in their environment is ours;
# with a job id, only that job's rank $2 (SLURM_PROCID) running bin/proggan.js.
job_pids() {
  local job=$1 rank=${2:-} p env
  for p in /proc/[0-9]*; do
    env=$( { tr '\0' '\n' <"$p/environ"; } 2>/dev/null) || continue
    grep -qx "SLURM_CONF=$SLURM_CONF" <<<"$env" || continue
    if [ -n "$job" ]; then
      grep -qx "SLURM_JOB_ID=$job" <<<"$env" || continue
      grep -qx "SLURM_PROCID=$rank" <<<"$env" || continue
      { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q 'bin/proggan.js train' || continue
    fi
    echo "${p#/proc/}"
  done
}

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# ---------------------------------------------------------------- install
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  log "installing slurmctld slurmd slurm-client munge"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
    || { fail "install Slurm and MUNGE (apt-get install slurmctld slurmd slurm-client munge)"; exit 1; }
fi
[ -f "$ROOT/dist/cli/main.js" ] || { fail "proggan is not built ($ROOT/dist/cli/main.js missing: npm ci / npm run build)"; exit 1; }
T_INSTALL=$(($(date +%s) - T0))

# ---------------------------------------------------------------- start the cluster
WORK=$(mktemp -d /tmp/proggan-slurm.XXXXXX)
chmod 700 "$WORK"
mkdir -p "$WORK/munge" "$WORK/state" "$WORK/spool" "$WORK/runs" "$WORK/jobs"
chmod 700 "$WORK/munge"
ME=$(id -un)
HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
CTLD_PORT=$(free_port)
SLURMD_PORT=$(free_port)
export SLURM_CONF="$WORK/slurm.conf"
MUNGE_SOCKET="$WORK/munge/munge.socket"

# A key of our own: the cluster does not depend on (or touch) /etc/munge.
head -c 1024 /dev/urandom >"$WORK/munge/munge.key"
chmod 400 "$WORK/munge/munge.key"
munged --foreground --force --socket="$MUNGE_SOCKET" --key-file="$WORK/munge/munge.key" \
  --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" --seed-file="$WORK/munge/munged.seed" \
  >"$WORK/munge/stdout.log" 2>&1 &
DAEMON_PIDS+=($!)

cat >"$SLURM_CONF" <<EOF
# Generated by scripts/ci/slurm.sh: one node, loopback only.
ClusterName=proggan-ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$ME
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
KillWait=5
# sbatch --wait polls every 2 s only when MinJobAge is small (its sleep grows to MinJobAge/4).
MinJobAge=8
InactiveLimit=0
NodeName=localhost NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=ci Nodes=localhost Default=YES MaxTime=60 State=UP
EOF

for _ in $(seq 1 50); do [ -S "$MUNGE_SOCKET" ] && break; sleep 0.1; done
if ! munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1; then
  fail "munged answers on $MUNGE_SOCKET (see $WORK/munge/munged.log)"; exit 1
fi
slurmctld -D -i -f "$SLURM_CONF" >"$WORK/slurmctld.stdout" 2>&1 &
DAEMON_PIDS+=($!)
slurmd -D -N localhost -f "$SLURM_CONF" >"$WORK/slurmd.stdout" 2>&1 &
DAEMON_PIDS+=($!)

STATE=""
for _ in $(seq 1 120); do
  STATE=$(sinfo -h -n localhost -o %T 2>/dev/null | head -1)
  [ "$STATE" = idle ] && break
  sleep 0.5
done
if [ "$STATE" != idle ]; then
  fail "the node comes up idle within 60 s (state '${STATE:-none}'; logs: $WORK/slurmctld.log, $WORK/slurmd.log)"
  tail -5 "$WORK/slurmctld.log" "$WORK/slurmd.log" 2>/dev/null
  exit 1
fi
T_UP=$(($(date +%s) - T0))
pass "cluster up: munged, slurmctld, slurmd (pids ${DAEMON_PIDS[*]}), node localhost idle with $CPUS CPUs, ${MEM_MB} MB (${T_UP} s, of which install ${T_INSTALL} s)"

# ---------------------------------------------------------------- jobs
# Checks stats.jsonl of a run holds steps 1..$2 each exactly once.
check_steps() {
  node -e '
    const fs = require("fs");
    const [file, n] = [process.argv[1], Number(process.argv[2])];
    const steps = fs.readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l).step);
    const want = Array.from({ length: n }, (_, i) => i + 1);
    const dup = steps.filter((s, i) => steps.indexOf(s) !== i);
    const miss = want.filter((s) => !steps.includes(s));
    if (dup.length || miss.length || steps.length !== n) {
      console.log(`${steps.length} lines; duplicated steps [${[...new Set(dup)].slice(0, 10)}]; missing steps [${miss.slice(0, 10)}]`);
      process.exit(1);
    }
    console.log(`steps 1..${n} once each`);
  ' "$1" "$2"
}

# submit NAME STEPS: sbatch --wait in the background; sets JOB_PID, JOB_OUT, RUN_DIR.
submit() {
  local name=$1 steps=$2
  RUN_DIR="$WORK/runs/$name"
  JOB_OUT="$WORK/jobs/$name.out"
  # The resources come from here (and from --export), not from the sbatch file.
  (
    cd "$WORK/jobs" || exit 1
    PROGGAN_HOME="$ROOT" MODEL=wae RUN_DIR="$RUN_DIR" MAX_RESTARTS=2 \
      PROGGAN_ARGS="--preset tiny --steps $steps --tick-every 1 --checkpoint-every 10 --sample-every 100000" \
      PROGGAN_CONNECT_TIMEOUT_MS=60000 PROGGAN_COLLECTIVE_TIMEOUT_MS=60000 \
      exec timeout "$JOB_TIMEOUT" sbatch --wait --parsable --job-name="proggan-$name" --ntasks=2 --cpus-per-task=1 \
        --time=10 --output="$JOB_OUT" --export=ALL "$ROOT/examples/slurm.sbatch"
  ) >"$WORK/jobs/$name.sbatch" 2>&1 &
  JOB_PID=$!
}

job_id() { head -1 "$WORK/jobs/$1.sbatch" 2>/dev/null | grep -Eo '^[0-9]+' ; }

# 1. A normal 2-rank run.
T1=$(date +%s)
submit plain "$STEPS"
wait "$JOB_PID"; RC=$?
D1=$(($(date +%s) - T1))
if [ "$RC" = 0 ] && grep -q 'rank 1 of 2' "$JOB_OUT" && MSG=$(check_steps "$RUN_DIR/stats.jsonl" "$STEPS"); then
  pass "job $(job_id plain): tiny WAE, 2 ranks, sbatch --wait exit 0, $MSG (${D1} s)"
else
  fail "job $(job_id plain): tiny WAE, 2 ranks: sbatch exit $RC, ${MSG:-no stats} (output: $JOB_OUT)"
  tail -20 "$JOB_OUT" 2>/dev/null; cat "$WORK/jobs/plain.sbatch" 2>/dev/null
fi

# 2. A rank killed mid-run, after the first checkpoints.
T2=$(date +%s)
submit kill "$KILL_STEPS"
KILLED=""
KILL_AT=$((KILL_STEPS / 4))
for _ in $(seq 1 $((JOB_TIMEOUT * 10))); do
  kill -0 "$JOB_PID" 2>/dev/null || break
  JID=$(job_id kill)
  LAST=$(tail -1 "$RUN_DIR/stats.jsonl" 2>/dev/null | grep -Eo '"step":[0-9]+' | grep -Eo '[0-9]+')
  if [ -n "$JID" ] && [ "${LAST:-0}" -ge "$KILL_AT" ]; then
    VICTIM=$(job_pids "$JID" "$KILL_RANK" | head -1)
    if [ -n "$VICTIM" ]; then
      kill -KILL "$VICTIM" && KILLED="rank $KILL_RANK (pid $VICTIM) at step $LAST"
      log "killed $KILLED of job $JID"
      break
    fi
  fi
  sleep 0.1
done
wait "$JOB_PID"; RC=$?
D2=$(($(date +%s) - T2))
MSG=$(check_steps "$RUN_DIR/stats.jsonl" "$KILL_STEPS" 2>&1); STEPS_OK=$?
if [ -z "$KILLED" ]; then
  fail "job $(job_id kill): no rank was killed (the run ended or never reached step $KILL_AT; output: $JOB_OUT)"
elif [ "$RC" = 0 ] && [ "$STEPS_OK" = 0 ] && grep -q 'attempt 0 failed' "$JOB_OUT" && grep -q 'finished after 1 restart' "$JOB_OUT"; then
  pass "job $(job_id kill): killed $KILLED; the step was torn down, resumed (--resume), finished: $MSG (${D2} s)"
else
  fail "job $(job_id kill): killed $KILLED; sbatch exit $RC; $MSG (output: $JOB_OUT)"
  tail -30 "$JOB_OUT" 2>/dev/null
fi
