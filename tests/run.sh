#!/bin/bash
# Builds spank_vm and runs every test, on a fresh Debian 12 machine as root:
# installs what is missing (apt-get, idempotent), then
#   1. unit tests and lint, built with ASan+UBSan and -Werror;
#   2. the integration suite on a real local cluster (munge, slurmdbd, slurmctld,
#      two slurmd, libvirtd) that the suite starts and stops itself, and the .deb.
#   3. the protocol fuzzer (clang, libFuzzer), for a bounded time.
# A plugin built with sanitizers cannot load into slurmstepd, hence separate builds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SPANK_VM_BUILD_DIR:-$ROOT/build}"
JOBS="$(nproc)"

[ "$(id -u)" -eq 0 ] || { echo "spank_vm: tests/run.sh must run as root" >&2; exit 1; }
bash "$ROOT/slurm-conf/install-deps.sh"

cmake -S "$ROOT" -B "$BUILD/asan" -DSPANK_VM_SANITIZE=ON -DSPANK_VM_WERROR=ON \
	-DCMAKE_BUILD_TYPE=Debug
cmake --build "$BUILD/asan" -j "$JOBS"
ctest --test-dir "$BUILD/asan" -L 'unit|lint' --output-on-failure -j "$JOBS"

cmake -S "$ROOT" -B "$BUILD/release" -DSPANK_VM_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$BUILD/release" -j "$JOBS"
ctest --test-dir "$BUILD/release" -L 'integration|package' --output-on-failure
# Benchmarks print their figures.
ctest --test-dir "$BUILD/release" -L bench --verbose

CC=clang cmake -S "$ROOT" -B "$BUILD/fuzz" -DSPANK_VM_FUZZ=ON -DSPANK_VM_WERROR=ON
cmake --build "$BUILD/fuzz" -j "$JOBS" --target fuzz_proto
ctest --test-dir "$BUILD/fuzz" -L fuzz --output-on-failure
