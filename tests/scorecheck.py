#!/usr/bin/env python3
"""`gridssl score` on ratemaps that numpy wrote: the scorer works on another implementation's output.

    /usr/bin/python3 tests/scorecheck.py ./gridssl OUTDIR

Writes, with numpy alone, a float64 .npy of shape (units, 40, 40) over a 2 m box: hexagonal lattices
(rectified sums of three plane waves 60 degrees apart) with periods 0.3, 0.5 and 0.8 m and 20 % of
their bins unvisited (NaN), plus i.i.d. noise maps; runs `gridssl score ... --box 2`, reads
scores.csv and summary.json and checks what the lattices' construction fixes independently of
gridssl: the period (within 5 %), the orientation (within 3 degrees), score60 > 0.8 for the lattices
and |score60| < 0.3 for noise, and exactly three modules at the three periods.
Prints "ok   ..." / "FAIL ..." lines and "N passed, N failed".
"""
import csv
import json
import math
import os
import subprocess
import sys

import numpy as np


def lattice(n, box, period, orient_deg, phase, rng):
    c = -box / 2 + (np.arange(n) + 0.5) * box / n
    x, y = np.meshgrid(c - phase[0], c - phase[1])  # row = y (south first), column = x
    k = 4 * math.pi / (math.sqrt(3) * period)
    total = sum(np.cos(k * (math.cos(a) * x + math.sin(a) * y))
                for a in np.radians(orient_deg + 30 + 60 * np.arange(3)))
    m = np.maximum(total, 0.0)
    m[rng.random((n, n)) < 0.2] = np.nan
    return m


def main():
    gridssl, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(1)
    periods = [0.3, 0.5, 0.8]
    truth = [(p, o) for p in periods for o in (4.0, 17.0, 33.0, 52.0)]
    maps = [lattice(40, 2.0, p, o, rng.uniform(-0.3, 0.3, 2), rng) for p, o in truth]
    maps += [rng.random((40, 40)) for _ in range(8)]
    path = os.path.join(out, "numpy_maps.npy")
    np.save(path, np.array(maps, dtype="<f8"))
    run = subprocess.run([gridssl, "score", path, "--box", "2", "--out", os.path.join(out, "scored")],
                         capture_output=True, text=True)
    results = []

    def check(ok, what):
        results.append(ok)
        print(("ok   " if ok else "FAIL ") + what)

    check(run.returncode == 0, "gridssl score reads a .npy written by numpy.save (%s)" % run.stderr.strip()[-120:])
    if run.returncode == 0:
        with open(os.path.join(out, "scored", "scores.csv")) as f:
            rows = list(csv.DictReader(f))
        with open(os.path.join(out, "scored", "summary.json")) as f:
            summary = json.load(f)
        lat = rows[:len(truth)]
        err_p = max(abs(float(r["period_m"]) / p - 1) for r, (p, _) in zip(lat, truth))
        err_o = max(min(abs(float(r["orientation_deg"]) - o) % 60, 60 - abs(float(r["orientation_deg"]) - o) % 60)
                    for r, (_, o) in zip(lat, truth))
        low = min(float(r["score60"]) for r in lat)
        noise = max(abs(float(r["score60"])) for r in rows[len(truth):])
        check(err_p < 0.05, "lattices with 20%% holes: period within %.2f%% (< 5%%)" % (100 * err_p))
        check(err_o < 3, "lattices: orientation within %.2f degrees (< 3)" % err_o)
        check(low > 0.8, "lattices: score60 >= %.3f (> 0.8)" % low)
        check(noise < 0.3, "noise: |score60| <= %.3f (< 0.3)" % noise)
        mods = [m["period_m"] for m in summary["modules"]]
        check(summary["n_modules"] == 3 and all(abs(m / p - 1) < 0.05 for m, p in zip(mods, periods)),
              "summary.json: %d modules at %s m (want 0.3, 0.5, 0.8)" % (summary["n_modules"], mods))
    print("%d passed, %d failed" % (sum(results), len(results) - sum(results)))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
