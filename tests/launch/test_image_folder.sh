#!/usr/bin/env bash
# hcl-train on an image folder (real Fashion-MNIST images as PNG files, a file-list val split),
# 2 ranks with 2 decode workers each: it trains, evaluates kNN on the val list, keeps the index in
# the run's folder and reuses it on resume; a corrupt image stops the job with its name, or is
# skipped and counted with --skip-bad-images; a bad folder is an input error (exit 2).
source "$(dirname "$0")/common.sh"

root="$work/images"
/usr/bin/python3 "$(dirname "$0")/make_image_folder.py" /usr/share/datasets/fashion-mnist "$root" 400 200

folder_train() {
  $MPIRUN -np 2 -x OMP_NUM_THREADS=1 "$HCL_TRAIN" --dataset image-folder --data-dir "${DATA:-$root}" --crop-size 28 \
    --arch small --device cpu --threads 1 --workers 2 --batch-size 16 --log-interval 2 --eval-interval 0 \
    --eval-min-seconds 0 --checkpoint-min-seconds 0 --lr-schedule constant --epochs 1 "$@"
}

folder_train --max-steps 6 --out "$work/run" > "$work/log" 2>&1 || { cat "$work/log"; fail "hcl-train failed"; }
grep -q "data: image folder $root/train (10 classes; index scanned), decoded by 2 worker thread(s) per rank" "$work/log" \
  || { cat "$work/log"; fail "no image-folder line"; }
grep -q "test 200, kNN bank 400" "$work/log" || fail "the val list or the bank was not read"
grep -q "host [0-9.]* data-wait [0-9.]* | rss" "$work/log" || fail "no data-wait in the progress line"
[ -s "$work/run/image-index/train.index" ] || fail "no cached index in the run's folder"
python3 - "$work/run/metrics.jsonl" <<'PY' || exit 1
import json, sys
records = [json.loads(l) for l in open(sys.argv[1])]
train = [r for r in records if r["type"] == "train"]
knn = [r for r in records if r["type"] == "knn"]
assert len(train) == 3 and all(r["loss"] == r["loss"] for r in train), train
assert all(r["step_ms"]["data_wait"] >= 0 for r in train), train  # the wait for the decode workers
assert [r["when"] for r in knn] == ["before training", "after training"], knn
print(f"image folder: loss {train[0]['loss']:.4f} -> {train[-1]['loss']:.4f}; kNN top-1 {knn[-1]['top1']:.3f}")
PY

# Resume: the index comes from the run's cache.
folder_train --max-steps 10 --out "$work/run" --resume auto > "$work/log2" 2>&1 || { cat "$work/log2"; fail "resume failed"; }
grep -q "(10 classes; index from the cache)" "$work/log2" || { cat "$work/log2"; fail "index not reused"; }

# A corrupt image: the job stops naming the file, no hang (exit 2 when the kNN bank's decode at
# start-up finds it, 1 when a training batch does); --skip-bad-images skips it.
bad="$root/train/bag/$(ls "$root/train/bag" | head -1)"
cp "$bad" "$work/good.png"
head -c 60 "$bad" > "$work/cut" && mv "$work/cut" "$bad"
# expect_failure LOG ARGS: hcl-train on the folder fails (exit 1 or 2: a bad file may be met while
# checking the inputs or while training), its output in LOG.
expect_failure() {
  local log="$1"; shift
  set +e
  folder_train --max-steps 30 "$@" > "$log" 2>&1
  local code=$?
  set -e
  [ "$code" = 1 ] || [ "$code" = 2 ] || { cat "$log"; fail "$*: exit code $code, expected 1 or 2"; }
}
expect_failure "$work/log3" --out "$work/bad"
grep -q "$bad: corrupt" "$work/log3" || { cat "$work/log3"; fail "the corrupt file is not named"; }
folder_train --max-steps 30 --out "$work/skip" --skip-bad-images true > "$work/log4" 2>&1 || { cat "$work/log4"; fail "--skip-bad-images failed"; }
grep -q "skipping a bad image (--skip-bad-images; 1 so far): $bad: corrupt" "$work/log4" || { cat "$work/log4"; fail "skip not logged"; }
mv "$work/good.png" "$bad"

# A decompression bomb: a PNG whose header claims 100000 x 100000 pixels (30 GB decoded) is refused
# from its header, naming the file (--max-image-pixels), before any memory is taken;
# --skip-bad-images skips it; a limit above it lets small images through as before.
cp "$bad" "$work/good.png"
/usr/bin/python3 - "$bad" <<'PY'
import struct, sys, zlib
path = sys.argv[1]
png = bytearray(open(path, "rb").read())
png[16:24] = struct.pack(">II", 100000, 100000)  # IHDR's width and height
png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])) & 0xffffffff)
open(path, "wb").write(png)
PY
expect_failure "$work/log6" --out "$work/bomb"
grep -q "$bad: 100000x100000 pixels (a PNG decodes whole) exceed the limit of 89478485 (--max-image-pixels; 0: no limit)" \
  "$work/log6" || { cat "$work/log6"; fail "the oversized image is not named"; }
folder_train --max-steps 4 --out "$work/bomb-skip" --skip-bad-images true > "$work/log7" 2>&1 ||
  { cat "$work/log7"; fail "--skip-bad-images with an oversized image failed"; }
grep -q "skipping a bad image (--skip-bad-images; 1 so far): $bad: 100000x100000 pixels" "$work/log7" ||
  { cat "$work/log7"; fail "oversized image: skip not logged"; }
mv "$work/good.png" "$bad"
DATA="$root" expect_failure "$work/log8" --out "$work/tiny-limit" --max-image-pixels 100
grep -q "28x28 pixels (a PNG decodes whole) exceed the limit of 100" "$work/log8" || { cat "$work/log8"; fail "--max-image-pixels 100"; }

# Bad folders: input errors naming them, exit 2.
expect_input_error() {
  set +e
  folder_train --max-steps 2 --out "$work/x" "$@" > "$work/log5" 2>&1
  local code=$?
  set -e
  [ "$code" = 2 ] || { cat "$work/log5"; fail "$*: exit code $code, expected 2"; }
}
DATA="$work/nowhere" expect_input_error
grep -q "nowhere: no such folder" "$work/log5" || fail "missing folder not named"
mkdir -p "$root/train/empty"
expect_input_error
grep -q "train/empty: empty class folder" "$work/log5" || fail "empty class folder not named"
rmdir "$root/train/empty"
echo "not a picture" > "$root/train/bag/notes.jpg"
expect_failure "$work/log5" --out "$work/x"
grep -q "train/bag/notes.jpg: not a JPEG or PNG image" "$work/log5" || { cat "$work/log5"; fail "non-image file not named"; }
echo "image-folder tests passed"
