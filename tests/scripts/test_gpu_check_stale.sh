#!/usr/bin/env bash
# scripts/gpu_check's build step decides which programs a failed build (ninja -k 0) left stale, so
# that their rows are skipped and the others still run (gpu_check_report.py stale). Checked against
# this build's real ninja graph with made-up build logs: no failure, a failed object of one program,
# of a library every program links, a failed link, a timeout, and a missing binary. The first GPU
# run lost every row to the check this replaced (a dry run that never says "no work to do").
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${HCL_BUILD_DIR:?set by CTest}"
work="$(mktemp -d "${TMPDIR:-/tmp}/hcl-stale-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

programs=("hcl-train=$build/launch/hcl-train" "hcl_test_loss=$build/tests/hcl_test_loss"
          "hcl-bench-objective=$build/bench/hcl-bench-objective")
for p in "${programs[@]}"; do [ -x "${p#*=}" ] || fail "${p#*=} is not built"; done
output_of() {  # output_of TARGET PATTERN: the first output of TARGET's steps that matches PATTERN
  ninja -C "$build" -t commands "$1" | grep -oE -- "-o $2" | head -1 | cut -c4-
}
train_object=$(output_of hcl-train 'launch/CMakeFiles/hcl-train\.dir/[^ ]+\.o')
core_object=$(output_of hcl-train 'core/CMakeFiles/hcl_core\.dir/[^ ]+\.o')
[ -n "$train_object" ] && [ -n "$core_object" ] || fail "no objects found in ninja -t commands hcl-train"

stale() {  # stale RC LOG_TEXT [PROGRAMS...]: the stale programs, space-separated
  printf '%b' "$2" > "$work/build.log"
  local list=("${@:3}"); [ ${#list[@]} -gt 0 ] || list=("${programs[@]}")
  python3 "$root/scripts/gpu_check_report.py" stale --build "$build" --log "$work/build.log" --rc "$1" \
    --since "$work/stamp" "${list[@]}" | paste -sd' '
}
expect() {  # expect WHAT WANT GOT
  [ "$2" = "$3" ] || fail "$1: stale '$3', expected '$2'"
  echo "ok: $1: stale '${3}'"
}
touch -d '1 hour ago' "$work/stamp"

expect "a clean build" "" "$(stale 0 '[1/2] Re-checking globbed directories...\n')"
expect "hcl-train's own object failed" "hcl-train" \
  "$(stale 1 "[3/9] Building CXX object x\nFAILED: [code=1] $train_object \n/usr/bin/c++ ...\nerror: boom\n")"
expect "a core object failed (ninja 1.11's FAILED line)" "hcl-train hcl_test_loss hcl-bench-objective" \
  "$(stale 1 "FAILED: $core_object \nninja: build stopped: cannot make progress due to previous errors.\n")"
expect "a link failed" "hcl_test_loss" "$(stale 1 'FAILED: tests/hcl_test_loss \n')"
expect "a timeout, all linked before it" "" "$(stale 124 '[5/109] Building CXX object y\n')"
touch "$work/stamp"
expect "a timeout, nothing linked since it started" "hcl-train hcl_test_loss hcl-bench-objective" \
  "$(stale 124 '[5/109] Building CXX object y\n')"
expect "a missing binary" "hcl-nothing" "$(stale 0 '' hcl-nothing="$work/none" "${programs[0]}")"
