#!/bin/sh
# tests/generalisation.sh - how far a trained network's lattice carries beyond the walks and the box it
# was trained in (the paper's Fig. 5; make generalisation CKPT=...): the same units evaluated in 2, 3
# and 4 m boxes with the default walks, and in the 2 m box with walks of other statistics:
#     slow      eval_speed_mean=0.03   half the default mean speed (6 cm per step)
#     fast      eval_speed_mean=0.12   twice it (speeds still clipped at 15 cm: about 29 % of steps)
#     straight  eval_heading_sd=0.1    a third of the default heading noise (0.3 rad per step)
#     tortuous  eval_heading_sd=0.9    three times it
# Writes OUT/generalisation.csv, one row per unit: unit, its module in the 2 m box (0: not grid-like),
# then score60_<condition> and period_m_<condition> for 2m, 3m, 4m, slow, fast, straight, tortuous;
# and prints one row per condition on stdout, over the units grid-like (score60 > 0.3) in the 2 m box
# with the default walks:
#     condition  coverage  grid_like_units  median_score60  still_grid_like  period_within_10pct
# Each condition's evaluation (maps, montage, scores) stays in OUT/<condition>/.
#
# usage (from the repository root, after make):
#     sh tests/generalisation.sh CHECKPOINT OUT [--threads K]
set -u
cd "$(dirname "$0")/.." || exit 2
[ $# -ge 2 ] || { echo "usage: sh tests/generalisation.sh CHECKPOINT OUT [--threads K]" >&2; exit 2; }
ckpt=$1 out=$2
shift 2
G=./gridssl
[ -x "$G" ] || { echo "generalisation: build gridssl first (make)" >&2; exit 2; }
mkdir -p "$out" || exit 2
run() { # run NAME BOXES [eval_key=value]: one evaluation into OUT/NAME
    name=$1 boxes=$2
    shift 2
    $G eval "$ckpt" --box "$boxes" --out "$out/$name" "$@" > "$out/$name.stdout" 2> "$out/$name.stderr" ||
        { echo "generalisation: $name: $(tail -n 1 "$out/$name.stderr")" >&2; exit 1; }
}
threads=""
[ "${1:-}" = --threads ] && [ $# -ge 2 ] && threads="--threads $2"
# shellcheck disable=SC2086
run boxes 2,3,4 $threads
# shellcheck disable=SC2086
run slow 2 eval_speed_mean=0.03 $threads
# shellcheck disable=SC2086
run fast 2 eval_speed_mean=0.12 $threads
# shellcheck disable=SC2086
run straight 2 eval_heading_sd=0.1 $threads
# shellcheck disable=SC2086
run tortuous 2 eval_heading_sd=0.9 $threads

# one scores.csv per condition, in the column order below
set -- "$out/boxes/box_2m" "$out/boxes/box_3m" "$out/boxes/box_4m" "$out/slow/box_2m" "$out/fast/box_2m" \
    "$out/straight/box_2m" "$out/tortuous/box_2m"
names="2m 3m 4m slow fast straight tortuous"
for d in "$@"; do sed -n 's/.*"coverage": \([0-9.e+-]*\).*/\1/p' "$d/summary.json" | head -n 1; done > "$out/coverage.txt"
awk -F, -v names="$names" -v csv="$out/generalisation.csv.tmp" -v coverage="$out/coverage.txt" '
    FNR == 1 { file++; next }
    { s60[file, $1] = $2; per[file, $1] = $4; if (file == 1) { module[$1] = $7; units = $1 + 1 } }
    END {
        n = split(names, name, " ")
        for (i = 1; i <= n; i++) { getline cov[i] < coverage }
        printf "unit,module_2m" > csv
        for (i = 1; i <= n; i++) printf ",score60_%s,period_m_%s", name[i], name[i] > csv
        printf "\n" > csv
        for (u = 0; u < units; u++) {
            printf "%d,%s", u, module[u] > csv
            for (i = 1; i <= n; i++) printf ",%s,%s", s60[i, u], per[i, u] > csv
            printf "\n" > csv
        }
        printf "condition\tcoverage\tgrid_like_units\tmedian_score60\tstill_grid_like\tperiod_within_10pct\n"
        for (i = 1; i <= n; i++) {
            k = 0; still = 0; kept = 0
            for (u = 0; u < units; u++) {
                if (!(s60[1, u] != "nan" && s60[1, u] + 0 > 0.3)) continue
                v[++k] = s60[i, u] == "nan" ? -9 : s60[i, u] + 0
                still += s60[i, u] != "nan" && s60[i, u] + 0 > 0.3
                p0 = per[1, u] + 0; p = per[i, u]
                if (p != "nan" && p0 > 0 && (p / p0 - 1) ^ 2 < 0.01) kept++
            }
            for (a = 2; a <= k; a++) for (b = a; b > 1 && v[b - 1] > v[b]; b--) { t = v[b]; v[b] = v[b - 1]; v[b - 1] = t }
            med = k == 0 ? "-" : sprintf("%.3f", k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2)
            printf "%s\t%.3f\t%d\t%s\t%d\t%d\n", name[i], cov[i], k, med, still, kept
        }
    }' "$1/scores.csv" "$2/scores.csv" "$3/scores.csv" "$4/scores.csv" "$5/scores.csv" "$6/scores.csv" "$7/scores.csv" || exit 1
mv "$out/generalisation.csv.tmp" "$out/generalisation.csv" && rm -f "$out/coverage.txt"
