#!/usr/bin/env bash
# scripts/experiment end to end on a tiny grid (synthetic data, 2 configurations x 2 seeds, a few
# steps, a 2-epoch probe with hcl-eval's kNN, both baselines): it writes results.json, the table and
# both plots with sane numbers; --publish writes them into a page's generated block; a
# second invocation skips every finished run; --dry-run prints the commands and a time estimate;
# a bad grid file is exit 2 with one line.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/hcl-experiment-test.XXXXXX")"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$work/tiny.conf" <<'CONF'
[experiment]
name = tiny
seeds = 0, 1
ranks = 1
threads = 1
probe = features
probe-epochs = 2
probe-knn-k = 20
baseline = pixels, random

[train]
dataset = synthetic
arch = small
batch-size = 16
max-steps = 3
log-interval = 1
knn-bank-size = 256
knn-test-size = 128
device = cpu

[method simclr]
estimator = easy

[method hard]
estimator = hard
beta = 1
tau-plus = 0.1
CONF
exp() { python3 "$root/scripts/experiment" --build "$HCL_BUILD_DIR" --out "$work/out" "$work/tiny.conf" "$@"; }

exp > "$work/first.txt" 2>&1 || { cat "$work/first.txt"; fail "first invocation"; }
for f in results.json results.md accuracy_vs_beta.png knn_over_training.png; do
  [ -s "$work/out/$f" ] || { cat "$work/first.txt"; fail "no $f"; }
done
[ "$(grep -cE '^\[[0-9]/4\] .*: training$' "$work/first.txt")" -eq 4 ] || { cat "$work/first.txt"; fail "expected 4 runs trained"; }
python3 - "$work/out/results.json" <<'PY' || fail "results.json"
import json, sys
r = json.load(open(sys.argv[1]))
assert len(r["runs"]) == 4, len(r["runs"])
assert [s["label"] for s in r["summary"]] == ["simclr", "hard"], r["summary"]
for run in r["runs"]:
    assert 0 <= run["linear_top1"] <= 1 and 0 <= run["knn_top1"] <= 1 and run["knn_source"] == "hcl-eval", run
    assert 0 <= run["linear_train_top1"] <= 1, run
    assert run["steps"] == 3 and run["global_batch"] == 16 and run["images_per_s"] > 0, run
    assert run["final_loss"] > 0 and run["train_wall_s"] > 0 and run["probe_epochs"] == 2, run
    assert [s for s, _ in run["knn_curve"]] == [0, 3], run["knn_curve"]
for s in r["summary"]:
    assert s["seeds"] == [0, 1] and s["linear_top1_std"] >= 0, s
seeds = {run["seed"]: run["final_loss"] for run in r["runs"] if run["label"] == "hard"}
assert seeds[0] != seeds[1], "two seeds trained the same run"
b = r["baselines"]
assert sorted(b) == ["pixels", "random"], b
assert b["pixels"]["seeds"] == [0] and 0 < b["pixels"]["linear_top1_mean"] <= 1 and b["pixels"]["knn_top1_mean"] is None, b
assert b["random"]["seeds"] == [0, 1] and 0 < b["random"]["linear_top1_mean"] <= 1, b
assert 0 < b["random"]["knn_top1_mean"] <= 1 and b["random"]["linear_top1_std"] >= 0, b
for seed in (0, 1):
    p = json.load(open(f"{sys.argv[1].rsplit('/', 1)[0]}/baseline-random/seed{seed}/linear_eval.json"))
    assert p["random_encoder"] and p["arch"] == "small" and p["knn"]["k"] == 20, p
PY
grep -q '^| hard | 2 | ' "$work/out/results.md" || fail "no hard row in the table"
grep -q '^| raw pixels (no training) | 1 | ' "$work/out/results.md" || fail "no pixel baseline row in the table"
grep -q '^| untrained encoder (random weights) | 2 | ' "$work/out/results.md" || fail "no random-encoder row in the table"

# --publish: a new page gets a title and the generated block, the plots beside it; on an existing
# page only the block changes (the author's text around it is kept); a page without one block is
# refused with exit 2 and left as it was.
status=0
exp --collect-only --publish "$work/docs/page.md" > "$work/pub.txt" 2>&1 || status=$?
[ "$status" -eq 2 ] && grep -q "docs/page.md: no folder .*docs" "$work/pub.txt" ||
  { cat "$work/pub.txt"; fail "--publish into a missing folder (status $status)"; }
mkdir "$work/docs"
exp --collect-only --publish "$work/docs/page.md" > "$work/pub.txt" 2>&1 || { cat "$work/pub.txt"; fail "--publish"; }
for f in page.md page.json page_accuracy_vs_beta.png page_knn_over_training.png; do
  [ -s "$work/docs/$f" ] || { cat "$work/pub.txt"; fail "--publish wrote no $f"; }
done
grep -q '^\*4 of 4 runs finished' "$work/docs/page.md" ||
  { cat "$work/docs/page.md"; fail "the page does not count the runs"; }
grep -q '^| hard | 2 | ' "$work/docs/page.md" || fail "no hard row in the published page"
cmp -s "$work/docs/page.json" "$work/out/results.json" || fail "the page's JSON is not the grid's results.json"
grep -q '^| hard | 2 | -\?[0-9.]* ± [0-9.]* | [0-2] of 2 | ' "$work/docs/page.md" || { cat "$work/docs/page.md"; fail "no paired comparison"; }
grep -q '^| raw pixels (no training) | 1 | [0-9.]* | ' "$work/docs/page.md" || fail "one pixel run shows a spread"
{ echo "# My reading"; echo; echo "Before the block."; cat "$work/docs/page.md" | sed -n '/^<!-- begin/,$p'; echo; echo "After the block."; } > "$work/docs/edited.md"
mv "$work/docs/edited.md" "$work/docs/page.md"
sed -i 's/^| hard | 2 | .*/| stale row |/' "$work/docs/page.md"
exp --collect-only --publish "$work/docs/page.md" > "$work/pub.txt" 2>&1 || { cat "$work/pub.txt"; fail "--publish again"; }
head -3 "$work/docs/page.md" | grep -q "^Before the block.$" && tail -1 "$work/docs/page.md" | grep -q "^After the block.$" ||
  { cat "$work/docs/page.md"; fail "--publish changed the text around its block"; }
