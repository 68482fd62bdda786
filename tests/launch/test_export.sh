#!/usr/bin/env bash
# Weights for Python users, checked against the real client: python/hcl_weights.py builds every
# encoder hcl exports (ResNet-18 with the CIFAR stem, ResNet-50 with the ImageNet stem, both through
# torchvision; the small conv net), loads each export with strict=True and computes the same features
# (1e-5), the projection head too; hcl-eval accepts exported files as well as checkpoints. Needs Debian's python3-torch and python3-torchvision
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
"$python" "$(dirname "$0")/check_export.py" "$work/r18.pt" "$work/sample.pt" "$work/r18_head.pt" || fail "resnet18 in Python"
ARCH=resnet50 BATCH=4 KNN_BANK=20 KNN_TEST=10 train 1 --stem imagenet --max-steps 1 --out "$work/r50" \
  > "$work/log" 2>&1 || { cat "$work/log"; fail "training resnet50"; }
"$HCL_EXPORT" --checkpoint "$work/r50/checkpoint.pt" --out "$work/r50.pt" --verification-sample "$work/r50_sample.pt" ||
  fail "hcl-export resnet50"
"$python" "$(dirname "$0")/check_export.py" "$work/r50.pt" "$work/r50_sample.pt" || fail "resnet50 (imagenet stem) in Python"

# hcl-eval on an exported (small) encoder.
BATCH=16 KNN_BANK=50 KNN_TEST=20 train 1 --max-steps 2 --out "$work/small" > "$work/log" 2>&1 || fail "training small"
"$HCL_EXPORT" --checkpoint "$work/small/checkpoint.pt" --out "$work/small.pt" --verification-sample "$work/small_sample.pt" ||
  fail "hcl-export small"
"$HCL_EXPORT" --checkpoint "$work/small/checkpoint.pt" --out "$work/small_head.pt" --with-head || fail "hcl-export small --with-head"
"$python" "$(dirname "$0")/check_export.py" "$work/small.pt" "$work/small_sample.pt" "$work/small_head.pt" || fail "small in Python"
$MPIRUN -np 2 -x OMP_NUM_THREADS=1 "$HCL_EVAL" --checkpoint "$work/small.pt" --device cpu --threads 1 \
  --epochs 1 --out "$work/small_eval.json" > "$work/eval.log" 2>&1 || { cat "$work/eval.log"; fail "hcl-eval on an export"; }
python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); assert 0.3 < r["top1"] <= 1, r' "$work/small_eval.json" || fail "eval result"
echo "6 passed, 0 failed"
