#!/usr/bin/env python3
"""`gridssl score` on ratemaps that numpy wrote: the scorer works on another implementation's output.

    /usr/bin/python3 tests/scorecheck.py ./gridssl OUTDIR

Writes, with numpy alone, a float64 .npy of shape (units, 40, 40) over a 2 m box: hexagonal lattices
(rectified sums of three plane waves 60 degrees apart) with periods 0.3, 0.5 and 0.8 m and 20 % of
their bins unvisited (NaN), plus i.i.d. noise maps; runs `gridssl score ... --box 2`, reads
scores.csv and summary.json and checks what the lattices' construction fixes independently of
gridssl: the period (within 5 %), the orientation (within 3 degrees), score60 > 0.8 for the lattices
and |score60| < 0.3 for noise, and exactly three modules at the three periods; recomputes the Fourier
ring symmetry, the place fields and the border score of every map from their definitions; and scores a hexagonal module
of 36 units tiling its cell, which must come out as one module whose state space is a torus, each
unit's phase its shift.
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


def ring_symmetry(m, bin_m):
    """a2, a4, a6 of the ring within 15 % of the strongest frequency (periods up to the box)."""
    n = m.shape[0]
    P = 1
    while P < 4 * n:
        P *= 2
    grid = np.zeros((P, P))
    visited = ~np.isnan(m)
    grid[:n, :n] = np.where(visited, m - m[visited].mean(), 0)
    power = np.abs(np.fft.fft2(grid)) ** 2
    f = np.fft.fftfreq(P) * P  # signed index units
    ky, kx = np.meshgrid(f, f, indexing="ij")
    kk = np.hypot(kx, ky)
    allowed = kk >= P / n
    peak = np.unravel_index(np.argmax(np.where(allowed, power, -1)), power.shape)
    ring = (kk >= 0.85 * kk[peak]) & (kk <= 1.15 * kk[peak])
    theta = np.arctan2(ky[ring], kx[ring])
    p = power[ring]
    return [abs(np.sum(p * np.exp(1j * a * theta))) / p.sum() for a in (2, 4, 6)]


def place_fields(m, bin_m):
    """Number and mean diameter of the 4-connected regions above half the range, >= 0.01 m^2 each."""
    lo, hi = np.nanmin(m), np.nanmax(m)
    if not hi > lo:
        return 0, float("nan")
    _, sizes = components(np.nan_to_num(m, nan=-np.inf) > lo + (hi - lo) / 2)
    sizes = [s for s in sizes if s >= math.ceil(0.01 / bin_m ** 2 - 1e-9)]
    if not sizes:
        return 0, float("nan")
    return len(sizes), math.sqrt(4 * np.mean(sizes) * bin_m ** 2 / math.pi)


def components(above):
    """Sizes and labels of the 4-connected regions of a boolean map, numbered in scan order."""
    n = above.shape[0]
    label = np.zeros(above.shape, dtype=int)
    sizes = []
    for start in zip(*np.nonzero(above)):
        if label[start]:
            continue
        label[start] = len(sizes) + 1
        stack, size = [start], 0
        while stack:
            cy, cx = stack.pop()
            size += 1
            for ny, nx in ((cy, cx - 1), (cy, cx + 1), (cy - 1, cx), (cy + 1, cx)):
                if 0 <= ny < n and 0 <= nx < n and above[ny, nx] and not label[ny, nx]:
                    label[ny, nx] = len(sizes) + 1
                    stack.append((ny, nx))
        sizes.append(size)
    return label, sizes


def border_score(m, bin_m):
    """Solstad et al. 2008: (cM - dm) / (cM + dm) over fields above 0.3 peak and >= 200 cm^2."""
    n = m.shape[0]
    peak = np.nanmax(m)
    if not peak > 0:
        return float("nan")
    label, sizes = components(np.nan_to_num(m, nan=-np.inf) > 0.3 * peak)
    c = np.arange(n) + 0.5
    x, y = np.meshgrid(c, c)
    dist = np.minimum(np.minimum(x, n - x), np.minimum(y, n - y)) / (n / 2)
    walls = [(slice(None), 0), (slice(None), n - 1), (0, slice(None)), (n - 1, slice(None))]
    cmax, big = 0.0, [k + 1 for k, s in enumerate(sizes) if s >= math.ceil(0.02 / bin_m ** 2 - 1e-9)]
    if not big:
        return float("nan")
    for k in big:
        for w in walls:
            seen = ~np.isnan(m[w])
            if seen.any():
                cmax = max(cmax, np.sum((label[w] == k) & seen) / seen.sum())
    infield = np.isin(label, big)
    dm = np.sum(m[infield] * dist[infield]) / np.sum(m[infield])
    return (cmax - dm) / (cmax + dm)


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
        # the Fourier ring symmetry and the place fields, recomputed here from their definitions
        # (gridssl.c section 9) on the same maps
        ring = [ring_symmetry(m, 2.0 / 40) for m in maps]
        err_a = max(abs(float(r["fourier_a%d" % a]) - s[i]) for r, s in zip(rows, ring) for i, a in enumerate((2, 4, 6)))
        check(err_a < 1e-6, "Fourier ring a2, a4, a6 of all %d maps: numpy agrees to %.1e (< 1e-6)" % (len(maps), err_a))
        fields = [place_fields(m, 2.0 / 40) for m in maps]
        same = all(int(float(r["fields"])) == f[0] and (f[0] == 0 or abs(float(r["field_diameter_m"]) - f[1]) < 1e-6)
                   for r, f in zip(rows, fields))
        check(same, "place fields (count, mean diameter) of all %d maps: numpy agrees" % len(maps))
        borders = [border_score(m, 2.0 / 40) for m in maps]
        same = all((math.isnan(b) and r["border_score"] == "nan") or abs(float(r["border_score"]) - b) < 1e-6
                   for r, b in zip(rows, borders))
        check(same, "border scores of all %d maps: numpy agrees (lattices %.2f to %.2f)" % (
            len(maps), min(borders[:len(truth)]), max(borders[:len(truth)])))
    # a hexagonal module whose 36 units tile the lattice cell: gridssl must find one module, a torus,
    # and give each unit its shift back as a phase
    c = -1 + (np.arange(40) + 0.5) * 0.05
    x, y = np.meshgrid(c, c)
    period, orient = 0.5, 10.0
    a1 = period * np.array([math.cos(math.radians(orient)), math.sin(math.radians(orient))])
    a2 = period * np.array([math.cos(math.radians(orient + 60)), math.sin(math.radians(orient + 60))])
    k = 4 * math.pi / (math.sqrt(3) * period)
    shifts = [(i, j) for i in range(6) for j in range(6)]
    module = []
    for i, j in shifts:
        sx, sy = (i * a1 + j * a2) / 6
        total = sum(np.cos(k * (math.cos(a) * (x - sx) + math.sin(a) * (y - sy)))
                    for a in np.radians(orient + 30 + 60 * np.arange(3)))
        module.append(np.maximum(total, 0.0))
    path = os.path.join(out, "numpy_module.npy")
    np.save(path, np.array(module, dtype="<f8"))
    run = subprocess.run([gridssl, "score", path, "--box", "2", "--out", os.path.join(out, "module")],
                         capture_output=True, text=True)
    check(run.returncode == 0, "gridssl score reads a module written by numpy (%s)" % run.stderr.strip()[-120:])
    if run.returncode == 0:
        with open(os.path.join(out, "module", "summary.json")) as f:
            summary = json.load(f)
        with open(os.path.join(out, "module", "scores.csv")) as f:
            rows = list(csv.DictReader(f))
        space = summary["modules"][0].get("state_space", {}) if summary["n_modules"] == 1 else {}
        check(space.get("shape") == "torus" and space.get("units") == 36,
              "a hexagonal module tiling its cell is one module of 36 units whose state space is a torus (%s)" % space.get("shape"))
        # unit (i, j) sits i/6 and j/6 of the cell from unit (0, 0): its phase along each of the two
        # waves differs from unit (0, 0)'s by a multiple of 1/6
        ph = np.array([[float(r["phase_1"]), float(r["phase_2"])] for r in rows])
        d = (ph - ph[0]) * 6
        off = np.max(np.abs(d - np.round(d)))
        check(off < 0.05, "its units' phases are their shifts, to %.3f of a sixth of the cell (< 0.05)" % off)
        check(os.path.exists(os.path.join(out, "module", "state_space_module_1.png")), "state_space_module_1.png is written")
    print("%d passed, %d failed" % (sum(results), len(results) - sum(results)))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
