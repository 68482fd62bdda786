#!/usr/bin/env bash
# The layout's one rule, checked on every source: a folder includes only folders of lower layers
# (README, Layout: launch and bench -> train -> eval, persist -> data, model, loss, dist -> core),
# so that no arrow runs back up and folders form no cycle. Fails naming the file and the include.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
git ls-files '*.cpp' '*.h' | python3 -c '
import re, sys
layer = {"core": 0, "loss": 1, "dist": 1, "data": 1, "model": 1, "eval": 2, "persist": 2, "train": 3,
         "launch": 4, "bench": 4}
bad, edges = [], set()
for path in sys.stdin.read().split():
    top = path.split("/")[0]
    if top not in layer:
        continue  # tests/ may include anything
    for n, line in enumerate(open(path), 1):
        m = re.match(r"\s*#\s*include\s+\"([a-z_]+)/", line)
        if m and m.group(1) in layer and m.group(1) != top:
            edges.add((top, m.group(1)))
            if layer[m.group(1)] >= layer[top]:
                bad.append(f"{path}:{n}: {top}/ (layer {layer[top]}) includes {m.group(1)}/ (layer {layer[m.group(1)]})")
for b in bad:
    print("FAIL:", b)
print(f"{len(edges)} folder dependencies, all downward" if not bad else f"{len(bad)} include(s) run up or sideways")
sys.exit(1 if bad else 0)
'
