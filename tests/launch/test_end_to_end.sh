#!/usr/bin/env bash
# End to end, 2 ranks, a few dozen steps on a small model: the loss falls, metrics.jsonl, the
# configuration and a checkpoint are written, and the kNN monitor reports before and after.
source "$(dirname "$0")/common.sh"

train 2 --max-steps 40 --out "$work/run" > "$work/log" 2>&1 || { cat "$work/log"; fail "hcl-train failed"; }
[ -s "$work/run/checkpoint.pt" ] || fail "no checkpoint"
[ -s "$work/run/config.json" ] || fail "no config.json"
python3 - "$work/run/metrics.jsonl" <<'PY' || exit 1
import json, sys
records = [json.loads(l) for l in open(sys.argv[1])]
train = [r for r in records if r["type"] == "train"]
knn = [r for r in records if r["type"] == "knn"]
assert len(train) == 40, f"{len(train)} train records"
for key in ("loss", "lr", "beta", "images_per_s", "positive_similarity", "negative_similarity",
            "floor_fraction", "effective_negatives", "eta_s", "step_ms"):
    assert key in train[0], key
first = sum(r["loss"] for r in train[:5]) / 5
last = sum(r["loss"] for r in train[-5:]) / 5
assert last < first - 0.05, f"loss did not fall: {first:.4f} -> {last:.4f}"
assert [r["when"] for r in knn] == ["before training", "after training"], knn
print(f"loss {first:.4f} -> {last:.4f}; kNN top-1 {knn[0]['top1']:.3f} -> {knn[1]['top1']:.3f}")
PY
grep -q "img/s" "$work/log" || fail "no progress lines"
# The global batch is stated (log and config.json): 32 per rank x 2 ranks.
grep -q "batch: global 64 images per step = 32 per rank x 2 ranks (126 negatives per anchor)" "$work/log" ||
  fail "no global-batch line"
python3 -c 'import json,sys; c = json.load(open(sys.argv[1])); assert (c["global-batch"], c["batch-size"]) == (64, 32), c' \
  "$work/run/config.json" || fail "config.json lacks the global batch"
grep -q "\[rank 0/2\] info: kNN (after training" "$work/log" || fail "no kNN line"

# Plots of that run (gnuplot is installed by scripts/setup).
"$(dirname "$0")/../../scripts/plot_metrics" "$work/plots" "$work/run" > /dev/null 2>&1 || fail "plot_metrics"
for png in loss lr beta throughput knn; do
  [ "$(head -c 4 "$work/plots/$png.png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "$png.png is not a PNG"
done

# Linear evaluation of that checkpoint, on 2 ranks.
$MPIRUN -np 2 -x OMP_NUM_THREADS=1 "$HCL_EVAL" --checkpoint "$work/run/checkpoint.pt" --device cpu \
  --threads 1 --epochs 3 --out "$work/linear.json" > "$work/eval.log" 2>&1 || { cat "$work/eval.log"; fail "hcl-eval failed"; }
python3 - "$work/linear.json" <<'PY' || exit 1
import json, sys
r = json.load(open(sys.argv[1]))
assert r["test_images"] == 10000 and r["train_images"] == 60000, r
assert 0.5 < r["top1"] <= r["top5"] <= 1, r  # ten classes: chance is 0.1
assert r["protocol"] == "features" and r["epochs"] == 3, r
# The standard protocol by default: kNN k 200 on the whole train split as bank, the whole test split.
assert (r["knn"]["k"], r["knn"]["bank"], r["knn"]["test"]) == (200, 60000, 10000) and 0.5 < r["knn"]["top1"] <= 1, r
print(f"linear evaluation: top-1 {r['top1']:.3f}, top-5 {r['top5']:.3f}")
PY
# The other protocols: crop + flip views with the kNN vote, and raw pixels (no checkpoint) on a subset
# (enough classifier steps to leave chance, 0.1: 2 epochs of 4 batches stayed at 0.125 here).
$MPIRUN -np 2 -x OMP_NUM_THREADS=1 "$HCL_EVAL" --checkpoint "$work/run/checkpoint.pt" --device cpu --threads 1 \
  --protocol augmented --train-size 2000 --epochs 5 --batch-size 100 --lr 0.01 --knn-k 200 --out "$work/augmented.json" > "$work/eval.log" 2>&1 ||
  { cat "$work/eval.log"; fail "hcl-eval --protocol augmented failed"; }
$MPIRUN -np 2 -x OMP_NUM_THREADS=1 "$HCL_EVAL" --protocol pixels --dataset fashion-mnist --device cpu --threads 1 \
  --train-size 5000 --epochs 3 --out "$work/pixels.json" > "$work/eval.log" 2>&1 || { cat "$work/eval.log"; fail "hcl-eval --protocol pixels failed"; }
# The untrained-encoder baseline: random weights from --seed, the same on every rank.
$MPIRUN -np 2 -x OMP_NUM_THREADS=1 "$HCL_EVAL" --random-encoder small --dataset fashion-mnist --device cpu --threads 1 \
  --train-size 5000 --epochs 3 --seed 1 --out "$work/random.json" > "$work/eval.log" 2>&1 ||
  { cat "$work/eval.log"; fail "hcl-eval --random-encoder failed"; }
python3 - "$work/augmented.json" "$work/pixels.json" "$work/random.json" <<'PY' || exit 1
import json, sys
a, p, r = (json.load(open(f)) for f in sys.argv[1:])
assert r["random_encoder"] and r["arch"] == "small" and r["checkpoint"] == "" and r["input_dim"] == 128, r
assert 0.2 < r["top1"] <= 1 and r["knn"]["k"] == 200 and 0.2 < r["knn"]["top1"] <= 1, r  # about 0.45 and 0.53
assert a["protocol"] == "augmented" and a["train_images"] == 2000 and a["train_subset"], a
assert 0.3 < a["top1"] <= 1 and a["knn"]["k"] == 200 and a["knn"]["bank"] == 2000 and a["knn"]["test"] == 10000, a
assert 0.3 < a["knn"]["top1"] <= 1, a
assert p["protocol"] == "pixels" and p["arch"] == "pixels" and p["input_dim"] == 784 and p["checkpoint"] == "", p
assert 0.6 < p["top1"] <= 1 and p["knn"] is None, p  # a linear model on Fashion-MNIST pixels: about 0.8
print(f"augmented: top-1 {a['top1']:.3f}, kNN {a['knn']['top1']:.3f}; pixels: top-1 {p['top1']:.3f}; "
      f"random encoder: top-1 {r['top1']:.3f}, kNN {r['knn']['top1']:.3f}")
PY
echo "4 passed, 0 failed"
