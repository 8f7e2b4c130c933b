#!/bin/bash
# The tree passes clang-format and cppcheck.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_INCLUDE="$1"
cd "$ROOT"
mapfile -t sources < <(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^build')
clang-format --dry-run --Werror "${sources[@]}"
cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	--inline-suppr --suppress=missingIncludeSystem -I include -I "$BUILD_INCLUDE" \
	-I /usr/include/slurm helpers spank_vm
echo "lint: ${#sources[@]} C files clang-formatted, cppcheck clean"
