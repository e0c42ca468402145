#!/usr/bin/env bash
# CI: what the cluster tests need on a fresh machine (issue 15): Open MPI (mpirun and its headers,
# for the MPI transport and test/mpi.test.ts) and iproute2 (ip/tc, for test/netns.test.ts); then
# builds build/Release/proggan_mpi.node and fails if it cannot. Run after `npm ci`.
set -euo pipefail
cd "$(dirname "$0")/../.."
T0=$(date +%s)
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
need=()
command -v mpirun >/dev/null && command -v mpicxx >/dev/null || need+=(openmpi-bin libopenmpi-dev)
command -v ip >/dev/null && command -v tc >/dev/null || need+=(iproute2)
if [ "${#need[@]}" -gt 0 ]; then
  echo "cluster-deps: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
PROGGAN_REQUIRE_MPI=1 node scripts/build-mpi.mjs
echo "cluster-deps: done in $(($(date +%s) - T0)) s ($(mpirun --version | head -1); $(ip -V))"
