#!/bin/sh
# tests/ablations.sh - the paper's ablations (its Fig. 7) over seeds (make ablations): the default
# and, each on its own, no capacity loss, sigma_g reduced in two steps, no separation, no path
# invariance, no permutations, no isometry. Each variant runs through tests/seeds.sh (the 4000-step
# screen unless --full) into OUT/<variant>/, and one table compares them, one row per variant:
#     variant  overrides  seeds  hexagonal  square  grid_like  stable_hexagonal  square_like  flat
#     lattice_modules  fields  field_diameter_m  median_score60  train_s
# seeds: runs that finished; hexagonal / square: runs labelled so by seeds.sh (more hexagonal-leaning
# than square-leaning units, or the reverse); grid_like, stable_hexagonal, square_like: units per run,
# mean over seeds (seeds.sh defines them); flat: units per run whose map has no variance (a dead or
# constant unit: score60 undefined), mean over seeds; lattice_modules: clusters of at least 3 lattice units
# (score60 > 0.3 or score90 > 0.3, square lattices included) whose sorted SAC periods are less than
# 20 % apart, mean per run, with the periods of all such clusters in brackets; fields and
# field_diameter_m: the median over every unit with a field of its number of place fields and their
# diameter (gridssl.c section 9); median_score60: over every unit of every run; train_s: mean
# seconds of training per run. Each variant's montage is OUT/<variant>/seed_<first>/run/eval/box_2m/montage.png.
#
# usage (from the repository root, after make):
#     sh tests/ablations.sh [--seeds 1-5] [--jobs 2] [--full] [--config FILE] [--out DIR] [--table]
#     --full    runs of the config's length (the default's 14 000 steps: 4 times the cost) instead of
#               the 4000-step screen
#     --config  the recipe to ablate (default: the built-in default)
#     --table   only print the table of runs already made
set -u
cd "$(dirname "$0")/.." || exit 2
seeds=1-5 jobs=2 full=0 config="" out=tests/out/ablations table_only=0
usage() { echo "usage: sh tests/ablations.sh [--seeds A-B] [--jobs J] [--full] [--config FILE] [--out DIR] [--table]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --seeds) [ $# -ge 2 ] || usage; seeds=$2; shift 2 ;;
    --jobs) [ $# -ge 2 ] || usage; jobs=$2; shift 2 ;;
    --full) full=1; shift ;;
    --config) [ $# -ge 2 ] || usage; config=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --table) table_only=1; shift ;;
    *) usage ;;
    esac
done
first=${seeds%-*} last=${seeds#*-}
case "$first$last$jobs" in *[!0-9]*|"") usage ;; esac

# name and overrides of each variant (the paper's Fig. 7, in its order)
VARIANTS="default:
no_capacity:lambda_cap=0
sigma_g_0.2:sigma_g=0.2
sigma_g_0.1:sigma_g=0.1
no_separation:lambda_sep=0
no_invariance:lambda_inv=0
no_permutation:permute=0
no_isometry:lambda_iso=0"

screen=--screen
[ $full = 1 ] && screen=""
if [ $table_only = 0 ]; then
    echo "$VARIANTS" | while IFS=: read -r name overrides; do
        echo "# ablations: $name ($seeds${overrides:+; $overrides})" >&2
        # shellcheck disable=SC2086
        sh tests/seeds.sh --seeds "$seeds" --jobs "$jobs" $screen ${config:+--config "$config"} --out "$out/$name" $overrides > /dev/null 2>&1 ||
            echo "ablations: $name: some runs failed (see $out/$name/seed_*/train.stderr)" >&2
    done
fi

printf 'variant\toverrides\tseeds\thexagonal\tsquare\tgrid_like\tstable_hexagonal\tsquare_like\tflat\tlattice_modules\tfields\tfield_diameter_m\tmedian_score60\ttrain_s\n'
echo "$VARIANTS" | while IFS=: read -r name overrides; do
    # shellcheck disable=SC2086
    table=$(sh tests/seeds.sh --table --seeds "$seeds" --out "$out/$name" $overrides 2> /dev/null)
    csvs=""
    for s in $(seq "$first" "$last"); do
        f=$out/$name/seed_$s/run/eval/box_2m/scores.csv
        [ -s "$f" ] && csvs="$csvs $f"
    done
    # per run: its lattice units' periods, sorted, split at gaps > 20 %, clusters of >= 3 units
    modules=""
    for f in $csvs; do
        m=$(awk -F, 'NR > 1 && $4 != "nan" && (($2 != "nan" && $2 > 0.3) || ($3 != "nan" && $3 > 0.3)) { print $4 }' "$f" | sort -g |
            awk 'NR > 1 && $1 > 1.2 * prev { if (n >= 3) printf "%.2f ", med; n = 0 }
                 { p[n++] = $1; prev = $1; med = (n % 2 ? p[int(n / 2)] : (p[n / 2 - 1] + p[n / 2]) / 2) }
                 END { if (n >= 3) printf "%.2f ", med }')
        modules="$modules${modules:+;}$m"
    done
    printf '%s\n' "$table" | awk -F'\t' -v name="$name" -v overrides="${overrides:--}" -v modules="$modules" -v csvs="$csvs" '
        NR > 1 && $2 != "missing" && $1 ~ /^[0-9]+$/ {
            runs++; grid += $2; stable += $4; square += $5; train += $8
            if ($7 == "hexagonal") hex++; else if ($7 == "square") sq++
        }
        END {
            # lattice modules per run, and their periods
            nm = split(modules, per_run, ";"); total = 0; periods = ""
            for (i = 1; i <= nm; i++) { k = split(per_run[i], p, " "); total += k; for (j = 1; j <= k; j++) periods = periods (periods == "" ? "" : " ") p[j] }
            # medians over units: fields and diameters (units with a field), score60 (all)
            nf = split(csvs, files, " ")
            for (i = 1; i <= nf; i++) {
                while ((getline line < files[i]) > 0) {
                    if (line ~ /^unit/) continue
                    split(line, c, ",")
                    if (c[2] != "nan") s60[++ns] = c[2] + 0; else flat++
                    if (c[16] + 0 > 0) { fl[++nfl] = c[16] + 0; dm[nfl] = c[17] + 0 }
                }
                close(files[i])
            }
            printf "%s\t%s\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f [%s]\t%s\t%s\t%s\t%.0f\n", name, overrides, runs, hex, sq,
                runs ? grid / runs : 0, runs ? stable / runs : 0, runs ? square / runs : 0, nf ? flat / nf : 0, nm ? total / nm : 0, periods,
                median(fl, nfl), median(dm, nfl), median(s60, ns), runs ? train / runs : 0
        }
        function median(a, n,    i, j, t) {
            if (n == 0) return "-"
            for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
            return sprintf("%.3g", n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2)
        }'
done
