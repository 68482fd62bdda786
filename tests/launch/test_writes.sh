#!/usr/bin/env bash
# Writes and output folders: a failed write (checkpoint, synchronous or in the background,
# metrics.jsonl, hcl-export's and hcl-eval's output) is an error naming the file, every rank stops,
# and no temporary file is left; the wall-clock floors of kNN and checkpoints; one job per
# --out (a lock held for the job's life, released on any exit); no program writes over its input;
# and a checkpoint write slower than --collective-timeout does not make the watchdog end a healthy
# job.
source "$(dirname "$0")/common.sh"
LIMIT=120
MPIRUN="timeout -k 5 $LIMIT $MPIRUN"
export KNN_BANK=100 KNN_TEST=50
tiny_dataset "$work/tiny" 256
passed=0
ok() { echo "$1"; passed=$((passed + 1)); }

# 1. Rank 0 takes 6 s to write each checkpoint while the others wait; the collective timeout is 2 s.
HCL_FAULT=slow-checkpoint:ms=6000 train 2 --data-dir "$work/tiny" --max-steps 4 --checkpoint-interval 0.5 \
  --collective-timeout 2 --out "$work/slow" > "$work/slow.log" 2>&1 || { cat "$work/slow.log"; fail "slow checkpoint: the job was ended"; }
grep -q "checkpoint (interval)" "$work/slow.log" && grep -q "checkpoint (end of training)" "$work/slow.log" || fail "slow checkpoint: no checkpoints"
ok "slow checkpoint (6 s) with --collective-timeout 2: the job finished"

# 2. The checkpoint cannot be written: every rank stops with exit 1, the error names the file.
mkdir -p "$work/nockpt/checkpoint.pt.tmp"
status=0
train 2 --data-dir "$work/tiny" --max-steps 2 --out "$work/nockpt" > "$work/nockpt.log" 2>&1 || status=$?
[ "$status" -eq 1 ] || { cat "$work/nockpt.log"; fail "failed checkpoint: exit $status (expected 1)"; }
[ "$(grep -c "fatal: checkpoint $work/nockpt/checkpoint.pt.tmp: cannot create" "$work/nockpt.log")" -eq 1 ] ||
  { cat "$work/nockpt.log"; fail "failed checkpoint: message"; }
! grep -q "MPI_ABORT" "$work/nockpt.log" || fail "failed checkpoint: aborted instead of agreed"
ok "failed checkpoint write: exit 1 on every rank, one message naming the file"

# 2b. An interval checkpoint's background write fails after 5000 bytes (a full disk) at step 4:
# training goes on, the next checkpoint (step 8) waits for it and every rank stops with exit 1,
# one message naming the file, no temporary file.
status=0
HCL_FAULT=fail-in-checkpoint:byte=5000:write=1 train 2 --data-dir "$work/tiny" --epochs 3 --checkpoint-interval 1 \
  --out "$work/bgfail" > "$work/bgfail.log" 2>&1 || status=$?
[ "$status" -eq 1 ] || { cat "$work/bgfail.log"; fail "failed background checkpoint: exit $status (expected 1)"; }
[ "$(grep -c "fatal: checkpoint $work/bgfail/checkpoint.pt.tmp: write failed: No space left on device" "$work/bgfail.log")" -eq 1 ] ||
  { cat "$work/bgfail.log"; fail "failed background checkpoint: message"; }
! grep -q "MPI_ABORT" "$work/bgfail.log" || fail "failed background checkpoint: aborted instead of agreed"
[ ! -e "$work/bgfail/checkpoint.pt.tmp" ] && [ ! -e "$work/bgfail/checkpoint.pt" ] || fail "failed background checkpoint: files left"
python3 -c 'import json,sys
steps = [r["step"] for r in map(json.loads, open(sys.argv[1])) if r["type"] == "train"]
assert steps == list(range(1, 9)), steps' "$work/bgfail/metrics.jsonl" || fail "failed background checkpoint: not agreed at step 8"
ok "failed background checkpoint write: agreed at the next checkpoint, exit 1 on every rank, file named, no .tmp"