! grep -q "stale row" "$work/docs/page.md" && grep -q '^| hard | 2 | ' "$work/docs/page.md" ||
  { cat "$work/docs/page.md"; fail "--publish did not rewrite its block"; }
printf '# A page with no block\n' > "$work/docs/plain.md"
status=0
exp --collect-only --publish "$work/docs/plain.md" > "$work/pub.txt" 2>&1 || status=$?
[ "$status" -eq 2 ] && grep -q "plain.md: needs exactly one generated block" "$work/pub.txt" &&
  [ "$(cat "$work/docs/plain.md")" = "# A page with no block" ] && [ ! -e "$work/docs/plain_accuracy_vs_beta.png" ] ||
  { cat "$work/pub.txt"; fail "a page without a block (status $status)"; }

# Resumable: nothing runs again, the runs' files are untouched.
kept=("$work/out/hard/seed1/metrics.jsonl" "$work/out/baseline/linear_eval.json" "$work/out/baseline-random/seed1/linear_eval.json")
before="$(stat -c %Y "${kept[@]}")"
exp > "$work/second.txt" 2>&1 || { cat "$work/second.txt"; fail "second invocation"; }
[ "$(grep -c 'finished, skipped' "$work/second.txt")" -eq 4 ] || { cat "$work/second.txt"; fail "expected 4 skipped runs"; }
grep -q '^0 run(s) done now' "$work/second.txt" || fail "the second invocation ran something"
[ "$before" = "$(stat -c %Y "${kept[@]}")" ] ||
  fail "finished runs were rewritten"

# Dry run: the commands and the estimate from the measured images/s.
exp --dry-run > "$work/dry.txt" || fail "dry run"
[ "$(grep -c 'hcl-train .*--resume auto' "$work/dry.txt")" -eq 4 ] || { cat "$work/dry.txt"; fail "dry-run train commands"; }
grep -q 'images/s (measured by finished runs)' "$work/dry.txt" || { cat "$work/dry.txt"; fail "dry-run estimate"; }

# A cut-off last line in a finished run's metrics.jsonl (a kill mid-write): collected all the same,
# with a warning naming the file.
printf '{"type": "train", "step": 4, "lo' >> "$work/out/hard/seed1/metrics.jsonl"
exp --collect-only > "$work/cut.txt" 2>&1 || { cat "$work/cut.txt"; fail "collect after a cut-off line"; }
grep -q "hard/seed1/metrics.jsonl: the last line is cut off; dropped" "$work/cut.txt" || { cat "$work/cut.txt"; fail "no cut-off warning"; }

# A run folder made by another configuration is refused, never skipped or collected as this one's.
sed -i 's/^tau-plus = 0.1$/tau-plus = 0.2/' "$work/tiny.conf"
status=0
exp --collect-only > "$work/other.txt" 2>&1 || status=$?
[ "$status" -eq 2 ] && grep -q "hard/seed0: .*tau-plus.*use another --out" "$work/other.txt" ||
  { cat "$work/other.txt"; fail "a run folder of another configuration (status $status)"; }

# Two configurations that would share a folder, and a method name that would leave --out.
printf '[experiment]\nseeds = 0\n[method a]\nbeta = 1, 2\n[method a_beta1]\nbeta = 0\n' > "$work/clash.conf"
status=0
python3 "$root/scripts/experiment" "$work/clash.conf" --out "$work/clash" --dry-run 2> "$work/err" > /dev/null || status=$?
[ "$status" -eq 2 ] && grep -q "'a beta=1' and 'a_beta1' would share the run folder 'a_beta1'" "$work/err" ||
  { cat "$work/err"; fail "two configurations in one folder (status $status)"; }
printf '[experiment]\nseeds = 0\n[method baseline-random]\nbeta = 1\n' > "$work/taken.conf"
status=0
python3 "$root/scripts/experiment" "$work/taken.conf" --out "$work/taken" --dry-run 2> "$work/err" > /dev/null || status=$?
[ "$status" -eq 2 ] && grep -q "'a baseline' and 'baseline-random' would share the run folder" "$work/err" ||
  { cat "$work/err"; fail "a method in a baseline's folder (status $status)"; }
printf '[experiment]\nseeds = 0\n[method ..]\nbeta = 1\n' > "$work/dots.conf"
python3 "$root/scripts/experiment" "$work/dots.conf" --out "$work/dots" --dry-run > "$work/dots.txt" 2>&1 ||
  { cat "$work/dots.txt"; fail "dry run of [method ..]"; }
grep -q -- "--out $work/dots/-/seed0" "$work/dots.txt" || { cat "$work/dots.txt"; fail "[method ..] left --out"; }

# A bad grid: exit 2, one line naming the file.
printf '[experiment]\nseeds = 0\n[trian]\nx = 1\n' > "$work/bad.conf"
status=0
python3 "$root/scripts/experiment" "$work/bad.conf" --out "$work/bad" 2> "$work/err" || status=$?
[ "$status" -eq 2 ] && grep -q "bad.conf: unknown section" "$work/err" || fail "bad grid file (status $status)"
echo "experiment script: ok"
