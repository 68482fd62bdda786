#!/usr/bin/env bash
# Configuration errors: a one-line message naming the option, exit code 2, and nothing written.
source "$(dirname "$0")/common.sh"

passed=0
expect_error() {  # expect_error FRAGMENT ARGS...
  local fragment="$1"; shift
  local status=0
  $MPIRUN -np 2 "$HCL_TRAIN" --device cpu "$@" > "$work/out" 2> "$work/err" || status=$?
  [ "$status" -eq 2 ] || { cat "$work/err"; fail "exit $status (expected 2) for: $*"; }
  # One line from hcl-train (rank 0 only; mpirun adds its own notice about the exit code).
  [ "$(grep -c '^hcl-train: error: ' "$work/err")" -eq 1 ] || { cat "$work/err"; fail "not one line for: $*"; }
  grep '^hcl-train: error: ' "$work/err" | grep -qF -- "$fragment" || { cat "$work/err"; fail "'$fragment' missing for: $*"; }
  [ ! -e "$work/new" ] || fail "output written for: $*"
  passed=$((passed + 1))
}

expect_error "unrecognised option '--no-such-option'" --no-such-option 1 --out "$work/new"
expect_error "--lr" --lr abc --out "$work/new"
expect_error "--lr: must be > 0, got -1" --lr -1 --out "$work/new"
expect_error "--temperature: must be > 0" --temperature 0 --out "$work/new"
expect_error "--tau-plus: must be in [0, 1), got 1" --tau-plus 1 --out "$work/new"
expect_error "--beta: must be >= 0" --beta -0.5 --out "$work/new"
expect_error "--batch-size: must be >= 2" --batch-size 1 --out "$work/new"
expect_error "--estimator: unknown value 'medium'" --estimator medium --out "$work/new"
expect_error "--arch: unknown value 'vgg'" --arch vgg --out "$work/new"
expect_error "--resume: no such checkpoint file" --resume "$work/missing.pt" --out "$work/new"
expect_error "--config: cannot read" --config "$work/missing.conf" --out "$work/new"
printf 'lr = 0.1\nfrobnicate = 3\n' > "$work/bad.conf"
expect_error "frobnicate" --config "$work/bad.conf" --out "$work/new"
# Bad input found while loading, agreed on by every rank before anything is written.
expect_error "no such file" --dataset cifar10 --data-dir "$work/no-cifar" --out "$work/new"
expect_error "exceeds the dataset (60000 images)" --batch-size 40000 --out "$work/new"
head -c 1000 /dev/urandom > "$work/garbage.pt"
expect_error "not an hcl checkpoint" --resume "$work/garbage.pt" --out "$work/new"
mkdir -p "$work/taken" && echo '{}' > "$work/taken/config.json"
expect_error "holds another run" --out "$work/taken"
[ "$(cat "$work/taken/config.json")" = "{}" ] || fail "existing run overwritten"
# As a plain process (no mpirun), stderr is exactly that one line.
status=0
"$HCL_TRAIN" --device cpu --momentum 1.5 --out "$work/new" > /dev/null 2> "$work/err" || status=$?
[ "$status" -eq 2 ] && [ "$(wc -l < "$work/err")" -eq 1 ] || { cat "$work/err"; fail "plain process"; }
grep -qF -- "--momentum: must be in [0, 1), got 1.5" "$work/err" || fail "plain process message"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
