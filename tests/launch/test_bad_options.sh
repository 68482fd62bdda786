#!/usr/bin/env bash
# Bad input: a one-line message naming the problem, exit code 2 on every rank (no crash, no hang),
# and nothing written or overwritten.
source "$(dirname "$0")/common.sh"

passed=0
expect_error() {  # expect_error FRAGMENT ARGS...   (NP ranks, 2 unless set)
  local fragment="$1"; shift
  local status=0
  ${AS_USER:-} timeout -k 5 120 $MPIRUN -np "${NP:-2}" ${HCL_FAULT:+-x HCL_FAULT} "$HCL_TRAIN" --device cpu "$@" \
    > "$work/out" 2> "$work/err" || status=$?
  [ "$status" -eq 2 ] || { cat "$work/err"; fail "exit $status (expected 2) for: $*"; }
  # One line from hcl-train (rank 0 only; mpirun adds its own notice about the exit code).
  [ "$(grep -c '^hcl-train: error: ' "$work/err")" -eq 1 ] || { cat "$work/err"; fail "not one line for: $*"; }
  grep '^hcl-train: error: ' "$work/err" | grep -qF -- "$fragment" || { cat "$work/err"; fail "'$fragment' missing for: $*"; }
  [ ! -e "$work/new" ] || fail "output written for: $*"
  passed=$((passed + 1))
}

# expect_tool STATUS FRAGMENT PROGRAM ARGS...: a program under mpirun (2 ranks) ends with STATUS
# (2: hcl-<x>: error: ..., one line; 1: one agreed fatal line), no abort banner, no hang.
expect_tool() {
  local want="$1" fragment="$2" program="$3"; shift 3
  local status=0 name line
  name="$(basename "$program")"
  timeout -k 5 120 $MPIRUN -np 2 "$program" "$@" > "$work/out" 2> "$work/err" || status=$?
  [ "$status" -eq "$want" ] || { cat "$work/err"; fail "exit $status (expected $want) for $name $*"; }
  if [ "$want" -eq 2 ]; then line="^$name: error: "; else line="fatal: "; fi
  [ "$(grep -c -- "$line" "$work/err")" -eq 1 ] || { cat "$work/err"; fail "not one line for $name $*"; }
  grep -- "$line" "$work/err" | grep -qF -- "$fragment" || { cat "$work/err"; fail "'$fragment' missing for $name $*"; }
  ! grep -q "MPI_ABORT\|Exception raised from" "$work/err" || { cat "$work/err"; fail "abort or stack trace for $name $*"; }
  passed=$((passed + 1))
}

expect_error "unrecognised option '--no-such-option'" --no-such-option 1 --out "$work/new"
expect_error "--lr" --lr abc --out "$work/new"
expect_error "--lr: must be a finite number > 0, got -1" --lr -1 --out "$work/new"
expect_error "--temperature: must be a finite number > 0" --temperature 0 --out "$work/new"
expect_error "--tau-plus: must be in [0, 1), got 1" --tau-plus 1 --out "$work/new"
expect_error "--beta: must be a finite number >= 0" --beta -0.5 --out "$work/new"
expect_error "--batch-size: must be in [2, 1073741824] images per rank, got 1" --batch-size 1 --out "$work/new"
expect_error "--estimator: unknown value 'medium'" --estimator medium --out "$work/new"
expect_error "--arch: unknown value 'vgg'" --arch vgg --out "$work/new"
expect_error "--resume: no such checkpoint file" --resume "$work/missing.pt" --out "$work/new"
expect_error "--config: cannot read" --config "$work/missing.conf" --out "$work/new"
printf 'lr = 0.1\nfrobnicate = 3\n' > "$work/bad.conf"
expect_error "frobnicate" --config "$work/bad.conf" --out "$work/new"
mkdir "$work/config-folder"
expect_error "--config: '$work/config-folder' is a folder, not a config file" --config "$work/config-folder" --out "$work/new"
printf 'lr = 0.1\nconfig = x\n' > "$work/nested.conf"
expect_error "--config: '$work/nested.conf' sets 'config'" --config "$work/nested.conf" --out "$work/new"
# Paths that cannot be stored (JSON needs UTF-8) or exceed the system's limits.
expect_error "--data-dir: the path is not valid UTF-8 (byte 5 is 0xff)" --data-dir $'/tmp/\xff\xfe' --out "$work/new"
expect_error "--out: the path is not valid UTF-8" --out "$work/new"$'\xc3'
expect_error "--data-dir: a name in the path is too long (300 bytes; at most 255)" --data-dir "$work/$(printf 'x%.0s' {1..300})" --out "$work/new"
expect_error "--out: the path is too long (5000 bytes" --out "/$(printf 'y/%.0s' {1..2499})y" --data-dir "$work/missing"
# Bad input found while loading, agreed on by every rank before anything is written.
expect_error "no such file" --dataset cifar10 --data-dir "$work/no-cifar" --out "$work/new"
expect_error "exceeds the dataset (60000 images)" --batch-size 40000 --out "$work/new"
expect_error "--eval-interval: 0.0001 epochs is less than one step (an epoch is 117 steps of 512 images); use 0 or at least 0.008547" \
  --eval-interval 0.0001 --out "$work/new"
