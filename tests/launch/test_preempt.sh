#!/usr/bin/env bash
# Preemption with real signals under mpirun: a SIGTERM to one rank (as SLURM sends at preemption or
# the time limit) or a SIGUSR1 to mpirun (which forwards it to every rank) makes every rank finish
# its step, agree, write a checkpoint, log why and exit 3; `--resume auto` then continues, and the
# per-step losses of the interrupted-and-resumed run equal those of an uninterrupted run (2 and 4
# ranks). Also: --resume auto starts afresh when the folder holds the same run without a
# checkpoint, refuses another run, and drops metrics records past the checkpoint after a crash.
source "$(dirname "$0")/common.sh"
LIMIT=120
MPIRUN="timeout -k 5 $LIMIT $MPIRUN"  # a hang fails the test instead of blocking it
export KNN_BANK=100 KNN_TEST=50
tiny_dataset "$work/tiny" 256
passed=0

# rank_pid OUT RANK: the pid of rank RANK of the job writing to OUT.
rank_pid() {
  local p
  for p in $(pgrep -f -- "--out $1( |$)"); do
    if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$p"; return; fi
  done
}

wait_for_steps() {  # wait_for_steps OUT N
  local i
  for i in $(seq $((LIMIT * 5))); do
    [ -f "$1/metrics.jsonl" ] && [ "$(grep -c '"type":"train"' "$1/metrics.jsonl")" -ge "$2" ] && return 0
    sleep 0.2
  done
  fail "no $2 steps in $1 within $LIMIT s"
}

# check_per_step METRICS N: exactly one train record for each step 1..N.
check_per_step() {
  python3 -c 'import json,sys
steps = [r["step"] for r in map(json.loads, open(sys.argv[1])) if r["type"] == "train"]
assert steps == list(range(1, int(sys.argv[2]) + 1)), steps' "$1" "$2" || fail "$1: not one record per step"
}

# same_losses A B: the train losses of two metrics.jsonl files are equal (all of B's steps).
same_losses() {
  losses "$2" > "$work/b.txt"
  losses "$1" > "$work/all.txt"
  head -n "$(wc -l < "$work/b.txt")" "$work/all.txt" > "$work/a.txt"
  diff "$work/a.txt" "$work/b.txt" > /dev/null || { paste "$work/a.txt" "$work/b.txt"; fail "losses of $2 differ from $1"; }
}

# preempted NP SIGNAL TARGET BATCH: an uninterrupted run of 30 steps, and one stopped by SIGNAL sent
# to TARGET (a rank number, or mpirun) then resumed with --resume auto; their losses must agree.
preempted() {
  local np="$1" signal="$2" target="$3" whole="$work/np$1.whole" name="$work/np$1.$2"
  local args=(--data-dir "$work/tiny" --max-steps 30 --checkpoint-interval 0 --resume auto)
  [ -e "$whole" ] || BATCH="$4" train "$np" "${args[@]}" --out "$whole" > "$whole.log" 2>&1 ||
    { cat "$whole.log"; fail "np $np: uninterrupted run"; }
  BATCH="$4" train "$np" "${args[@]}" --out "$name.part" > "$name.part.log" 2>&1 &
  local job=$! status=0
  wait_for_steps "$name.part" 3
  if [ "$target" = mpirun ]; then
    kill "-$signal" "$(pgrep -f -- "^[^ ]*(mpirun|mpiexec|orterun) .*--out $name.part( |$)" | head -1)"
  else
    kill "-$signal" "$(rank_pid "$name.part" "$target")"
  fi
  wait "$job" || status=$?
  [ "$status" -eq 3 ] || { cat "$name.part.log"; fail "np $np: exit $status after $signal (expected 3)"; }
  [ "$(grep -c "info: stopped by SIG$signal after step 10 of 30; checkpoint written" "$name.part.log")" -eq 1 ] ||
    { cat "$name.part.log"; fail "np $np: no stop line"; }
  [ -s "$name.part/checkpoint.pt" ] && [ ! -e "$name.part/checkpoint.pt.tmp" ] || fail "np $np: checkpoint"
  [ -z "$(rank_pid "$name.part" 0)" ] || fail "np $np: ranks still running"
  BATCH="$4" train "$np" "${args[@]}" --out "$name.part" > "$name.resume.log" 2>&1 ||
    { cat "$name.resume.log"; fail "np $np: resumed run"; }
  grep -q "resumed from $name.part/checkpoint.pt at .* (10 steps done)" "$name.resume.log" || fail "np $np: resume line"
  check_per_step "$name.part/metrics.jsonl" 30
  same_losses "$whole/metrics.jsonl" "$name.part/metrics.jsonl"
  echo "np $np: SIG$signal to $target stopped after step 10 (exit 3); resumed losses equal the uninterrupted run's"
  passed=$((passed + 1))
}

