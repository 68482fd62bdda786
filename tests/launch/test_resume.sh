#!/usr/bin/env bash
# Resume: a run stopped after 6 steps and resumed to 12 has exactly the losses of the uninterrupted
# run (CPU), and so (to rounding) when resumed with a different number of ranks and the same global
# batch, with SyncBatchNorm; and resumed from a checkpoint written in the background.
source "$(dirname "$0")/common.sh"

run() { train "$@" > "$work/log" 2>&1 || { cat "$work/log"; fail "hcl-train $*"; }; }

run_id() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run-id"])' "$1/config.json"; }
run 2 --max-steps 12 --out "$work/whole"
run 2 --max-steps 6 --out "$work/part"
id="$(run_id "$work/part")"
[ "$id" != "$(run_id "$work/whole")" ] || fail "two runs share the run id $id"
run 2 --max-steps 12 --out "$work/part" --resume "$work/part/checkpoint.pt"
[ "$(run_id "$work/part")" = "$id" ] || fail "the resumed run's id changed from $id"
grep -q "run $id (continued)" "$work/log" || { cat "$work/log"; fail "no line naming the continued run"; }
losses "$work/whole/metrics.jsonl" > "$work/whole.txt"
losses "$work/part/metrics.jsonl" > "$work/part.txt"
[ "$(wc -l < "$work/part.txt")" -eq 12 ] || fail "resumed run has $(wc -l < "$work/part.txt") records"
diff "$work/whole.txt" "$work/part.txt" || fail "resumed losses differ from the uninterrupted run"

# Same global batch (64) on 1 rank after 6 steps on 2 ranks.
run 2 --max-steps 6 --out "$work/ranks"
BATCH=64 run 1 --max-steps 12 --out "$work/ranks" --resume "$work/ranks/checkpoint.pt"
losses "$work/ranks/metrics.jsonl" > "$work/ranks.txt"
python3 - "$work/whole.txt" "$work/ranks.txt" <<'PY' || fail "resuming on 1 rank diverged"
import sys
a = [float(x) for x in open(sys.argv[1])]
b = [float(x) for x in open(sys.argv[2])]
assert len(a) == len(b) == 12, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
assert worst < 1e-4, f"relative difference {worst:.2e}"
print(f"1 rank after 2: worst relative loss difference {worst:.1e}")
PY

# A checkpoint written by the background writer (the interval one of step 8, written while steps
# 9-12 ran): the run's last, synchronous save fails, so checkpoint.pt is that one. Resuming from it
# gives the losses of the uninterrupted run.
tiny_dataset "$work/tiny" 256  # 4 steps per epoch at 2 x 32 images
run 2 --data-dir "$work/tiny" --epochs 3 --checkpoint-interval 1 --out "$work/whole_bg"
status=0
HCL_FAULT=fail-in-checkpoint:byte=100:write=3 train 2 --data-dir "$work/tiny" --epochs 3 --checkpoint-interval 1 \
  --out "$work/bg" > "$work/log" 2>&1 || status=$?
[ "$status" -eq 1 ] && grep -q "checkpoint (interval): .* at step 8 .*in the background" "$work/log" ||
  { cat "$work/log"; fail "background checkpoint run: exit $status"; }
run 2 --data-dir "$work/tiny" --epochs 3 --checkpoint-interval 1 --out "$work/bg" --resume "$work/bg/checkpoint.pt"
grep -q "resumed from .* at epoch 2, step 0 (8 steps done)" "$work/log" || { cat "$work/log"; fail "background checkpoint: position"; }
losses "$work/whole_bg/metrics.jsonl" > "$work/whole_bg.txt"
losses "$work/bg/metrics.jsonl" > "$work/bg.txt"
[ "$(wc -l < "$work/bg.txt")" -eq 12 ] || fail "background-resumed run has $(wc -l < "$work/bg.txt") records"
diff "$work/whole_bg.txt" "$work/bg.txt" || fail "losses after resuming from a background checkpoint differ"

