#!/usr/bin/env bash
# --objective-comm through hcl-train: the ring forms run from the command line, say so in the
# start-up line, and train like the all-gather form (the same losses over a few steps, to float32
# rounding; the exact equality of losses and gradients is tests/train's).
source "$(dirname "$0")/common.sh"

for form in allgather ring ring-keep; do
  train 3 --max-steps 4 --seed 5 --objective-comm "$form" --out "$work/$form" > "$work/$form.log" 2>&1 ||
    { cat "$work/$form.log"; fail "hcl-train --objective-comm $form failed"; }
  losses "$work/$form/metrics.jsonl" > "$work/$form.losses"
done
grep -q "views by all-gather (--objective-comm allgather)" "$work/allgather.log" || fail "no all-gather start-up line"
grep -q "views by ring (--objective-comm ring: 2 block shifts each way" "$work/ring.log" || fail "no ring start-up line"
grep -q "views by ring (--objective-comm ring-keep: 2 block shifts forward, 2 gradient shifts backward" \
  "$work/ring-keep.log" || fail "no ring-keep start-up line"
python3 - "$work"/{allgather,ring,ring-keep}.losses <<'PY' || exit 1
import sys
runs = [[float(x) for x in open(f)] for f in sys.argv[1:]]
assert all(len(r) == 4 for r in runs), runs
for r in runs[1:]:
    assert all(abs(a - b) <= 1e-4 * abs(a) for a, b in zip(runs[0], r)), runs
for step, losses in enumerate(zip(*runs), 1):
    print(f"step {step} loss, allgather / ring / ring-keep:", " / ".join(f"{x:.6f}" for x in losses))
PY
echo "3 forms agree"
