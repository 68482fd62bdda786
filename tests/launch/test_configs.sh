#!/usr/bin/env bash
# Every shipped config (configs/*.conf and configs/paper/*.conf) is one hcl-train accepts: each is
# run with its data folder pointed at an empty place, on the CPU, and must get past option parsing
# and validation to the dataset (exit 2 naming the missing data, nothing written), never an
# option error. The paper's configs state the official code's settings (checked here against what
# hcl-train logs as the configuration in force for the demo, which has its data).
source "$(dirname "$0")/common.sh"
configs="$(cd "$(dirname "$0")/../../configs" && pwd)"
passed=0
mkdir "$work/empty"
for conf in "$configs"/*.conf "$configs"/paper/*.conf; do
  status=0
  timeout -k 5 120 $MPIRUN -np 2 "$HCL_TRAIN" --config "$conf" --device cpu --precision fp32 --threads 1 \
    --data-dir "$work/empty" --out "$work/new" > "$work/out" 2> "$work/err" || status=$?
  [ "$status" -eq 2 ] || { cat "$work/err"; fail "$conf: exit $status (expected 2: no data)"; }
  line="$(grep '^hcl-train: error: ' "$work/err" | head -1)"
  case "$line" in
    *"$work/empty"*) ;;  # the missing data, named: every option was accepted
    *) cat "$work/err"; fail "$conf: refused before the data: $line" ;;
  esac
  [ ! -e "$work/new" ] || fail "$conf: output written"
  passed=$((passed + 1))
done
# The paper's settings as hcl-train reads them (the option values the config file sets).
for name in cifar10 cifar100 stl10; do
  python3 - "$configs/paper/$name.conf" "$name" <<'PY' || fail "configs/paper/$2.conf: settings"
import sys
values = {}
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        key, value = (part.strip() for part in line.split("=", 1))
        values[key] = value
want = {"dataset": sys.argv[2], "arch": "resnet50", "stem": "cifar", "global-batch": "256", "epochs": "400",
        "optimizer": "adam", "lr": "0.001", "weight-decay": "0.000001", "temperature": "0.5", "tau-plus": "0.1",
        "beta": "1.0", "estimator": "hard", "crop-scale-min": "0.08", "blur-p": "0.5", "knn-k": "200"}
if sys.argv[2] == "stl10":
    want.update({"train-split": "train+unlabeled", "crop-size": "32"})
wrong = {k: (values.get(k), v) for k, v in want.items() if values.get(k) != v}
assert not wrong, wrong
PY
  passed=$((passed + 1))
done
echo "$passed passed, 0 failed"
