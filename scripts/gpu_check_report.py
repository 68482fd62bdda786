"""The JSON side of scripts/gpu_check: records, step verdicts and summary.txt.

  record  --config NAME --rc RC --cap S --stdout F --stderr F --results R [--args A] [--error TEXT]
          one benchmark invocation: its JSON (one document or JSON lines) goes to R, each record with
          "config" and "rc"; a failure (non-zero exit, timeout, no JSON) adds a record with "error".
          Prints "STATUS<TAB>NOTE".
  train   --config NAME --rc RC --cap S --stdout F --stderr F --metrics M --batch N --results R
          one hcl-train run: its throughput from metrics.jsonl as one record. Prints "STATUS<TAB>NOTE".
  tests   --rc RC --cap S --stdout F --stderr F --filter PATTERNS [--gpu]
          one gtest program: counts, and an ERROR when a pattern of the filter matched no test.
  summary --rows ROWS --header HEADER --results R --run TEXT [--rehearse]   (summary.txt on stdout)
  target-rows                        the names of the target table's rows
  stale   --build DIR --log F --rc RC --since STAMP NAME=BINARY...
          after a build of those targets with `ninja -k 0` (its output in F), the names of the programs
          that are not current: missing, not linked since STAMP after a timeout, or needing a step that
          ninja reported FAILED (looked up in `ninja -t commands NAME`).
"""
import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys

STATUSES = ("PASS", "FAIL", "ERROR", "NOT RUN", "SKIPPED (no GPU)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

R18_EAGER = "bench: R18 synthetic, joint, sync-bn on, eager"
R18_PERVIEW = "bench: R18 synthetic, per-view, sync-bn on, eager"
R18_EAGER_NOSYNC = "bench: R18 synthetic, joint, sync-bn off, eager"
R18_PERVIEW_NOSYNC = "bench: R18 synthetic, per-view, sync-bn off, eager"
R18_REAL = "bench: R18 real, joint, sync-bn on, eager"
R18_GRAPH = "bench: R18 synthetic, joint, sync-bn on, graph"
R18_REAL_GRAPH = "bench: R18 real, joint, sync-bn on, graph"
R50_EAGER = "bench: R50 synthetic, joint, sync-bn on, eager"
R50_GRAPH = "bench: R50 synthetic, joint, sync-bn on, graph"
REF18 = "reference: R18 paper's code"
TUNED18 = "reference: R18 tuned"
COMPILED18 = "reference: R18 tuned + torch.compile"
TUNED50 = "reference: R50 tuned"
TRAIN = "hcl-train: R18 synthetic dataset, joint, sync-bn on"

# (row, numerator (config, field), denominator (config, field), lowest ratio, highest ratio, issue):
# the targets of the GPU-step issues; the configs are rows of the steps table (scripts/gpu_check).
IPS = "images_per_s"
TARGETS = [
    ("R18 joint, sync-bn / tuned", (R18_EAGER, IPS), (TUNED18, IPS), 1.00, None, "GPU step 1"),
    ("R18 per-view, sync-bn / reference", (R18_PERVIEW, IPS), (REF18, IPS), 1.00, None, "GPU step 1"),
    ("R18 sync-bn on / off (joint)", (R18_EAGER, IPS), (R18_EAGER_NOSYNC, IPS), 0.97, None, "GPU step 1"),
    ("R18 sync-bn on / off (per-view)", (R18_PERVIEW, IPS), (R18_PERVIEW_NOSYNC, IPS), 0.97, None, "GPU step 1"),
    ("R18 real augmentation / synthetic (joint)", (R18_REAL, IPS), (R18_EAGER, IPS), 0.90, None, "GPU step 1"),
    ("R50 joint, sync-bn / tuned", (R50_EAGER, IPS), (TUNED50, IPS), 1.00, None, "GPU step 1"),
    ("hcl-train / hcl-bench-train (real, joint, graph)", (TRAIN, IPS), (R18_REAL_GRAPH, IPS), 0.90, 1.10, "GPU step 2"),
    ("hcl-train wall, whole epochs / hcl-bench-train", (TRAIN, "wall_images_per_s"), (R18_REAL_GRAPH, IPS), 0.90, 1.10,
     "GPU step 2"),
    ("R18 joint, sync-bn, graph / eager", (R18_GRAPH, IPS), (R18_EAGER, IPS), 1.00, None, "GPU step 2"),
    ("R18 joint, sync-bn, graph / tuned", (R18_GRAPH, IPS), (TUNED18, IPS), 1.25, None, "GPU step 2"),
    ("R18 joint, sync-bn, graph / tuned + compile", (R18_GRAPH, IPS), (COMPILED18, IPS), 1.00, None, "GPU step 2"),
    ("R18 real / synthetic (joint, graph)", (R18_REAL_GRAPH, IPS), (R18_GRAPH, IPS), 0.90, None, "GPU step 2"),
    ("R50 joint, sync-bn, graph / tuned", (R50_GRAPH, IPS), (TUNED50, IPS), 1.15, None, "GPU step 2"),
]


def text(path):
    try:
        with open(path, errors="replace") as f:
            return ANSI.sub("", f.read())
    except OSError:
        return ""


def last_line(path):
    lines = [l.strip() for l in text(path).splitlines() if l.strip()]
    return lines[-1][:300] if lines else "(nothing on stderr)"


def failure(rc, cap, stderr, why=None):
    """The error text of a failed invocation (why: the program's own words, else its last stderr
    line), or None when it exited 0 or did not run."""
    if rc in ("0", "-", ""):
        return None
    head = f"timed out after {cap} s" if rc in ("124", "137") else f"exit {rc}"
    return f"{head}: {why or last_line(stderr)}"


def number(rc):
    return int(rc) if rc.lstrip("-").isdigit() else rc


def json_objects(path):
    """One JSON document (an object), or every line that parses as a JSON object."""
    body = text(path)
    try:
        whole = json.loads(body)
        return [whole] if isinstance(whole, dict) else []
    except ValueError:
        pass
    objects = []
    for line in body.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                objects.append(json.loads(line))
            except ValueError:
                pass
    return [o for o in objects if isinstance(o, dict)]


def figure(r):
    """A short figure for the steps table."""
    parts = []
    if isinstance(r.get("images_per_s"), (int, float)):
        parts.append(f"{r['images_per_s']:.0f} img/s")
    if isinstance(r.get("wall_images_per_s"), (int, float)):
        parts.append(f"{r['wall_images_per_s']:.0f} img/s wall")
    if r.get("aten_ops_per_step") is not None:
        parts.append(f"{r['aten_ops_per_step']} ATen ops/step")
    if r.get("cuda_graph"):
        parts.append(f"graph: {r.get('graph_replays', '?')} replays, capture {r.get('graph_capture_s', 0):.2f} s")
    if r.get("multi_rank_paths_at_one_rank"):
        parts.append("multi-rank paths")
    if isinstance(r.get("peak_memory_mib"), (int, float)):
        parts.append(f"peak {r['peak_memory_mib']:.0f} MiB")
    results = r.get("results")
    if isinstance(results, list) and results:
        if "ns_per_score" in results[0]:  # hcl-bench-objective
            top = max(x.get("views", 0) for x in results)
            parts += [f"{x['estimator']} {x['ns_per_score']:.3g} ns/score" for x in results
                      if x.get("views") == top and x.get("chunk", 0) == 0]
            parts.append(f"at {top} views")
        for x in results:  # hcl-bench-decode
            if "images_per_s_per_worker" in x:
                parts.append(f"{x.get('case', '?')}: {x['images_per_s_per_worker']:.0f} img/s per worker")
    return ", ".join(parts)


def append(path, records):
    with open(path, "a") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def verdict(status, note):
    print(f"{status}\t{' '.join(note.split())}")


def cmd_record(a):
    if a.error:  # the script decided it without running anything
        append(a.results, [{"config": a.config, "args": a.args, "error": a.error}])
        return verdict("ERROR", a.error)
    objects = json_objects(a.stdout)
    for o in objects:
        o["config"], o["rc"] = a.config, number(a.rc)
    own = "; ".join(o["error"] for o in objects if o.get("error"))  # the program's own error records
    error = failure(a.rc, a.cap, a.stderr, own)
    if error is None and not objects:
        error = f"no JSON output: {last_line(a.stderr)}"
    if error and not own:
        objects.append({"config": a.config, "args": a.args, "rc": number(a.rc), "error": error})
    append(a.results, objects)
    if error or own:
        return verdict("ERROR", error or own)
    return verdict("PASS", "; ".join(filter(None, (figure(o) for o in objects))) or "ran")


def cmd_train(a):
    records = []
    try:
        with open(a.metrics) as f:
            records = [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError):
        pass
    train = [r for r in records if r.get("type") == "train"]
    epochs = [r for r in records if r.get("type") == "epoch"][a.skip_epochs:]  # after warm-up and capture
    error = failure(a.rc, a.cap, a.stderr) or (None if train else f"no train record in metrics.jsonl: {last_line(a.stderr)}")
    record = {"config": a.config, "impl": "hcl-train", "rc": number(a.rc), "batch": a.batch}
    if train:
        last = train[-1]  # the first window holds cuDNN's autotuning
        wall = (sum(r["steps"] for r in epochs) * a.batch / sum(r["wall_s"] for r in epochs)) if epochs else None
        record.update(images_per_s=last.get("images_per_s"), wall_images_per_s=wall, step_ms=last.get("step_ms"),
                      steps=last.get("step"))
    if error:
        record["error"] = error
    append(a.results, [record])
    if error:
        return verdict("ERROR", error)
    verdict("PASS", f"{figure(record)}, {record['steps']} steps")


def cmd_tests(a):
    out = text(a.stdout)
    ran = re.findall(r"^\[ RUN +\] (\S+)", out, re.M)
    count = lambda word: sum(int(n) for n in re.findall(rf"^\[ +{word} +\] (\d+) tests?", out, re.M))
    passed, skipped, failed = count("PASSED"), count("SKIPPED"), count("FAILED")
    empty = [p for p in a.filter.split(":") if p and not any(fnmatch.fnmatchcase(t, p) for t in ran)]
    counts = f"{len(ran)} test{'s' * (len(ran) != 1)}: {passed} passed, {skipped} skipped, {failed} failed"
    error = failure(a.rc, a.cap, a.stderr)
    if re.search(r"Running 0 tests", out) or not ran:
        return verdict("ERROR", f"the filter {a.filter} matched no test ({error or 'exit 0'})")
    if empty:
        return verdict("ERROR", f"{counts}; no test matches {', '.join(empty)}")
    if failed or (error and a.rc not in ("124", "137")):
        names = re.findall(r"^\[ +FAILED +\] (\S+\.\S+)", out, re.M)
        return verdict("FAIL", f"{counts}: {', '.join(dict.fromkeys(names)) or error}")
    if error:
        return verdict("ERROR", f"{counts} before: {error}")
    if skipped == len(ran):
        return verdict("ERROR" if a.gpu else "SKIPPED (no GPU)", f"{counts}: every test skipped itself")
    return verdict("PASS", counts + (" (skips on a GPU: look at the log)" if a.gpu and skipped else ""))


def read_rows(path):
    rows = []
    with open(path) as f:
        for line in f:
            name, status, rc, secs, note = (line.rstrip("\n").split("\t") + [""] * 5)[:5]
            rows.append((name, status, rc, secs, note))
    return rows


def value(records, config, field):
    for r in reversed(records):
        if r.get("config") == config and not r.get("error") and isinstance(r.get(field), (int, float)):
            return float(r[field])
    return None


def target_table(records, statuses, rehearse):
    lines = []
    for what, (num, nf), (den, df), lo, hi, issue in TARGETS:
        a, b = value(records, num, nf), value(records, den, df)
        target = f">= {lo:.2f}" if hi is None else f"{lo:.2f}-{hi:.2f}"
        figures = (f"{a:10.0f} {b:10.0f} {a / b:7.3f}" if a is not None and b is not None
                   else f"{'-':>10} {'-':>10} {'-':>7}")
        if rehearse:
            result, note = "SKIPPED (no GPU)", "CPU figures, not a target" if a is not None and b is not None else ""
        elif a is None or b is None:
            missing = [c for c, v in ((num, a), (den, b)) if v is None]
            result, note = "NOT RUN", "no figure from " + "; ".join(f"{c} ({statuses.get(c, '?')})" for c in missing)
        else:
            ok = a / b >= lo and (hi is None or a / b <= hi)
            result, note = ("PASS" if ok else "FAIL"), ""
        lines.append((what, result, f"{figures} {target:>12}  {issue:10}  {note}".rstrip()))
    return lines


def cmd_summary(a):
    rows = read_rows(a.rows)
    statuses = {r[0]: r[1] for r in rows}
    unknown = {c for t in TARGETS for c in (t[1][0], t[2][0])} - set(statuses)
    if unknown:  # a target naming a row that gpu_check does not have: a bug of the two scripts
        sys.exit(f"gpu_check_report: targets name rows gpu_check does not run: {sorted(unknown)}")
    records = []
    try:
        with open(a.results) as f:
            records = [json.loads(l) for l in f if l.strip()]
    except (OSError, ValueError) as e:
        print(f"results.jsonl unreadable: {e}")
    targets = target_table(records, statuses, a.rehearse)
    width = max(len(r[0]) for r in rows + targets) + 2
    print(text(a.header).rstrip())
    print(a.run)
    print()
    print("steps, in run order (status, exit code, seconds, figures or why)")
    print(f"{'step':{width}}{'status':18}{'rc':>5}{'s':>6}  note")
    for name, status, rc, secs, note in rows:
        print(f"{name:{width}}{status:18}{rc:>5}{secs:>6}  {note}".rstrip())
    print()
    print("targets of the GPU-step issues (images/s ratios; hcl, vs, ratio, target, issue)")
    print(f"{'check':{width}}{'result':18}{'hcl':>10} {'vs':>10} {'ratio':>7} {'target':>12}  issue")
    for what, result, rest in targets:
        print(f"{what:{width}}{result:18}{rest}")


def cmd_stale(a):
    failed = set()
    for line in text(a.log).splitlines():
        m = re.match(r"FAILED: (?:\[code=\d+\] )?(.*)", line)
        if m:
            failed.update(m.group(1).split())
    timed_out = a.rc in ("124", "137")
    for spec in a.programs:
        name, binary = spec.split("=", 1)
        stale = not os.access(binary, os.X_OK)
        if not stale and timed_out:
            stale = os.path.getmtime(binary) <= os.path.getmtime(a.since)
        if not stale and failed:
            # A dry run (ninja -n) cannot answer this: it stops at the CMake re-run that a
            # CONFIGURE_DEPENDS glob schedules on every build. The steps a target needs can.
            steps = subprocess.run(["ninja", "-C", a.build, "-t", "commands", name], capture_output=True, text=True)
            stale = steps.returncode != 0 or not failed.isdisjoint(steps.stdout.split())
        if stale:
            print(name)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("record", "train", "tests"):
        s = sub.add_parser(name)
        s.add_argument("--rc", default="-")
        s.add_argument("--cap", default="?")
        s.add_argument("--stdout", default="/dev/null")
        s.add_argument("--stderr", default="/dev/null")
        if name != "tests":
            s.add_argument("--config", required=True)
            s.add_argument("--results", required=True)
    sub.choices["record"].add_argument("--args", default="")
    sub.choices["record"].add_argument("--error")
    sub.choices["train"].add_argument("--metrics", required=True)
    sub.choices["train"].add_argument("--batch", type=int, required=True)
    sub.choices["train"].add_argument("--skip-epochs", type=int, default=5)
    sub.choices["tests"].add_argument("--filter", required=True)
    sub.choices["tests"].add_argument("--gpu", action="store_true")
    s = sub.add_parser("summary")
    for arg in ("--rows", "--header", "--results", "--run"):
        s.add_argument(arg, required=True)
    s.add_argument("--rehearse", action="store_true")
    sub.add_parser("target-rows")
    s = sub.add_parser("stale")
    for arg in ("--build", "--log", "--rc", "--since"):
        s.add_argument(arg, required=True)
    s.add_argument("programs", nargs="+", metavar="NAME=BINARY")
    a = p.parse_args()
    if a.cmd == "target-rows":
        print("\n".join(t[0] for t in TARGETS))
    else:
        {"record": cmd_record, "train": cmd_train, "tests": cmd_tests, "summary": cmd_summary,
         "stale": cmd_stale}[a.cmd](a)


if __name__ == "__main__":
    main()