# 2c. The wall-clock floors: with an hour between them, the epoch intervals give no kNN or
# checkpoint during a run of seconds; without, one per epoch (and its pause in the epoch record).
EVAL_INTERVAL=1 EVAL_MIN_SECONDS=3600 CHECKPOINT_MIN_SECONDS=3600 train 2 --data-dir "$work/tiny" --epochs 3 \
  --checkpoint-interval 1 --out "$work/floor" > "$work/floor.log" 2>&1 || { cat "$work/floor.log"; fail "floor: run"; }
EVAL_INTERVAL=1 train 2 --data-dir "$work/tiny" --epochs 3 --checkpoint-interval 1 --out "$work/nofloor" \
  > "$work/nofloor.log" 2>&1 || { cat "$work/nofloor.log"; fail "no floor: run"; }
[ "$(grep -c "checkpoint (interval)" "$work/floor.log")" -eq 0 ] && [ "$(grep -c "checkpoint (interval)" "$work/nofloor.log")" -eq 2 ] ||
  fail "floor: interval checkpoints"
grep -q "checkpoint (end of training)" "$work/floor.log" || fail "floor: no final checkpoint"
python3 - "$work/floor/metrics.jsonl" "$work/nofloor/metrics.jsonl" <<'PY' || fail "floor: records"
import json, sys
def records(path, kind):
    return [r for r in map(json.loads, open(path)) if r["type"] == kind]
floor, nofloor = sys.argv[1], sys.argv[2]
assert [r["when"] for r in records(floor, "knn")] == ["before training", "after training"]
assert [r["when"] for r in records(nofloor, "knn")] == ["before training"] + ["during training"] * 2 + ["after training"]
for path in (floor, nofloor):
    epochs = records(path, "epoch")
    assert [(r["epoch"], r["step"], r["steps"]) for r in epochs] == [(0, 4, 4), (1, 8, 4), (2, 12, 4)], epochs
    assert all(r["images_per_s"] > 0 and r["run_images_per_s"] > 0 for r in epochs), epochs
paused = records(nofloor, "epoch")
assert all(r["knn_s"] > 0 and r["checkpoint_s"] > 0 for r in paused[:2]), paused
assert all(r["knn_s"] == 0 and r["checkpoint_s"] == 0 for r in records(floor, "epoch")), floor
PY
grep -q "img/s with pauses" "$work/nofloor.log" || fail "floor: no epoch line"
ok "wall-clock floors: none within the hour, one per epoch without; epoch records in wall time"

# 3. metrics.jsonl on a full disk (/dev/full): the run stops with the file named.
train 2 --data-dir "$work/tiny" --max-steps 2 --out "$work/full" > "$work/full.log" 2>&1 || fail "full: setup run"
rm "$work/full/metrics.jsonl" && ln -s /dev/full "$work/full/metrics.jsonl"
status=0
train 2 --data-dir "$work/tiny" --max-steps 4 --resume auto --out "$work/full" > "$work/full2.log" 2>&1 || status=$?
[ "$status" -ne 0 ] || fail "full disk: exit 0"
grep -q "cannot write $work/full/metrics.jsonl: No space left on device" "$work/full2.log" || { cat "$work/full2.log"; fail "full disk: message"; }
! grep -q "done:" "$work/full2.log" || fail "full disk: training went on"
ok "metrics.jsonl on a full disk: stopped, file named"

# 4. One job per folder: a second job into a running job's folder is refused even with --force; the
# first goes on, stops on SIGUSR1 (exit 3), and its folder is free again (lock released).
train 2 --data-dir "$work/tiny" --max-steps 1000 --checkpoint-interval 0 --resume auto --out "$work/busy" > "$work/busy.log" 2>&1 &
job=$!
for i in $(seq $((LIMIT * 5))); do
  [ -f "$work/busy/metrics.jsonl" ] && [ "$(grep -c '"type":"train"' "$work/busy/metrics.jsonl")" -ge 2 ] && break
  sleep 0.2
