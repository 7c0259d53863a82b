#!/bin/sh
# tests/baselines.sh - SIC beside the two supervised models it answers (make baselines): trains SIC's
# default (data/default.cfg; seeds 4 and 7), Cueva & Wei (data/cw.cfg), Sorscher et al. (data/sorscher.cfg) and
# Sorscher et al.'s linear ablation (sorscher_relu=0), one process each (--threads 1; the bytes never
# depend on it), JOBS at a time; evaluates each in its training box and in boxes 1.5 and 2 times as
# wide (SIC: 2, 3, 4 m; a baseline: its arena's width); and prints two tab-separated tables.
#
# Table 1, the training box, over all units of a run:
#     model  train_s  units  grid_like  hexagonal  stable  square_like  band_like  border_like  modules
# grid_like: score60 > 0.3; hexagonal: of those, score60 > score90; stable: of those, early/late ratemap
# correlation >= 0.8 (the drift test); square_like: score90 > 0.3 and > score60; band_like: the Fourier
# power's dominant ring is two opposite peaks (fourier_a2 > 0.7, gridssl.c section 9) at two or more
# periods per box (a ramp across the box, one period or less, is not a band); border_like:
# border score > 0.5 (Solstad et al. 2008); modules: "period (units)" from summary.json.
# Table 2, generalisation, over the units grid-like in the training box:
#     model  box  grid_like_units  median_score60  still_grid_like  period_within_10pct
#
# usage (from the repository root, after make):
#     sh tests/baselines.sh [--out DIR] [--jobs J] [--table] [--sic CFG] [--cw CFG] [--sorscher CFG] [key=value ...]
#     --out     where the runs go (default tests/out/baselines): DIR/<model>/run, DIR/<model>/eval
#     --table   only print the tables of runs already in DIR
#     key=value overrides for every run (e.g. steps=100 for a quick look)
set -u
cd "$(dirname "$0")/.." || exit 2
G=./gridssl
out=tests/out/baselines jobs=2 table_only=0 sic=data/default.cfg cw=data/cw.cfg sorscher=data/sorscher.cfg
usage() { echo "usage: sh tests/baselines.sh [--out DIR] [--jobs J] [--table] [--sic CFG] [--cw CFG] [--sorscher CFG] [key=value ...]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --jobs) [ $# -ge 2 ] || usage; jobs=$2; shift 2 ;;
    --table) table_only=1; shift ;;
    --sic) [ $# -ge 2 ] || usage; sic=$2; shift 2 ;;
    --cw) [ $# -ge 2 ] || usage; cw=$2; shift 2 ;;
    --sorscher) [ $# -ge 2 ] || usage; sorscher=$2; shift 2 ;;
    --*) usage ;;
    *) break ;;
    esac
done
case "$jobs" in *[!0-9]*|"") usage ;; esac
[ -x "$G" ] || { echo "baselines: build gridssl first (make)" >&2; exit 2; }
models="sic sic_seed7 cw sorscher sorscher_linear"

# run_model NAME KEY=VALUE...: train and evaluate one model into $out/NAME; its timings go to NAME/seconds
run_model() {
    name=$1
    shift
    case "$name" in
    sic) config=$sic ;; sic_seed7) config=$sic; set -- "$@" seed=7 ;; cw) config=$cw ;; sorscher) config=$sorscher ;; sorscher_linear) config=$sorscher; set -- "$@" sorscher_relu=0 ;;
    esac
    d=$out/$name
    rm -rf "$d" && mkdir -p "$d" || return 1
    t0=$(date +%s)
    $G train --config "$config" "$@" --threads 1 --out "$d/run" > "$d/train.stdout" 2> "$d/train.stderr" ||
        { echo "baselines: $name: training failed: $(tail -n 1 "$d/train.stderr")" >&2; return 1; }
    t1=$(date +%s)
    $G eval "$d/run/checkpoint.bin" --threads 1 --out "$d/eval" > "$d/eval.stdout" 2> "$d/eval.stderr" ||
        { echo "baselines: $name: evaluation failed: $(tail -n 1 "$d/eval.stderr")" >&2; return 1; }
    echo "$((t1 - t0)) $(($(date +%s) - t1))" > "$d/seconds"
}

