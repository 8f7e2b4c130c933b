#!/bin/bash
# The tree passes clang-format, cppcheck and shellcheck.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_INCLUDE="$1"
cd "$ROOT"
mapfile -t sources < <(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^build')
clang-format --dry-run --Werror "${sources[@]}"
cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	--inline-suppr --suppress=missingIncludeSystem -I include -I "$BUILD_INCLUDE" \
	-I /usr/include/slurm helpers spank_vm
mapfile -t scripts < <(git ls-files -co --exclude-standard -- '*.sh' .ci/run | grep -v '^build')
shellcheck -x -P SCRIPTDIR -S warning "${scripts[@]}"
echo "lint: ${#sources[@]} C files clang-formatted, cppcheck clean; ${#scripts[@]} shell scripts shellcheck clean"
