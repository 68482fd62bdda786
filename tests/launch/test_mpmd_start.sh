#!/usr/bin/env bash
# Start-up errors on some ranks only (MPMD launches: one rank reads a config file that is missing or
# different): every rank of hcl-train and hcl-eval learns the error and exits 2 with one message
# naming the failing rank, instead of the others waiting forever in their first collective. Each
# launch runs under `timeout`, so a hang fails the test. --help on one rank only ends every rank (exit
# 0), and hcl-train mixed with hcl-eval in one launch is exit 2. hcl-export is a one-process tool (no MPI):
# an MPMD launch of two exports ends too, each process on its own.
source "$(dirname "$0")/common.sh"
LIMIT=60
passed=0

# mpmd PROGRAM ARGS_OF_RANK0 -- ARGS_OF_RANK1: two ranks with their own arguments; sets status.
mpmd() {
  local program="$1"; shift
  local first=() second=()
  while [ "$1" != "--" ]; do first+=("$1"); shift; done
  shift
  second=("$@")
  status=0
  timeout -k 5 "$LIMIT" $MPIRUN -np 1 -x OMP_NUM_THREADS=1 "$program" "${first[@]}" : \
    -np 1 -x OMP_NUM_THREADS=1 "$program" "${second[@]}" > "$work/out" 2> "$work/err" || status=$?
  [ "$status" -ne 124 ] && [ "$status" -ne 137 ] || { cat "$work/err"; fail "hang (killed after $LIMIT s): $program"; }
}

# expect_agreed PROGRAM FRAGMENT: exit 2, exactly one error line from the program, naming the rank.
expect_agreed() {
  local name="$1" fragment="$2"
  [ "$status" -eq 2 ] || { cat "$work/err"; fail "$name: exit $status (expected 2)"; }
  [ "$(grep -c "^$name: error: " "$work/err")" -eq 1 ] || { cat "$work/err"; fail "$name: not one error line"; }
  grep "^$name: error: " "$work/err" | grep -qF -- "$fragment" || { cat "$work/err"; fail "$name: '$fragment' missing"; }
  [ ! -e "$work/new" ] || fail "$name: output written"
  passed=$((passed + 1))
}

printf 'lr = 0.001\n' > "$work/a.conf"
common=(--device cpu --threads 1 --out "$work/new")
# hcl-train: the second rank's config file is missing; then the first rank's (rank 0 fails alone).
mpmd "$HCL_TRAIN" --config "$work/a.conf" "${common[@]}" -- --config "$work/missing.conf" "${common[@]}"
expect_agreed hcl-train "rank 1 on host $(hostname): --config: cannot read '$work/missing.conf'"
mpmd "$HCL_TRAIN" --config "$work/missing.conf" "${common[@]}" -- --config "$work/a.conf" "${common[@]}"
expect_agreed hcl-train "rank 0 on host $(hostname): --config: cannot read '$work/missing.conf'"
# A bad value on one rank only, and an unknown option on one rank only.
mpmd "$HCL_TRAIN" "${common[@]}" -- --lr -1 "${common[@]}"
expect_agreed hcl-train "rank 1 on host $(hostname): --lr: must be"
mpmd "$HCL_TRAIN" "${common[@]}" -- --frobnicate 1 "${common[@]}"
expect_agreed hcl-train "rank 1 on host $(hostname): unrecognised option '--frobnicate'"
# Every rank failing: the message without a rank.
mpmd "$HCL_TRAIN" --lr -1 "${common[@]}" -- --lr -1 "${common[@]}"
expect_agreed hcl-train "hcl-train: error: --lr: must be"

# hcl-eval: a checkpoint missing on one rank, a bad option on one rank, a file that is not a
# checkpoint on one rank (found while loading, before the first collective).
tiny_dataset "$work/small" 64
BATCH=16 KNN_BANK=50 KNN_TEST=20 train 1 --data-dir "$work/small" --max-steps 1 --out "$work/run" > "$work/run.log" 2>&1 ||
  { cat "$work/run.log"; fail "setup run"; }
ckpt="$work/run/checkpoint.pt"
eval_common=(--device cpu --threads 1 --epochs 1 --data-dir "$work/small" --out "$work/new")
mpmd "$HCL_EVAL" --checkpoint "$ckpt" "${eval_common[@]}" -- --checkpoint "$work/missing.pt" "${eval_common[@]}"
expect_agreed hcl-eval "rank 1 on host $(hostname): --checkpoint: no such file '$work/missing.pt'"
mpmd "$HCL_EVAL" --checkpoint "$ckpt" --batch-size 0 "${eval_common[@]}" -- --checkpoint "$ckpt" "${eval_common[@]}"
expect_agreed hcl-eval "rank 0 on host $(hostname): --batch-size: must be >= 1"
head -c 1000 /dev/urandom > "$work/garbage.pt"
mpmd "$HCL_EVAL" --checkpoint "$ckpt" "${eval_common[@]}" -- --checkpoint "$work/garbage.pt" "${eval_common[@]}"
expect_agreed hcl-eval "rank 1 on host $(hostname): "

# --help on one rank only: every rank ends with exit 0 (no hang), the help printed once; `help` in a
# config file is refused; hcl-train and hcl-eval in one MPMD launch end with exit 2 naming both.
for program in "$HCL_TRAIN" "$HCL_EVAL"; do
  name="$(basename "$program")"
  args=("${common[@]}"); [ "$name" = hcl-eval ] && args=(--checkpoint "$ckpt" "${eval_common[@]}")
  mpmd "$program" "${args[@]}" -- --help
  [ "$status" -eq 0 ] && [ "$(grep -c "usage: .*$name" "$work/out")" -eq 1 ] ||
    { cat "$work/out" "$work/err"; fail "$name: --help on rank 1 only: exit $status"; }
  [ ! -e "$work/new" ] || fail "$name: --help wrote output"
  passed=$((passed + 1))
done
printf 'help = true\n' > "$work/help.conf"
mpmd "$HCL_TRAIN" --config "$work/help.conf" "${common[@]}" -- --config "$work/help.conf" "${common[@]}"
expect_agreed hcl-train "sets 'help'; give --help on the command line"
status=0
timeout -k 5 "$LIMIT" $MPIRUN -np 1 -x OMP_NUM_THREADS=1 "$HCL_TRAIN" "${common[@]}" : \
  -np 1 -x OMP_NUM_THREADS=1 "$HCL_EVAL" --checkpoint "$ckpt" "${eval_common[@]}" > "$work/out" 2> "$work/err" || status=$?
[ "$status" -ne 124 ] && [ "$status" -ne 137 ] || { cat "$work/err"; fail "hang: hcl-train and hcl-eval in one launch"; }
expect_agreed hcl-train "the ranks of this job run different programs (rank 0: hcl-train, rank 1: hcl-eval)"

# hcl-export: one process per launch; an MPMD launch with one bad export ends (no hang), the good
# one writes its file, the bad one says why.
mpmd "$HCL_EXPORT" --checkpoint "$ckpt" --out "$work/good.pt" -- --checkpoint "$work/missing.pt" --out "$work/bad.pt"
[ "$status" -ne 0 ] || fail "hcl-export: exit 0 with a missing checkpoint"
[ -s "$work/good.pt" ] && [ ! -e "$work/bad.pt" ] || fail "hcl-export: outputs"
grep -qF -- "--checkpoint: no such file '$work/missing.pt'" "$work/err" || { cat "$work/err"; fail "hcl-export: message"; }
passed=$((passed + 1))
echo "$passed passed, 0 failed"