done
status=0
train 2 --data-dir "$work/tiny" --max-steps 20 --force --out "$work/busy" > "$work/second.log" 2>&1 || status=$?
[ "$status" -eq 2 ] && grep -q "^hcl-train: error: --out: folder '$work/busy' is in use by another running job" "$work/second.log" ||
  { cat "$work/second.log"; fail "second job: exit $status"; }
kill -USR1 "$(pgrep -f -- "^[^ ]*(mpirun|mpiexec|orterun) .*--out $work/busy( |$)" | head -1)"
status=0
wait "$job" || status=$?
[ "$status" -eq 3 ] || { cat "$work/busy.log"; fail "first job: exit $status (expected 3)"; }
stopped="$(grep -o "stopped by SIGUSR1 after step [0-9]*" "$work/busy.log" | grep -o "[0-9]*$")"
python3 -c 'import json,sys
steps = [r["step"] for r in map(json.loads, open(sys.argv[1])) if r["type"] == "train"]
assert steps == list(range(1, int(sys.argv[2]) + 1)), steps' "$work/busy/metrics.jsonl" "$stopped" || fail "first job's metrics damaged"
train 2 --data-dir "$work/tiny" --max-steps $((stopped + 2)) --checkpoint-interval 0 --resume auto --out "$work/busy" > "$work/busy2.log" 2>&1 ||
  { cat "$work/busy2.log"; fail "lock not released"; }
ok "a running job's folder refused (--force too); lock released at exit"

# 5. hcl-export: not over its own input, not into a missing folder, no temporary file after a failure.
ckpt="$work/busy/checkpoint.pt"
sum="$(md5sum < "$ckpt")"
expect_exit() {  # expect_exit CODE FRAGMENT COMMAND...
  local code="$1" fragment="$2" status=0; shift 2
  "$@" > /dev/null 2> "$work/err" || status=$?
  [ "$status" -eq "$code" ] && grep -qF -- "$fragment" "$work/err" || { cat "$work/err"; fail "exit $status for: $*"; }
}
expect_exit 2 "--out: '$ckpt' is the --checkpoint being exported" "$HCL_EXPORT" --checkpoint "$ckpt" --out "$ckpt"
[ "$(md5sum < "$ckpt")" = "$sum" ] || fail "hcl-export wrote over its checkpoint"
expect_exit 2 "--out: folder '$work/no/such' does not exist" "$HCL_EXPORT" --checkpoint "$ckpt" --out "$work/no/such/e.pt"
mkdir "$work/e.pt.tmp"
expect_exit 1 "$work/e.pt.tmp: cannot create: Is a directory" "$HCL_EXPORT" --checkpoint "$ckpt" --out "$work/e.pt"
# The folder in the way is not hcl-export's to remove; it wrote nothing.
[ -d "$work/e.pt.tmp" ] && [ ! -e "$work/e.pt" ] || fail "hcl-export left files after a failure"
rmdir "$work/e.pt.tmp"
ok "hcl-export: refuses its own input and missing folders; nothing written after a failed write"

# 6. hcl-eval: --out in a missing folder, or over the checkpoint: exit 2 before any work, one line.
expect_exit 2 "--out: folder '$work/no/such' does not exist" $MPIRUN -np 2 "$HCL_EVAL" --checkpoint "$ckpt" --device cpu --out "$work/no/such/r.json"
[ "$(grep -c '^hcl-eval: error: ' "$work/err")" -eq 1 ] || fail "hcl-eval: not one line"
expect_exit 2 "is the --checkpoint being evaluated" $MPIRUN -np 2 "$HCL_EVAL" --checkpoint "$ckpt" --device cpu --out "$ckpt"
[ "$(md5sum < "$ckpt")" = "$sum" ] || fail "hcl-eval wrote over its checkpoint"
ok "hcl-eval: --out checked before any work"
echo "$passed passed, 0 failed"
