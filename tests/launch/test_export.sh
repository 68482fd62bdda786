#!/usr/bin/env bash
# Weights for Python users, checked against the real client: hcl-export writes a ResNet-18 that
# torchvision loads with strict=True and that computes the same features (1e-5); hcl-eval accepts
# exported files as well as checkpoints. Needs Debian's python3-torch and python3-torchvision
# (scripts/setup installs them); skipped (exit 77) without them.
source "$(dirname "$0")/common.sh"
python=/usr/bin/python3
"$python" -c 'import torch, torchvision' 2>/dev/null || { echo "python3-torch/torchvision missing: skipped"; exit 77; }

ARCH=resnet18 BATCH=8 KNN_BANK=50 KNN_TEST=20 train 1 --max-steps 2 --out "$work/r18" \
  > "$work/log" 2>&1 || { cat "$work/log"; fail "training resnet18"; }
"$HCL_EXPORT" --checkpoint "$work/r18/checkpoint.pt" --out "$work/r18.pt" \
  --verification-sample "$work/sample.pt" || fail "hcl-export"
"$HCL_EXPORT" --checkpoint "$work/r18/checkpoint.pt" --out "$work/r18_head.pt" --with-head || fail "hcl-export --with-head"
python3 -c 'import json,sys; m = json.load(open(sys.argv[1])); assert m["config"]["arch"] == "resnet18" and m["in_channels"] == 1, m' \
  "$work/r18.pt.json" || fail "metadata"
"$python" "$(dirname "$0")/check_export.py" "$work/r18.pt" "$work/sample.pt" 1 "$work/r18_head.pt" || fail "torchvision load"

# hcl-eval on an exported (small) encoder.
BATCH=16 KNN_BANK=50 KNN_TEST=20 train 1 --max-steps 2 --out "$work/small" > "$work/log" 2>&1 || fail "training small"
"$HCL_EXPORT" --checkpoint "$work/small/checkpoint.pt" --out "$work/small.pt" || fail "hcl-export small"
$MPIRUN -np 2 -x OMP_NUM_THREADS=1 "$HCL_EVAL" --checkpoint "$work/small.pt" --device cpu --threads 1 \
  --epochs 1 --out "$work/small_eval.json" > "$work/eval.log" 2>&1 || { cat "$work/eval.log"; fail "hcl-eval on an export"; }
python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); assert 0.3 < r["top1"] <= 1, r' "$work/small_eval.json" || fail "eval result"
echo "4 passed, 0 failed"
