#!/bin/sh
# tests/seeds.sh - seed statistics of a recipe (make seeds ARGS="..."): one recipe is a lottery over
# seeds, so it is judged by a table of seeds, never by one. Trains and evaluates seeds FIRST..LAST of the
# default (or --config FILE) with extra key=value overrides, one process per seed (--threads 1: the
# bytes never depend on it), JOBS at a time, and prints one tab-separated table on stdout:
#     seed  grid_like  hexagonal  stable_hexagonal  square_like  modules  label  train_s  eval_s
# grid_like: units with score60 > 0.3; hexagonal: of those, score60 > score90; stable_hexagonal: of
# those, early/late ratemap correlation >= 0.8; square_like: score90 > 0.3; modules: "period (units)"
# from summary.json; label: "hexagonal" when units with score60 > 0.3 and > score90 outnumber those
# with score90 > 0.3 and > score60, "square" when the reverse, else "other". All in the 2 m box.
#
# usage (from the repository root, after make):
#     sh tests/seeds.sh [--seeds 1-10] [--jobs 2] [--screen] [--config FILE] [--out DIR] [key=value ...]
#     --screen   the 4000-step screen: steps=4000 and eval_walks=400, at a quarter of the cost; without
#                the separation window (sep_rmax=0) its label agreed with the full 14 000-step run in
#                19 of 20 seeds; with it (0.5 m) it undercounts hexagons: 6 of seeds 11-20 square
#                at step 4000 were hexagonal at 14 000 (data/recipes.md, "Separation over a finite range")
#     --out      where the runs go (default tests/out/seeds); DIR/seed_S/ keeps each run's checkpoint,
#                evaluation and logs
# One seed alone (the unit of work on a cluster: a Slurm array runs one seed per task, e.g.
#     sbatch --array=1-10 --wrap 'sh tests/seeds.sh --one $SLURM_ARRAY_TASK_ID --out runs lambda_iso=0.02'
# then sh tests/seeds.sh --table --seeds 1-10 --out runs prints the table):
#     sh tests/seeds.sh --one S [--screen] [--config FILE] [--out DIR] [key=value ...]
set -u
cd "$(dirname "$0")/.." || exit 2
G=./gridssl
seeds=1-10 jobs=2 screen=0 config="" out=tests/out/seeds one="" table_only=0
usage() { echo "usage: sh tests/seeds.sh [--seeds A-B] [--jobs J] [--screen] [--config FILE] [--out DIR] [--one S | --table] [key=value ...]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
    --seeds) [ $# -ge 2 ] || usage; seeds=$2; shift 2 ;;
    --jobs) [ $# -ge 2 ] || usage; jobs=$2; shift 2 ;;
    --screen) screen=1; shift ;;
    --config) [ $# -ge 2 ] || usage; config=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --one) [ $# -ge 2 ] || usage; one=$2; shift 2 ;;
    --table) table_only=1; shift ;;
    --*) usage ;;
    *) break ;;
    esac
done
first=${seeds%-*} last=${seeds#*-}
case "$first$last$jobs" in *[!0-9]*|"") usage ;; esac
[ -x "$G" ] || { echo "seeds: build gridssl first (make)" >&2; exit 2; }

# run_seed S KEY=VALUE...: train and evaluate seed S into $out/seed_S; the timings go to seed_S/seconds
run_seed() {
    s=$1
    shift
    d=$out/seed_$s
    rm -rf "$d" && mkdir -p "$d" || return 1
    extra=""
    [ $screen = 1 ] && extra="steps=4000"
    t0=$(date +%s)
    # shellcheck disable=SC2086
    $G train ${config:+--config "$config"} "$@" $extra seed=$s --threads 1 --out "$d/run" > "$d/train.stdout" 2> "$d/train.stderr" ||
        { echo "seeds: seed $s: training failed: $(tail -n 1 "$d/train.stderr")" >&2; return 1; }
    t1=$(date +%s)
    walks=""
    [ $screen = 1 ] && walks="eval_walks=400"
    # shellcheck disable=SC2086
    $G eval "$d/run/checkpoint.bin" --box 2 --threads 1 $walks > "$d/eval.stdout" 2> "$d/eval.stderr" ||
        { echo "seeds: seed $s: evaluation failed: $(tail -n 1 "$d/eval.stderr")" >&2; return 1; }
    echo "$((t1 - t0)) $(($(date +%s) - t1))" > "$d/seconds"
}

# row S: one table row from seed S's scores.csv, summary.json and timings
row() {
    d=$out/seed_$1
    csv=$d/run/eval/box_2m/scores.csv
    [ -s "$csv" ] && [ -s "$d/seconds" ] || { printf '%s\tmissing\n' "$1"; return; }
    modules=$(tr -d ' \n' < "$d/run/eval/box_2m/summary.json" |
        sed -n 's/.*"modules":\[\(.*\)\],"period_ratios".*/\1/p' | tr '}' '\n' |
        sed -n 's/.*"units":\([0-9]*\),"period_m":\([0-9.]*\).*/\2 (\1)/p' | awk '{ printf "%s%.2f %s", (NR > 1 ? ", " : ""), $1, $2 }')
    read -r train_s eval_s < "$d/seconds"
    awk -F, -v seed="$1" -v modules="${modules:--}" -v train_s="$train_s" -v eval_s="$eval_s" '
        NR > 1 {
            s60 = $2 + 0; s90 = $3 + 0; el = $12
            if ($2 != "nan" && s60 > 0.3) { grid++; if (s60 > s90) { hex++; if (el != "nan" && el + 0 >= 0.8) stable++ } }
            if ($3 != "nan" && s90 > 0.3) square++
            if ($2 != "nan" && s60 > 0.3 && s60 > s90) hexvote++
            if ($3 != "nan" && s90 > 0.3 && s90 > s60) sqvote++
        }
        END {
            label = hexvote > sqvote ? "hexagonal" : sqvote > hexvote ? "square" : "other"
            printf "%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", seed, grid, hex, stable, square, modules, label, train_s, eval_s
        }' "$csv"
}

if [ -n "$one" ]; then
    run_seed "$one" "$@"
    exit $?
fi
if [ $table_only = 0 ]; then
    mkdir -p "$out" || exit 2
    # one process per seed, $jobs at a time; each reruns this script with --one
    flags=""
    [ $screen = 1 ] && flags="--screen"
    seq "$first" "$last" | xargs -P "$jobs" -I{} sh tests/seeds.sh --one {} $flags ${config:+--config "$config"} --out "$out" "$@"
fi
printf 'seed\tgrid_like\thexagonal\tstable_hexagonal\tsquare_like\tmodules\tlabel\ttrain_s\teval_s\n'
failed=0 hexagonal=0
for s in $(seq "$first" "$last"); do
    r=$(row "$s")
    printf '%s\n' "$r"
    case "$r" in *missing*) failed=$((failed + 1)) ;; *"	hexagonal	"*) hexagonal=$((hexagonal + 1)) ;; esac
done
echo "# $hexagonal of $((last - first + 1)) seeds hexagonal$([ $screen = 1 ] && echo ' (4000-step screen)')$([ $# -gt 0 ] && echo "; overrides: $*")" >&2
[ $failed = 0 ]