preempted 2 TERM 1 32        # SLURM-like: one rank gets SIGTERM, every rank stops with it
preempted 4 USR1 mpirun 16   # mpirun forwards SIGUSR1 to every rank
preempted 4 TERM 3 16

# A SIGTERM during start-up, while the kNN pass before training runs (a large bank on purpose): the
# stop waits for the first agreed check and ends as any other (checkpoint, line, exit 3).
KNN_BANK=30000 KNN_TEST=5000 train 2 --max-steps 30 --checkpoint-interval 0 --out "$work/early" > "$work/early.log" 2>&1 &
job=$!
for i in $(seq $((LIMIT * 5))); do grep -q "batch: global" "$work/early.log" 2>/dev/null && break; sleep 0.2; done
grep -q "batch: global" "$work/early.log" || { cat "$work/early.log"; fail "early stop: the run did not start"; }
kill -TERM "$(rank_pid "$work/early" 1)"
status=0
wait "$job" || status=$?
[ "$status" -eq 3 ] && grep -q "info: stopped by SIGTERM after step 10 of 30; checkpoint written" "$work/early.log" ||
  { cat "$work/early.log"; fail "SIGTERM during the kNN before training: exit $status"; }
grep -q "kNN (before training" "$work/early.log" || { cat "$work/early.log"; fail "early stop: no kNN line"; }
echo "SIGTERM during the kNN pass before training: stopped after step 10 (exit 3)"
passed=$((passed + 1))

# A run that crashed before its first checkpoint: --resume auto starts it afresh in the same folder
# (the records of the crashed attempt are replaced); another configuration there is refused.
args=(--data-dir "$work/tiny" --max-steps 12 --checkpoint-interval 0 --resume auto --out "$work/crash")
status=0
HCL_FAULT=throw:step=3 train 2 "${args[@]}" > "$work/crash.log" 2>&1 || status=$?
[ "$status" -eq 1 ] && [ ! -e "$work/crash/checkpoint.pt" ] || { cat "$work/crash.log"; fail "crash: exit $status"; }
status=0
train 2 "${args[@]}" --lr 0.01 > "$work/other.log" 2>&1 || status=$?
[ "$status" -eq 2 ] && grep -q "^hcl-train: error: --out: folder '$work/crash' holds another run" "$work/other.log" ||
  { cat "$work/other.log"; fail "another run in the folder: exit $status"; }
train 2 "${args[@]}" > "$work/fresh.log" 2>&1 || { cat "$work/fresh.log"; fail "fresh start after the crash"; }
check_per_step "$work/crash/metrics.jsonl" 12
same_losses "$work/np2.whole/metrics.jsonl" "$work/crash/metrics.jsonl"
echo "crash before the first checkpoint: restarted afresh; another configuration refused"
passed=$((passed + 2))

# Killed while writing the checkpoint of step 8 in the background (metrics already hold steps 5-8
# and the epoch records, past the step-4 checkpoint; the step loop may have gone on a step): the
# resumed run drops those records and writes them again, once.
args=(--data-dir "$work/tiny" --epochs 3 --checkpoint-interval 1 --resume auto --out "$work/trim")
status=0
HCL_FAULT=kill-in-checkpoint:byte=5000:write=2 train 2 "${args[@]}" > "$work/trim.log" 2>&1 || status=$?
[ "$status" -ne 0 ] || fail "trim: exit 0"
[ "$(grep -c '"type":"train"' "$work/trim/metrics.jsonl")" -ge 8 ] || fail "trim: expected 8 records before the resume"
train 2 "${args[@]}" > "$work/trim2.log" 2>&1 || { cat "$work/trim2.log"; fail "trim: resumed run"; }
grep -Eq "metrics.jsonl: dropped [5-9] record\(s\) past the checkpoint's step 4" "$work/trim2.log" || { cat "$work/trim2.log"; fail "trim: message"; }
check_per_step "$work/trim/metrics.jsonl" 12
same_losses "$work/np2.whole/metrics.jsonl" "$work/trim/metrics.jsonl"
echo "crash mid-checkpoint: records past the checkpoint dropped, one record per step"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