# --force leaves nothing of the old run that a later resume could take: a finished run, then a
# --force run that fails before its first checkpoint, then --force --resume auto (as a requeued
# SLURM job runs) starts afresh instead of continuing the old run's weights.
run 2 --max-steps 4 --out "$work/forced"
status=0
HCL_FAULT=throw:step=2 train 2 --max-steps 4 --force --out "$work/forced" > "$work/log" 2>&1 || status=$?
[ "$status" -eq 1 ] || { cat "$work/log"; fail "the forced run with a fault: exit $status"; }
[ ! -e "$work/forced/checkpoint.pt" ] || fail "--force kept the old run's checkpoint"
run 2 --max-steps 4 --force --resume auto --out "$work/forced"
! grep -q "resumed from" "$work/log" || { cat "$work/log"; fail "--force --resume auto continued the old run"; }
[ "$(losses "$work/forced/metrics.jsonl" | wc -l)" -eq 4 ] || fail "the forced run's metrics.jsonl"

# A checkpoint belongs to its run (the run id in config.json and in every checkpoint): another
# run's checkpoint put in the folder is refused, not continued, and nothing is written.
run 2 --max-steps 2 --out "$work/other_run"
cp "$work/other_run/checkpoint.pt" "$work/part/checkpoint.pt"
before="$(cat "$work/part/config.json" "$work/part/metrics.jsonl" | md5sum)"
status=0
train 2 --max-steps 14 --resume auto --out "$work/part" > "$work/log" 2> "$work/err" || status=$?
[ "$status" -eq 2 ] && grep -q "^hcl-train: error: --resume: $work/part/checkpoint.pt belongs to run $(run_id "$work/other_run") but $work/part/config.json to run $id: the folder holds another run's checkpoint" "$work/err" ||
  { cat "$work/log" "$work/err"; fail "another run's checkpoint: exit $status"; }
[ "$(cat "$work/part/config.json" "$work/part/metrics.jsonl" | md5sum)" = "$before" ] || fail "files written before refusing"

# Another global batch (32 x 4 ranks = 128 instead of 32 x 2 = 64) is refused up front on every
# rank: exit 2, one line, nothing written (a new folder is not made, the run's own is untouched).
expect_refused() {  # expect_refused FRAGMENT NP ARGS...
  local fragment="$1" np="$2"; shift 2
  local status=0 before
  before="$(cat "$work/ranks/metrics.jsonl" "$work/ranks/config.json" | md5sum)"
  BATCH="${BATCH:-32}" timeout -k 5 120 bash -c 'source "$1"; shift; train "$@"' _ "$(dirname "$0")/common.sh" "$np" \
    "$@" > "$work/log" 2> "$work/err" || status=$?
  [ "$status" -eq 2 ] || { cat "$work/log" "$work/err"; fail "exit $status (expected 2) for $np ranks: $*"; }
  [ "$(grep -c '^hcl-train: error: ' "$work/err")" -eq 1 ] && grep '^hcl-train: error: ' "$work/err" | grep -qF -- "$fragment" ||
    { cat "$work/err"; fail "not one line with '$fragment'"; }
  [ "$(cat "$work/ranks/metrics.jsonl" "$work/ranks/config.json" | md5sum)" = "$before" ] || fail "files written before refusing"
}
expect_refused "--resume: the global batch is 64 images in $work/ranks/checkpoint.pt but 128 here (--batch-size 32 x 4 ranks); a resumed run keeps it (use --global-batch 64, or start a new run in another --out)" \
  4 --max-steps 12 --out "$work/ranks4" --resume "$work/ranks/checkpoint.pt"
[ ! -e "$work/ranks4" ] || fail "output folder made for a refused resume"
BATCH=16 expect_refused "--resume: the global batch is 64 images in $work/ranks/checkpoint.pt but 32 here" \
  2 --max-steps 12 --out "$work/ranks" --resume auto
echo "7 passed, 0 failed"
