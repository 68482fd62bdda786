# Helpers for the command-line tests of hcl-train (sourced). Expects HCL_TRAIN (the program) and
# MPIRUN (mpirun with its flags) in the environment, as CTest sets them.
set -euo pipefail

work="$(mktemp -d "${TMPDIR:-/tmp}/hcl-cli-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# train NP ARGS...: hcl-train under mpirun with NP ranks on small, fast settings (CPU, 1 thread),
# kNN and checkpoints at their epoch intervals without the wall-clock floors (runs here are
# seconds long; EVAL_INTERVAL, EVAL_MIN_SECONDS and CHECKPOINT_MIN_SECONDS change that). HCL_FAULT,
# when set, reaches every rank.
train() {
  local np="$1"; shift
  $MPIRUN -np "$np" -x OMP_NUM_THREADS=1 ${HCL_FAULT:+-x HCL_FAULT} "$HCL_TRAIN" --dataset fashion-mnist --arch "${ARCH:-small}" \
    --device cpu --threads 1 --batch-size "${BATCH:-32}" --log-interval 1 \
    --eval-interval "${EVAL_INTERVAL:-0}" --eval-min-seconds "${EVAL_MIN_SECONDS:-0}" \
    --checkpoint-min-seconds "${CHECKPOINT_MIN_SECONDS:-0}" --knn-bank-size "${KNN_BANK:-1000}" --knn-test-size "${KNN_TEST:-500}" --lr-schedule constant "$@"
}

# tiny_dataset DIR N [ok|truncated|corrupt]: the first N Fashion-MNIST images as a dataset folder.
tiny_dataset() {
  /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/make_tiny_dataset.py" /usr/share/datasets/fashion-mnist "$@"
}

# losses FILE: the train losses of a metrics.jsonl, one per line, full precision.
losses() {
  python3 -c 'import json,sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r["type"] == "train": print(repr(r["loss"]))' "$1"
}
