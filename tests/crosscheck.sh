#!/bin/sh
# tests/crosscheck.sh - what `make crosscheck` runs: train small runs, dump one batch of each with
# `gridssl dump`, and let numpy (tests/crosscheck.py) recompute positions, states, every loss term
# and directional derivatives of the gradient, independently of gridssl's C code; then
# tests/ideal_codes.py checks its own loss against the default-size dump, tests/seed_effect.py its
# permutation test on searches whose answer is known, and tests/scorecheck.py
# scores ratemaps that numpy wrote with `gridssl score`; tests/basecheck.py recomputes dumps of the
# two supervised baselines.
# Needs python3-numpy (Debian); gridssl itself and `make test` do not.
set -u
PY=${1:-/usr/bin/python3}
T=tests/out/crosscheck
rm -rf "$T"
mkdir -p "$T"
: > "$T/all.log"
crosscheck() { # crosscheck NAME key=value...
    name=$1
    shift
    echo "# crosscheck $name: $*"
    if ./gridssl train --config data/tiny.cfg "$@" --out "$T/$name" > /dev/null 2> "$T/$name.stderr" &&
        ./gridssl dump "$T/$name/checkpoint.bin" "$T/$name/dump" > /dev/null 2>> "$T/$name.stderr"; then
        "$PY" tests/crosscheck.py "$T/$name/dump" > "$T/$name.log" 2>&1 || true
        grep -v 'passed, .* failed$' "$T/$name.log" | sed "s/^\(ok  \|FAIL\) /\1 [$name] /"
        grep -v 'passed, .* failed$' "$T/$name.log" | sed "s/^\(ok  \|FAIL\) /\1 [$name] /" >> "$T/all.log"
        grep -q 'passed, 0 failed$' "$T/$name.log" || echo "FAIL [$name] crosscheck.py reported failures" | tee -a "$T/all.log"
    else
        echo "FAIL [$name] gridssl train/dump failed: $(tail -1 "$T/$name.stderr")" | tee -a "$T/all.log"
    fi
}
crosscheck tiny
crosscheck kernel_sum capacity=kernel reduction=sum
crosscheck no_permute permute=0
crosscheck iso_all iso_vmax=0 iso_start=0 iso_ramp_steps=0
crosscheck iso_band vel_dist=speed iso_vmin=0.03 iso_vmax=0.12 iso_start=0 iso_ramp_steps=0
crosscheck dist lambda_dist=0.5 dist_scale=5 dist_rmax=0.12 iso_start=0 iso_ramp_steps=0
crosscheck sep_window sep_rmax=0.3
crosscheck sparse lambda_sparse=0.05
crosscheck dir lambda_dir=5 dir_speed=0.12 dir_headings=7 dir_states=40 iso_start=0 iso_ramp_steps=0
crosscheck dir_alone lambda_sep=0 lambda_inv=0 lambda_cap=0 lambda_iso=0 lambda_dir=1 dir_speed=0.12 dir_headings=7 dir_states=40 iso_ramp_steps=0
crosscheck default_size N=64 hidden=256 B=32 T=20 sep_rmax=0.65 steps=50 log_every=25 save_every=50
# the supervised baselines (gridssl.c section 5): tests/basecheck.py recomputes a dumped batch
basecheck() { # basecheck NAME CONFIG key=value...
    name=$1 config=$2
    shift 2
    echo "# basecheck $name: $config $*"
    if ./gridssl train --config "$config" "$@" --out "$T/$name" > /dev/null 2> "$T/$name.stderr" &&
        ./gridssl dump "$T/$name/checkpoint.bin" "$T/$name/dump" > /dev/null 2>> "$T/$name.stderr"; then
        "$PY" tests/basecheck.py "$T/$name/dump" > "$T/$name.log" 2>&1 || true
        grep -v 'passed, .* failed$' "$T/$name.log" | sed "s/^\(ok  \|FAIL\) /\1 [$name] /" | tee -a "$T/all.log"
        grep -q 'passed, 0 failed$' "$T/$name.log" || echo "FAIL [$name] basecheck.py reported failures" | tee -a "$T/all.log"
    else
        echo "FAIL [$name] gridssl train/dump failed: $(tail -1 "$T/$name.stderr")" | tee -a "$T/all.log"
    fi
}
basecheck cw_hexagon data/cw_tiny.cfg
basecheck cw_square data/cw_tiny.cfg arena=square cw_alpha=0.5 cw_beta=0.5
basecheck cw_triangle data/cw_tiny.cfg arena=triangle
basecheck cw_size data/cw.cfg steps=20 B=8 T=60
basecheck sorscher_relu data/sorscher_tiny.cfg sorscher_wd=0.01
basecheck sorscher_linear data/sorscher_tiny.cfg sorscher_relu=0
basecheck sorscher_size data/sorscher.cfg steps=20 B=10 N=64 place_cells=64
echo "# ideal codes: tests/ideal_codes.py's loss reproduces gridssl's on the default-size dump (its analysis is context)"
"$PY" tests/ideal_codes.py "$T/default_size/dump" > "$T/ideal.log" 2>&1 || echo "FAIL [ideal] ideal_codes.py exited non-zero" >> "$T/ideal.log"
grep '^ok \|^FAIL' "$T/ideal.log" | sed "s/^\(ok  \|FAIL\) /\1 [ideal] /" | tee -a "$T/all.log"
echo "# seed effect: tests/seed_effect.py's permutation test on searches whose answer is known"
"$PY" tests/seed_effect.py --check > "$T/seed_effect.log" 2>&1 || echo "FAIL [seed] seed_effect.py --check exited non-zero" >> "$T/seed_effect.log"
grep '^ok \|^FAIL' "$T/seed_effect.log" | sed "s/^\(ok  \|FAIL\) /\1 [seed] /" | tee -a "$T/all.log"
echo "# scorecheck: gridssl score on ratemaps written by numpy"
"$PY" tests/scorecheck.py ./gridssl "$T/score" > "$T/score.log" 2>&1
grep -v 'passed, .* failed$' "$T/score.log" | sed "s/^\(ok  \|FAIL\) /\1 [score] /" | tee -a "$T/all.log"
grep -q 'passed, 0 failed$' "$T/score.log" || echo "FAIL [score] scorecheck.py reported failures" | tee -a "$T/all.log"
passed=$(grep -c '^ok ' "$T/all.log")
failed=$(grep -c '^FAIL' "$T/all.log")
echo "crosscheck: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
