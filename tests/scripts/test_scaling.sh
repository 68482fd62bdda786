#!/usr/bin/env bash
# scripts/scaling and scripts/scaling_model end to end on a few steps: the harness runs W = 1 and 2,
# writes the JSON, table and plot with sane numbers; the model projects to 1024 ranks and checks
# itself against the harness's result.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/hcl-scaling-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

python3 "$root/scripts/scaling" --build "$HCL_BUILD_DIR" --ranks 1,2 --threads 1 --steps 3 --warmup 1 --batch 16 \
  --out "$work/weak" > "$work/weak.txt" || { cat "$work/weak.txt"; fail "weak scaling run"; }
for f in scaling.json scaling.txt efficiency.png; do [ -s "$work/weak/$f" ] || fail "no $f"; done
python3 - "$work/weak/scaling.json" <<'PY' || fail "weak scaling.json"
import json, sys
s = json.load(open(sys.argv[1]))
r = {x["ranks"]: x for x in s["results"]}
assert sorted(r) == [1, 2] and s["mode"] == "weak", s
assert r[1]["global_batch"] == 16 and r[2]["global_batch"] == 32 and r[2]["images_per_rank"] == 16
assert r[1]["efficiency"] == 1.0 and 0 < r[2]["efficiency"] < 2
for x in r.values():
    assert x["steps"] == 3 and x["images_per_s"] > 0 and x["split_ms"]["backward"] > 0, x
PY
python3 "$root/scripts/scaling" --build "$HCL_BUILD_DIR" --mode strong --ranks 1,2 --steps 2 --warmup 1 \
  --batch 32 --out "$work/strong" > /dev/null || fail "strong scaling run"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; assert [x["images_per_rank"] for x in r]==[32,16], r' \
  "$work/strong/scaling.json" || fail "strong scaling batches"
status=0
python3 "$root/scripts/scaling" --build "$HCL_BUILD_DIR" --mode strong --ranks 1,3 --batch 32 2> "$work/err" || status=$?
[ "$status" -eq 2 ] && grep -q "divisible by every rank count" "$work/err" || fail "strong scaling with 3 ranks of 32"

python3 "$root/scripts/scaling_model" --out "$work/model" > "$work/model.txt" || fail "projection"
for f in projection.txt projection.json projection.png; do [ -s "$work/model/$f" ] || fail "no $f"; done
grep -q "^resnet50   512  1024" "$work/model.txt" || fail "projection misses ResNet-50 at 1024 ranks"
# Both forms of the objective are projected; the ring's objective compute equals the all-gather's.
python3 - "$work/model/projection.json" <<'PY' || fail "projection of both objective forms"
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
key = lambda r: (r["arch"], r["images_per_rank"], r["ranks"])
forms = {f: {key(r): r for r in rows if r["form"] == f} for f in ("allgather", "ring")}
assert forms["allgather"].keys() == forms["ring"].keys() and ("resnet18", 512, 1024) in forms["ring"]
for k, ring in forms["ring"].items():
    gather = forms["allgather"][k]
    assert abs(ring["objective_ms"] - gather["objective_ms"]) < 1e-9, k
    assert (ring["gather_ms"] == 0) == (k[2] == 1) and ring["gather_ms"] >= 0, (k, ring)
PY
python3 "$root/scripts/scaling_model" --profile "$root/configs/scaling/cpu_here.json" --check "$work/weak/scaling.json" \
  --out "$work/model" > "$work/check.txt" || { cat "$work/check.txt"; fail "model check"; }
grep -qE "^  2 " "$work/check.txt" || { cat "$work/check.txt"; fail "model check has no W = 2 row"; }
echo "scaling harness and model: ok"