expect_error "--checkpoint-interval: 0.005 epochs is less than one step" --checkpoint-interval 0.005 --out "$work/new"
head -c 1000 /dev/urandom > "$work/garbage.pt"
expect_error "not an hcl checkpoint" --resume "$work/garbage.pt" --out "$work/new"
mkdir -p "$work/taken" && echo '{}' > "$work/taken/config.json"
expect_error "holds another run" --out "$work/taken"
[ "$(cat "$work/taken/config.json")" = "{}" ] || fail "existing run overwritten"
expect_error "--batch-size" --batch-size 2.5 --out "$work/new"
expect_error "--accumulate: 3 does not divide the batch size 256" --accumulate 3 --out "$work/new"
NP=3 expect_error "--global-batch: 256 images cannot be shared by 3 ranks" --global-batch 256 --out "$work/new"
expect_error "--batch-size: 32 per rank x 2 ranks is not --global-batch 128" --global-batch 128 --batch-size 32 --out "$work/new"
expect_error "--precision: bf16 needs a CUDA device" --precision bf16 --out "$work/new"
# What this machine cannot run (no GPU in CI): exit 2, one line, nothing written.
if ! nvidia-smi -L > /dev/null 2>&1; then
  for args in "--device cuda|--device: cuda, but no CUDA device is available" \
              "--cuda-graph on|--cuda-graph: on needs a CUDA device" \
              "--backend nccl|--backend: nccl needs a CUDA device" \
              "--precision bf16 --device auto|--precision: bf16 needs a CUDA device"; do
    # shellcheck disable=SC2086
    expect_tool 2 "${args#*|}" "$HCL_TRAIN" ${args%%|*} --out "$work/new"
    [ ! -e "$work/new" ] || fail "output written for: ${args%%|*}"
  done
