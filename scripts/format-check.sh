#!/usr/bin/env bash
# Checks that every C file is formatted as .clang-format says; prints the
# files that are not and exits 1 if any.
set -u
cd "$(dirname "$0")/.." || exit 2
command -v clang-format >/dev/null || { echo "format-check: clang-format not installed" >&2; exit 2; }
bad=0
while IFS= read -r f; do
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f (fix: clang-format -i $f)"
        bad=1
    fi
done < <(git ls-files '*.c' '*.h')
exit $bad
