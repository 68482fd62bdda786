#!/usr/bin/env bash
# --version on every program: hcl's version and git commit, LibTorch, MPI and NCCL, exit 0, with no
# launcher, no data and no other option needed (and before any other option is looked at).
source "$(dirname "$0")/common.sh"
passed=0
for program in "$HCL_TRAIN" "$HCL_EVAL" "$HCL_EXPORT" "$HCL_BENCH_DIR"/hcl-bench-{objective,collectives,data-parallel,augment,train,node-data,decode,ring-objective}; do
  name="$(basename "$program")"
  status=0
  timeout -k 5 60 "$program" --version --no-such-option > "$work/out" 2> "$work/err" || status=$?
  [ "$status" -eq 0 ] && [ ! -s "$work/err" ] || { cat "$work/err"; fail "$name --version: exit $status"; }
  grep -qE "^$name [0-9]+\.[0-9]+\.[0-9]+ \(git ([0-9a-f]{7,}|unknown)\)$" "$work/out" || { cat "$work/out"; fail "$name: no version line"; }
  grep -qE "^LibTorch [0-9]+\.[0-9]+" "$work/out" || fail "$name: no LibTorch version"
  grep -qE "^MPI: .*[0-9]+\.[0-9]+.* \(MPI standard [0-9]\.[0-9]\)$" "$work/out" || fail "$name: no MPI version"
  grep -qE "^NCCL: ([0-9]+\.[0-9]+\.[0-9]+|not built)" "$work/out" || fail "$name: no NCCL line"
  [ "$(wc -l < "$work/out")" -eq 4 ] || { cat "$work/out"; fail "$name: not 4 lines"; }
  passed=$((passed + 1))
done
# The commit named is one of this checkout's ("unknown" only outside git).
commit="$(sed -n 's/.*(git \(.*\))$/\1/p' "$work/out")"
if git -C "$(dirname "$0")" rev-parse --git-dir > /dev/null 2>&1; then
  git -C "$(dirname "$0")" cat-file -e "$commit^{commit}" 2> /dev/null || fail "git commit '$commit' is not in this checkout"
  passed=$((passed + 1))
fi
echo "$passed passed, 0 failed"