fi
expect_error "--knn-k: must be in [1, " --knn-k 0 --out "$work/new"
expect_error "--max-skipped-steps: must be in [1, " --max-skipped-steps 0 --out "$work/new"
expect_error "--collective-timeout: must be in [1, 604800] seconds, got 0" --collective-timeout 0 --out "$work/new"
# Every number that is stored must read back: no inf or nan, no value whose products overflow.
expect_error "--checkpoint-interval: must be in [0, 1000000], got inf" --checkpoint-interval inf --out "$work/new"
expect_error "--warmup-epochs: must be in [0, 1000000], got inf" --warmup-epochs inf --out "$work/new"
expect_error "--knn-temperature: must be a finite number > 0, got inf" --knn-temperature inf --out "$work/new"
expect_error "--eval-interval: must be in [0, 1000000], got nan" --eval-interval nan --out "$work/new"
expect_error "--weight-decay: must be a finite number >= 0, got inf" --weight-decay inf --out "$work/new"
expect_error "--lr: must be a finite number > 0, got nan" --lr nan --out "$work/new"
expect_error "--epochs: must be in [1, 1000000], got 9223372036854775807" --epochs 9223372036854775807 --out "$work/new"
expect_error "--collective-timeout: must be in [1, 604800] seconds, got 10000000000" --collective-timeout 10000000000 --out "$work/new"
expect_error "--bucket-mb: must be in [1, 65536], got 9007199254740992" --bucket-mb 9007199254740992 --out "$work/new"
expect_error "--max-steps: must be in [0, 1099511627776]" --max-steps 9223372036854775807 --out "$work/new"
# Output folders that cannot be used.
touch "$work/a-file"
expect_error "exists and is not a folder" --out "$work/a-file"
expect_error "is not a folder" --out "$work/a-file/new"
expect_error "is not writable" --out /proc/hcl-cannot-write-here
# Datasets: too few images for the ranks, a truncated file, a corrupt one.
tiny_dataset "$work/three" 3
NP=4 expect_error "the job has 4 ranks but the dataset has only 3 images" --data-dir "$work/three" --out "$work/new"
tiny_dataset "$work/truncated" 100 truncated
expect_error "train-images-idx3-ubyte: truncated or oversized" --data-dir "$work/truncated" --out "$work/new"
tiny_dataset "$work/corrupt" 100 corrupt
expect_error "train-images-idx3-ubyte: wrong magic number" --data-dir "$work/corrupt" --out "$work/new"
# idx_header FILE MAGIC DIM...: an IDX file of that header and no data (or DATA bytes of 1).
idx_file() { python3 -c 'import struct, sys
dims = [int(x) for x in sys.argv[3:]]
data = b"" if sys.argv[2] == "0" else b"\x01" * int(sys.argv[2])
open(sys.argv[1], "wb").write(struct.pack(">" + "I" * len(dims), *dims) + data)' "$@"; }
tiny_dataset "$work/overflow" 64 && idx_file "$work/overflow/train-images-idx3-ubyte" 100 2051 4294967295 4294967295 4294967295
expect_error "train-images-idx3-ubyte: corrupt header: 4294967295 images of 4294967295x4294967295 pixels is more bytes than any file holds" \
  --data-dir "$work/overflow" --out "$work/new"
tiny_dataset "$work/zero" 64 && idx_file "$work/zero/train-images-idx3-ubyte" 0 2051 64 0 0
expect_error "train-images-idx3-ubyte: the header says images of 0x0 pixels" --data-dir "$work/zero" --out "$work/new"
tiny_dataset "$work/sizes" 64 && idx_file "$work/sizes/t10k-images-idx3-ubyte" $((64 * 14 * 14)) 2051 64 14 14
expect_error "train images are 1x28x28 but test images 1x14x14" --data-dir "$work/sizes" --out "$work/new"
tiny_dataset "$work/no-test" 64 && idx_file "$work/no-test/t10k-images-idx3-ubyte" 0 2051 0 28 28 &&
  idx_file "$work/no-test/t10k-labels-idx1-ubyte" 0 2049 0
expect_error "the test split has no images" --data-dir "$work/no-test" --out "$work/new"
# A symlink loop, and a folder this user may not read (as root: checked as user nobody).
ln -s loop "$work/loop"
expect_error "cannot read '$work/loop/train-" --data-dir "$work/loop" --out "$work/new"
grep -q "': Too many levels of symbolic links$" "$work/err" || fail "symlink loop: no reason"
tiny_dataset "$work/locked" 64 && chmod 000 "$work/locked"
as_user=""
if [ "$(id -u)" -eq 0 ]; then chmod 755 "$work"; as_user="setpriv --reuid=65534 --regid=65534 --clear-groups"; fi
mkdir -m 777 "$work/shared"  # an --out folder that user can write
# As nobody, hcl-train must be able to start at all: a LibTorch under root's home (the 2.x build's
# download cache) is out of that user's reach, and then only this case is skipped, saying so.
if [ -z "$as_user" ] || $as_user "$HCL_TRAIN" --version > /dev/null 2>&1; then
  AS_USER="$as_user" expect_error "cannot read '$work/locked/train-" --data-dir "$work/locked" --out "$work/shared/new"
  [ ! -e "$work/shared/new" ] || fail "output written for an unreadable data folder"
  grep -q "': Permission denied$" "$work/err" || fail "unreadable folder: no reason"
else
  echo "skipped: the unreadable data folder (user nobody cannot load $HCL_TRAIN's libraries)"
fi
chmod 700 "$work/locked"
# Checkpoints: truncated, and from an incompatible configuration (a real one, from a short run).
tiny_dataset "$work/small" 64
train 2 --data-dir "$work/small" --max-steps 1 --out "$work/run" > "$work/run.log" 2>&1 || { cat "$work/run.log"; fail "setup run"; }
head -c 3000 "$work/run/checkpoint.pt" > "$work/truncated.pt"
expect_error "truncated" --resume "$work/truncated.pt" --data-dir "$work/small" --batch-size 16 --out "$work/new"
expect_error "is incompatible: --arch is \"small\" there but \"resnet18\" here" --arch resnet18 \
  --resume "$work/run/checkpoint.pt" --data-dir "$work/small" --batch-size 16 --out "$work/new"
# Resuming with a setting that defines the run changed.
expect_error "--resume: --seed is 0 in $work/run/checkpoint.pt but 1 here; a resumed run keeps it" --seed 1 \
  --resume "$work/run/checkpoint.pt" --data-dir "$work/small" --batch-size 16 --arch small --out "$work/new"
expect_error "--resume: --estimator is \"hard\" in" --estimator easy \
  --resume "$work/run/checkpoint.pt" --data-dir "$work/small" --batch-size 16 --arch small --out "$work/new"
# Resumed with fewer images than the run had (a smaller dataset, an image folder that lost files):
# the position lies past the end of an epoch; refused before anything is written.
tiny_dataset "$work/mid" 128
BATCH=16 train 2 --data-dir "$work/mid" --max-steps 2 --out "$work/midrun" > "$work/run.log" 2>&1 ||
  { cat "$work/run.log"; fail "setup run (mid-epoch)"; }
before="$(cat "$work/midrun/config.json" "$work/midrun/metrics.jsonl" | md5sum)"
expect_error "--resume: $work/midrun/checkpoint.pt stopped at step 2 of an epoch, but an epoch of this dataset (64 images) has only 2 steps of 32 images; resume with the data it was trained with" \
  --resume "$work/midrun/checkpoint.pt" --data-dir "$work/small" --batch-size 16 --arch small --out "$work/midrun"
[ "$(cat "$work/midrun/config.json" "$work/midrun/metrics.jsonl" | md5sum)" = "$before" ] || fail "files written before refusing"
# A checkpoint resumed into the folder of another run (it would overwrite that run's files).
mkdir -p "$work/other" && echo '{}' > "$work/other/config.json"
expect_error "--out: folder '$work/other' holds another run than the one in '$work/run/checkpoint.pt'" \
  --resume "$work/run/checkpoint.pt" --data-dir "$work/small" --batch-size 16 --arch small --out "$work/other"
[ "$(cat "$work/other/config.json")" = "{}" ] || fail "other run overwritten"
# hcl-eval and hcl-export: files that are not checkpoints nor complete exports (one line, exit 2,
# no stack trace), and a linear classifier that diverges (exit 1, naming what to change).
expect_tool 2 "checkpoint $work/garbage.pt: not an hcl checkpoint (bad magic)" "$HCL_EVAL" --checkpoint "$work/garbage.pt"
"$HCL_EXPORT" --checkpoint "$work/run/checkpoint.pt" --out "$work/export.pt" > /dev/null || fail "hcl-export"
head -c 2000 "$work/export.pt" > "$work/cut.pt" && cp "$work/export.pt.json" "$work/cut.pt.json"
expect_tool 2 "$work/cut.pt: not a checkpoint of hcl-train nor a complete file of hcl-export" "$HCL_EVAL" --checkpoint "$work/cut.pt"
cp "$work/export.pt" "$work/nojson.pt" && echo '{"format": 1}' > "$work/nojson.pt.json"
expect_tool 2 "$work/nojson.pt.json: not the description hcl-export writes" "$HCL_EVAL" --checkpoint "$work/nojson.pt"
# Output paths that are folders, and a negative thread count: refused before any work.
expect_tool 2 "--out: '$work/other' is a folder; give the result's file name" "$HCL_EVAL" --checkpoint "$work/run/checkpoint.pt" \
  --data-dir "$work/small" --out "$work/other"
expect_tool 2 "--threads: must be >= 0" "$HCL_EVAL" --checkpoint "$work/run/checkpoint.pt" --threads -3
expect_tool 2 "--random-encoder: unknown value 'resnet7'" "$HCL_EVAL" --random-encoder resnet7 --out "$work/new.json"
expect_tool 2 "--random-encoder: not with --checkpoint" "$HCL_EVAL" --random-encoder small \
  --checkpoint "$work/run/checkpoint.pt" --out "$work/new.json"
expect_tool 2 "--random-encoder: not with --protocol pixels" "$HCL_EVAL" --random-encoder small --protocol pixels \
  --out "$work/new.json"
expect_tool 2 "--out: required without --checkpoint" "$HCL_EVAL" --random-encoder small
for args in "--out $work/other" "--out $work/new.pt --verification-sample $work/other"; do
  status=0
  # shellcheck disable=SC2086
  "$HCL_EXPORT" --checkpoint "$work/run/checkpoint.pt" $args > /dev/null 2> "$work/err" || status=$?
  [ "$status" -eq 2 ] && [ "$(wc -l < "$work/err")" -eq 1 ] && grep -q "^hcl-export: error: --.*: '$work/other' is a folder" "$work/err" ||
    { cat "$work/err"; fail "hcl-export $args: exit $status"; }
  [ ! -e "$work/new.pt" ] || fail "hcl-export wrote for a refused $args"
  passed=$((passed + 1))
done
status=0
"$HCL_EXPORT" --checkpoint "$work/truncated.pt" --out "$work/new.pt" > /dev/null 2> "$work/err" || status=$?
[ "$status" -eq 2 ] && [ "$(wc -l < "$work/err")" -eq 1 ] && grep -q "^hcl-export: error: checkpoint .*: truncated" "$work/err" ||
  { cat "$work/err"; fail "hcl-export of a truncated checkpoint: exit $status"; }
passed=$((passed + 1))
expect_tool 1 "linear evaluation diverged: the classifier's loss is " \
  "$HCL_EVAL" --checkpoint "$work/run/checkpoint.pt" --data-dir "$work/small" --epochs 3 --lr 1e30 --out "$work/new.json"
grep -qE "loss is (NaN|infinite) at epoch [1-3] of 3 \(--lr 1e\+30\); try a lower --lr$" "$work/err" || { cat "$work/err"; fail "diverged: message"; }
[ ! -e "$work/new.json" ] || fail "hcl-eval wrote a result for a diverged classifier"
# hcl-eval: a learning rate that cannot train, on every rank.
status=0
$MPIRUN -np 2 "$HCL_EVAL" --checkpoint "$work/run/checkpoint.pt" --lr inf --out "$work/new.json" > /dev/null 2> "$work/err" || status=$?
[ "$status" -eq 2 ] && [ "$(grep -c '^hcl-eval: error: --lr: must be a finite number > 0, got inf' "$work/err")" -eq 1 ] ||
  { cat "$work/err"; fail "hcl-eval --lr inf: exit $status"; }
[ ! -e "$work/new.json" ] || fail "hcl-eval wrote a result for --lr inf"
passed=$((passed + 1))
# Ranks started differently (MPMD launch), and a malformed fault plan.
status=0
$MPIRUN -np 1 "$HCL_TRAIN" --device cpu --lr 0.1 --out "$work/new" : -np 1 "$HCL_TRAIN" --device cpu --lr 0.2 \
  --out "$work/new" > /dev/null 2> "$work/err" || status=$?
[ "$status" -eq 2 ] && grep -q "^hcl-train: error: ranks were started with different settings: --lr (" "$work/err" ||
  { cat "$work/err"; fail "ranks that disagree"; }
[ ! -e "$work/new" ] || fail "output written for ranks that disagree"
passed=$((passed + 1))
HCL_FAULT=explode expect_error "HCL_FAULT: unknown fault 'explode'" --out "$work/new"
# As a plain process (no mpirun), stderr is exactly that one line.
status=0
"$HCL_TRAIN" --device cpu --momentum 1.5 --out "$work/new" > /dev/null 2> "$work/err" || status=$?
[ "$status" -eq 2 ] && [ "$(wc -l < "$work/err")" -eq 1 ] || { cat "$work/err"; fail "plain process"; }
grep -qF -- "--momentum: must be in [0, 1), got 1.5" "$work/err" || fail "plain process message"
passed=$((passed + 1))
echo "$passed passed, 0 failed"
