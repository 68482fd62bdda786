#!/usr/bin/env python3
"""hcl's plots: one module that draws line plots with gnuplot (PNG), used by scripts/plot_metrics
(the curves of metrics.jsonl), scripts/scaling (efficiency against ranks) and scripts/scaling_model
(the projected efficiency) and scripts/experiment (accuracy against beta, with error bars). Each caller describes its plot as data (title, axes, series of points);
the gnuplot script is written here only, with the data in temporary files, never pasted into code.

As a program:  python3 scripts/hcl_plot.py metrics PLOT_DIR RUN_DIR [RUN_DIR...]
(what scripts/plot_metrics runs): loss, learning rate, beta and images/s against step, and kNN
top-1 against epochs, one curve per run, labelled with its folder name.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile


class GnuplotMissing(RuntimeError):
    pass


def have_gnuplot():
    return shutil.which("gnuplot") is not None


def _quote(text):
    """A gnuplot string literal (single quotes: no escapes but a doubled quote)."""
    return "'" + str(text).replace("'", "''") + "'"


def line_plot(path, series, title, xlabel, ylabel, *, logscale_x=None, yrange=None, ideal=None,
              key="outside right", size=(900, 540), point_size=None):
    """Writes the PNG `path`: one curve with points per (label, [(x, y), ...]) in `series` (empty
    series are left out). logscale_x: the base of a logarithmic x axis; yrange: (low, high);
    ideal: a constant drawn as a dashed grey line titled 'ideal'. Returns False (and draws nothing)
    when no series has a point; raises GnuplotMissing without gnuplot."""
    if not have_gnuplot():
        raise GnuplotMissing("gnuplot is missing (scripts/setup installs gnuplot-nox)")
    series = [(label, points) for label, points in series if points]
    if not series:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        curves = []
        if ideal is not None:
            curves.append(f"{ideal} title 'ideal' dashtype 2 linecolor rgb 'gray'")
        for i, (label, points) in enumerate(series):
            data = os.path.join(tmp, f"series{i}.dat")
            with open(data, "w") as f:
                for x, y in points:
                    f.write(f"{x!r} {y!r}\n")
            style = "with linespoints pointtype 7" + (f" pointsize {point_size}" if point_size else "")
            curves.append(f"{_quote(data)} using 1:2 {style} title {_quote(label)}")
        lines = [f"set terminal pngcairo size {size[0]},{size[1]} font ',11'",
                 f"set output {_quote(path)}",
                 f"set title {_quote(title)}",
                 f"set xlabel {_quote(xlabel)}",
                 f"set ylabel {_quote(ylabel)}",
                 "set grid",
                 f"set key {key}"]
        if logscale_x:
            lines.append(f"set logscale x {logscale_x}")
        if yrange:
            lines.append(f"set yrange [{yrange[0]}:{yrange[1]}]")
        lines.append("plot " + ", ".join(curves))
        subprocess.run(["gnuplot"], input="\n".join(lines) + "\n", text=True, check=True)
    return True


def errorbar_plot(path, series, title, xlabel, ylabel, *, reference=None, reference_title="reference",
                  size=(900, 540)):
    """Writes the PNG `path`: one curve with error bars per (label, [(x, y, error), ...]) in `series`
    (empty series are left out); reference: a constant drawn as a dashed grey line titled
    reference_title. Returns False (and draws nothing) when no series has a point; raises
    GnuplotMissing without gnuplot."""
    if not have_gnuplot():
        raise GnuplotMissing("gnuplot is missing (scripts/setup installs gnuplot-nox)")
    series = [(label, points) for label, points in series if points]
    if not series:
        return False
    xs = [x for _, points in series for x, _, _ in points]
    pad = max(0.1, 0.1 * (max(xs) - min(xs)))
    with tempfile.TemporaryDirectory() as tmp:
        curves = []
        if reference is not None:
            curves.append(f"{reference!r} title {_quote(reference_title)} dashtype 2 linecolor rgb 'gray'")
        for i, (label, points) in enumerate(series):
            data = os.path.join(tmp, f"series{i}.dat")
            with open(data, "w") as f:
                for x, y, err in points:
                    f.write(f"{x!r} {y!r} {err!r}\n")
            curves.append(f"{_quote(data)} using 1:2:3 with yerrorlines pointtype 7 title {_quote(label)}")
        lines = [f"set terminal pngcairo size {size[0]},{size[1]} font ',11'",
                 f"set output {_quote(path)}",
                 f"set title {_quote(title)}",
                 f"set xlabel {_quote(xlabel)}",
                 f"set ylabel {_quote(ylabel)}",
                 f"set xrange [{min(xs) - pad!r}:{max(xs) + pad!r}]",
                 "set grid",
                 "set key outside right",
                 "plot " + ", ".join(curves)]
        subprocess.run(["gnuplot"], input="\n".join(lines) + "\n", text=True, check=True)
    return True


# The plots of metrics.jsonl: file, title, x label, y label, record type, x field, y of a record.
METRIC_PLOTS = [
    ("loss.png", "Contrastive loss", "step", "loss", "train", "step", lambda r: r["loss"]),
    ("lr.png", "Learning rate", "step", "lr", "train", "step", lambda r: r["lr"]),
    ("beta.png", "Hardness beta", "step", "beta", "train", "step", lambda r: r["beta"]),
    ("throughput.png", "Throughput", "step", "images/s (global)", "train", "step", lambda r: r["images_per_s"]),
    ("knn.png", "kNN top-1 accuracy", "epochs of training", "top-1 (%)", "knn", "epochs_done",
     lambda r: 100 * r["top1"]),
]


def plot_metrics(plot_dir, run_dirs):
    """The METRIC_PLOTS of one or more runs on shared axes; returns the files written."""
    runs = []
    for run in run_dirs:
        path = os.path.join(run, "metrics.jsonl")
        if not os.path.isfile(path) or os.path.getsize(path) == 0:
            raise FileNotFoundError(f"no {path}")
        with open(path) as f:
            runs.append((os.path.basename(os.path.normpath(run)), [json.loads(l) for l in f if l.strip()]))
    os.makedirs(plot_dir, exist_ok=True)
    written = []
    for file, title, xlabel, ylabel, kind, x, y in METRIC_PLOTS:
        series = [(name, [(r[x], y(r)) for r in records if r["type"] == kind]) for name, records in runs]
        out = os.path.join(plot_dir, file)
        if line_plot(out, series, title, xlabel, ylabel, point_size=0.4):
            written.append(out)
    return written


def main(argv):
    if len(argv) < 3 or argv[0] != "metrics":
        print("usage: hcl_plot.py metrics PLOT_DIR RUN_DIR [RUN_DIR...]", file=sys.stderr)
        return 2
    try:
        for path in plot_metrics(argv[1], argv[2:]):
            print(path)
    except (GnuplotMissing, FileNotFoundError) as e:
        print(f"plot_metrics: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