if [ $table_only = 0 ]; then
    mkdir -p "$out" || exit 2
    if [ "${BASELINES_ONE:-}" != "" ]; then run_model "$BASELINES_ONE" "$@"; exit $?; fi
    failed=0
    # shellcheck disable=SC2086
    printf '%s\n' $models | BASELINES_OUT="$out" xargs -P "$jobs" -I{} env BASELINES_ONE={} sh "$0" --out "$out" --sic "$sic" --cw "$cw" \
        --sorscher "$sorscher" "$@" || failed=1
    [ $failed = 0 ] || echo "baselines: some runs failed (see $out/*/train.stderr)" >&2
fi

# the boxes of a run, in the order eval wrote them (its training box first)
boxes() { ls -d "$1"/eval/box_*m 2> /dev/null | sed 's/.*box_\(.*\)m$/\1/' | sort -g; }

printf 'model\ttrain_s\tunits\tgrid_like\thexagonal\tstable\tsquare_like\tband_like\tborder_like\tmodules\n'
for name in $models; do
    d=$out/$name
    first=$(boxes "$d" | head -n 1)
    [ -n "$first" ] && [ -s "$d/eval/box_${first}m/scores.csv" ] || { printf '%s\t(no run)\n' "$name"; continue; }
    modules=$(tr -d '\n ' < "$d/eval/box_${first}m/summary.json" | grep -o '"units":[0-9]*,"period_m":[0-9.e+-]*' |
        sed 's/"units":\([0-9]*\),"period_m":\(.*\)/\2 \1/' | awk '{ printf "%s%.2f(%d)", (NR > 1 ? " " : ""), $1, $2 }')
    awk -F, -v name="$name" -v secs="$(cut -d' ' -f1 "$d/seconds" 2> /dev/null)" -v modules="${modules:--}" -v box="$first" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        {
            s60 = $col["score60"]; s90 = $col["score90"]; a2 = $col["fourier_a2"]; b = $col["border_score"]
            units++
            if (s60 != "nan" && s60 + 0 > 0.3) {
                grid++
                if (s90 == "nan" || s60 + 0 > s90 + 0) { hex++; if ($col["early_late_r"] + 0 >= 0.8) stable++ }
            }
            if (s90 != "nan" && s90 + 0 > 0.3 && (s60 == "nan" || s90 + 0 > s60 + 0)) square++
            if (a2 != "nan" && a2 + 0 > 0.7 && $col["fourier_period_m"] + 0 <= box / 2) band++
            if (b != "nan" && b + 0 > 0.5) border++
        }
        END { printf "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", name, secs == "" ? "-" : secs, units, grid, hex, stable, square, band,
              border, modules }' "$d/eval/box_${first}m/scores.csv"
done
printf '\nmodel\tbox_m\tgrid_like_units\tmedian_score60\tstill_grid_like\tperiod_within_10pct\n'
for name in $models; do
    d=$out/$name
    first=$(boxes "$d" | head -n 1)
    [ -n "$first" ] || continue
    for box in $(boxes "$d"); do
        awk -F, -v name="$name" -v box="$box" '
            FNR == 1 { file++; for (i = 1; i <= NF; i++) col[$i] = i; next }
            file == 1 { s0[$1] = $col["score60"]; p0[$1] = $col["period_m"]; next }
            {
                if (!(s0[$1] != "nan" && s0[$1] + 0 > 0.3)) next
                s = $col["score60"]; p = $col["period_m"]
                v[++k] = s == "nan" ? -9 : s + 0
                still += s != "nan" && s + 0 > 0.3
                if (p != "nan" && p0[$1] + 0 > 0 && (p / p0[$1] - 1) ^ 2 < 0.01) kept++
            }
            END {
                for (a = 2; a <= k; a++) for (b = a; b > 1 && v[b - 1] > v[b]; b--) { t = v[b]; v[b] = v[b - 1]; v[b - 1] = t }
                med = k == 0 ? "-" : sprintf("%.3f", k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2)
                printf "%s\t%s\t%d\t%s\t%d\t%d\n", name, box, k, med, still, kept
            }' "$d/eval/box_${first}m/scores.csv" "$d/eval/box_${box}m/scores.csv"
    done
done
