#!/bin/sh
# tests/cli.sh - the command line as a user meets it: train, eval, dump, gradcheck, resume, the
# golden hashes, determinism across optimisation levels, and every kind of bad input.
# Run from the repository root after `make` (make test does both). Prints "ok   ..." / "FAIL ...".
set -u
G=./gridssl
T=tests/out
CC=${CC:-cc}
rm -rf "$T"
mkdir -p "$T"

ok() { echo "ok   $*"; }
fail() { echo "FAIL $*"; }
check() { # check "description" command...
    desc=$1
    shift
    if "$@" > /dev/null 2>&1; then ok "$desc"; else fail "$desc"; fi
}
hash_of() { # a missing file has no hash: it never equals one
    if [ -f "$1" ]; then sha256sum "$1" | cut -d' ' -f1; else echo "missing:$1"; fi
}
golden() { grep " $1\$" ref_outputs/tiny.sha256 | cut -d' ' -f1; }
GOLDEN_FILES="checkpoint.bin eval/box_2m/ratemaps.npy eval/box_2m/montage.pgm eval/box_2m/scores.csv"

# ---- version and help ------------------------------------------------------------------------
check "gridssl --version names the version" sh -c "$G --version | grep -q '^gridssl [0-9]'"
$G --help > "$T/help.txt" 2>&1
missing=""
keys=$(sed -n 's/^  \([a-z_0-9A-Z]*\)  *default .*/\1/p' "$T/help.txt")
for key in $keys; do
    grep -q "| \`$key\` |" README.md || missing="$missing $key(README)"
    for cfg in data/default.cfg data/paper.cfg; do
        grep -q "^$key *=" $cfg || missing="$missing $key($cfg)"
    done
done
check "--help lists the config keys (more than 40)" test $(echo $keys | wc -w) -gt 40
if [ -z "$missing" ]; then ok "README.md, default.cfg and paper.cfg give every key --help lists"; else fail "undocumented keys:$missing"; fi

# the repository stands on its own: no file points at a document outside it (the pattern is split so
# that this file does not match itself)
outside=$(grep -l -E '\.\./sha''red|SP''EC' Makefile README.md gridssl.c gridssl.h tests/*.c tests/*.sh tests/*.py data/* ref_outputs/*.sha256 .ci/run 2> /dev/null)
if [ -z "$outside" ]; then ok "no file refers to a document outside the repository"; else fail "files refer outside the repository: $outside"; fi
# ... nor tells the story of its own making (its stages, its tickets): it says what is, and why
history=$(grep -l -i -E 'sess''ion|the iss''ue|iss''ue [0-9#]' Makefile README.md gridssl.c gridssl.h tests/*.c tests/*.sh tests/*.py data/* ref_outputs/*.md .ci/run 2> /dev/null)
if [ -z "$history" ]; then ok "no file numbers the stages of the project's history"; else fail "files tell the project's history: $history"; fi

# ---- the reference job: train tiny, evaluate, compare with the golden hashes ------------------
# ref_outputs/tiny.sha256 guards against regressions; the truth of the numbers behind it comes
# from the unit tests (gradients, closed forms, reference vectors) and make crosscheck.
run_reference() { # run_reference BINARY DIR
    "$1" train --config data/tiny.cfg --out "$2" > "$2.stdout" 2> "$2.stderr" &&
        "$1" eval "$2/checkpoint.bin" > "$2.eval.stdout" 2> "$2.eval.stderr"
}
if run_reference $G "$T/ref"; then ok "train --config data/tiny.cfg and eval succeed"; else fail "reference job failed: $(cat "$T/ref.stderr" "$T/ref.eval.stderr" | tail -3)"; fi
printed=$(grep ' tests/out/ref/checkpoint.bin$' "$T/ref.stdout" | cut -d' ' -f1)
check "the SHA-256 gridssl prints equals sha256sum's" test "$printed" = "$(hash_of "$T/ref/checkpoint.bin")"
for f in $GOLDEN_FILES; do
    check "$f matches ref_outputs/tiny.sha256" test "$(hash_of "$T/ref/$f")" = "$(golden "$f")"
done
n_units=$(sed -n 's/^N = //p' "$T/ref/config.txt")
n_bins=16 # eval_bin_m = 0.125 in data/tiny.cfg: 16 bins across the 2 m box
E="$T/ref/eval/box_2m"
n_pgm=$(ls "$E" | grep -c '^unit_[0-9]*\.pgm$')
check "eval writes one PGM per unit ($n_pgm of $n_units)" test "$n_pgm" = "$n_units"
check "unit PGMs are binary P5 ${n_bins}x${n_bins}" sh -c "head -c 12 $E/unit_000.pgm | tr '\n' ' ' | grep -q '^P5 $n_bins $n_bins 255'"
check "montage.pgm is a binary P5 image" sh -c "head -c 2 $E/montage.pgm | grep -q P5"
npy_size=$(wc -c < "$E/ratemaps.npy")
check "ratemaps.npy declares shape ($n_units, $n_bins, $n_bins) '<f4' and holds exactly that much data" \
    sh -c "head -c 128 $E/ratemaps.npy | grep -q \"'descr': '<f4', 'fortran_order': False, 'shape': ($n_units, $n_bins, $n_bins)\" && test $npy_size = $((128 + n_units * n_bins * n_bins * 4))"
missing=""
for box in 2 3 4; do
    for f in scores.csv summary.json montage.png montage.ppm period_histogram.png fourier.png autocorrelograms.pgm sac_000.pgm ratemaps.npy; do
        [ -s "$T/ref/eval/box_${box}m/$f" ] || missing="$missing box_${box}m/$f"
    done
done
[ -s "$T/ref/eval/generalisation.csv" ] || missing="$missing generalisation.csv"
if [ -z "$missing" ]; then ok "eval analyses 2, 3 and 4 m boxes: scores.csv, summary.json, images; generalisation.csv"; else fail "eval is missing:$missing"; fi
check "scores.csv has the documented columns and one row per unit" sh -c "head -1 $E/scores.csv | grep -q '^unit,score60,score90,period_m,orientation_deg,fourier_period_m,module,coverage,mean_rate' && test \$(wc -l < $E/scores.csv) = $((n_units + 1))"
check "summary.json reports coverage, grid-like units and modules" sh -c "grep -q '\"coverage\"' $E/summary.json && grep -q '\"fraction_grid_like\"' $E/summary.json && grep -q '\"modules\"' $E/summary.json"
check "generalisation.csv compares every unit across the boxes" sh -c "head -1 $T/ref/eval/generalisation.csv | grep -q 'period_m_2m,score60_3m,period_m_3m,score60_4m,period_m_4m' && test \$(wc -l < $T/ref/eval/generalisation.csv) = $((n_units + 1))"
# the paper's experiments as commands (tests/generalisation.sh, tests/ablations.sh), on the tiny run
what="generalisation.sh evaluates 2, 3, 4 m boxes and four other walks: one row per condition"
if sh tests/generalisation.sh $T/ref/checkpoint.bin $T/gen --threads 2 > $T/gen.stdout 2> $T/gen.stderr &&
    test "$(cut -f1 $T/gen.stdout | tr '\n' ' ')" = "condition 2m 3m 4m slow fast straight tortuous "; then ok "$what"; else fail "$what"; fi
check "its generalisation.csv has one row per unit and a score and a period per condition" \
    sh -c "head -1 $T/gen/generalisation.csv | grep -q '^unit,module_2m,score60_2m,period_m_2m,.*,score60_tortuous,period_m_tortuous\$' && test \$(wc -l < $T/gen/generalisation.csv) = $((n_units + 1))"
check "its slower walks are slower: other maps than the default walks'" sh -c "! cmp -s $T/gen/slow/box_2m/ratemaps.npy $T/gen/boxes/box_2m/ratemaps.npy"
what="ablations.sh runs the default and seven ablations: one row each, every run finished"
if sh tests/ablations.sh --seeds 1-1 --full --config data/tiny.cfg --out $T/abl > $T/abl.stdout 2> $T/abl.stderr &&
    test "$(awk -F'\t' 'NR > 1 && $3 == 1 { printf "%s ", $1 }' $T/abl.stdout)" = \
        "default no_capacity sigma_g_0.2 sigma_g_0.1 no_separation no_invariance no_permutation no_isometry "; then ok "$what"; else fail "$what"; fi
check "each ablation's run was trained with its change" sh -c "grep -q '^lambda_cap = 0\$' $T/abl/no_capacity/seed_1/run/config.txt &&
    grep -q '^permute = 0\$' $T/abl/no_permutation/seed_1/run/config.txt && grep -q '^sigma_g = 0.1\$' $T/abl/sigma_g_0.1/seed_1/run/config.txt &&
    grep -q '^lambda_iso = 0\$' $T/abl/no_isometry/seed_1/run/config.txt && grep -q '^steps = 60\$' $T/abl/default/seed_1/run/config.txt"
check "eval --box 2.5 --out DIR evaluates that box only" sh -c "$G eval $T/ref/checkpoint.bin --box 2.5 --out $T/box25 > /dev/null 2>&1 && test -s $T/box25/box_2.5m/scores.csv && ! test -e $T/box25/box_2m"
check "score analyses a ratemaps.npy from any source" sh -c "$G score $E/ratemaps.npy --box 2 --out $T/scored > /dev/null 2>&1 && test -s $T/scored/scores.csv && test -s $T/scored/montage.png"
cut -d, -f1-10,13-19 "$T/scored/scores.csv" > "$T/scored.cols" 2> /dev/null
cut -d, -f1-10,13-19 "$E/scores.csv" > "$T/eval.cols"
check "score gives the scores eval gave for the same maps (all but the stability columns)" cmp -s "$T/scored.cols" "$T/eval.cols"
check "training progress goes to stderr with losses, dead states, lr, steps/s and ETA" \
    sh -c "grep 'step 60/60' $T/ref.stderr | grep sep | grep inv | grep cap | grep iso | grep dead | grep lr | grep steps/s | grep -q ETA"
check "the resolved config printed on stdout is saved as config.txt" \
    sh -c "head -n \$(wc -l < $T/ref/config.txt) $T/ref.stdout | cmp -s - $T/ref/config.txt"
check "log.tsv has a header and one row per log_every steps" sh -c "test \$(wc -l < $T/ref/log.tsv) = 4"

# ---- the supervised baselines (gridssl.c section 5): tiny runs of each, golden hashes ----------
# ref_outputs/cw_tiny.sha256 and sorscher_tiny.sha256 guard them; their truth comes from
# ./gridssl_f64 gradcheck and tests/basecheck.py (make crosscheck).
for m in cw sorscher; do
    if $G train --config data/${m}_tiny.cfg --out $T/$m > $T/$m.stdout 2> $T/$m.stderr &&
        $G eval $T/$m/checkpoint.bin > $T/$m.eval.stdout 2> $T/$m.eval.stderr; then
        ok "model=$m: train --config data/${m}_tiny.cfg and eval succeed"
    else fail "model=$m: tiny run failed: $(cat $T/$m.stderr $T/$m.eval.stderr | tail -2)"; fi
    for f in checkpoint.bin eval/box_1m/ratemaps.npy eval/box_1m/scores.csv; do
        check "model=$m: $f matches ref_outputs/${m}_tiny.sha256" test "$(hash_of "$T/$m/$f")" = "$(grep " $f\$" ref_outputs/${m}_tiny.sha256 | cut -d' ' -f1)"
    done
    check "model=$m: eval's default boxes are the arena's width, 1.5 and 2 times it" \
        sh -c "test -s $T/$m/eval/box_1m/scores.csv && test -s $T/$m/eval/box_1.5m/scores.csv && test -s $T/$m/eval/box_2m/scores.csv"
    check "model=$m: 1 and 3 threads give the same checkpoint" sh -c "$G train --config data/${m}_tiny.cfg --threads 1 --out $T/$m.t1 > /dev/null 2>&1 &&
        $G train --config data/${m}_tiny.cfg --threads 3 --out $T/$m.t3 > /dev/null 2>&1 && cmp -s $T/$m.t1/checkpoint.bin $T/$m/checkpoint.bin && cmp -s $T/$m.t3/checkpoint.bin $T/$m/checkpoint.bin"
    check "model=$m: steps 0-20, then a resume to 40, give the checkpoint of one run" sh -c "$G train --config data/${m}_tiny.cfg steps=20 --out $T/$m.half > /dev/null 2>&1 &&
        $G train --resume $T/$m.half/checkpoint.bin steps=40 --out $T/$m.half > /dev/null 2>&1 && cmp -s $T/$m.half/checkpoint.bin $T/$m/checkpoint.bin"
    check "model=$m: dump writes the batch, states, parameters and gradients" sh -c "$G dump $T/$m/checkpoint.bin $T/$m.dump > /dev/null 2>&1 &&
        test -s $T/$m.dump/input.npy && test -s $T/$m.dump/h.npy && test -s $T/$m.dump/grad_W_rec.npy && grep -q '^task = ' $T/$m.dump/losses.txt"
done
check "model=cw progress shows the position error, the costs, lr, steps/s and ETA" sh -c "grep 'step 40/40' $T/cw.stderr | grep mse | grep weights | grep rate | grep 'error' | grep lr | grep -q ETA"
check "model=cw: log.tsv has the supervised columns" sh -c "head -1 $T/cw/log.tsv | grep -q '^step	lr	position_mse	weights	rate	total	err_m\$'"
check "model=sorscher: log.tsv has the cross-entropy" sh -c "head -1 $T/sorscher/log.tsv | grep -q '^step	lr	cross_entropy	weights	rate	total	err_m\$'"
check "model=cw in a triangle arena trains and evaluates" sh -c "$G train --config data/cw_tiny.cfg arena=triangle steps=10 --out $T/cwtri > /dev/null 2>&1 &&
    $G eval $T/cwtri/checkpoint.bin --box 1 > /dev/null 2>&1 && test -s $T/cwtri/eval/box_1m/montage.png"
check "model=sorscher sorscher_relu=0 (the linear ablation) trains and differs" sh -c "$G train --config data/sorscher_tiny.cfg sorscher_relu=0 --out $T/sorlin > /dev/null 2>&1 &&
    ! cmp -s $T/sorlin/checkpoint.bin $T/sorscher/checkpoint.bin"
what="baselines.sh trains and evaluates SIC (seeds 4 and 7), cw, sorscher and its linear ablation: a row each in both tables"
if sh tests/baselines.sh --out $T/bl --sic data/tiny.cfg --cw data/cw_tiny.cfg --sorscher data/sorscher_tiny.cfg > $T/bl.stdout 2> $T/bl.stderr &&
    test "$(awk -F'\t' 'NR > 1 && NF >= 10 && $3 > 0 { printf "%s ", $1 }' $T/bl.stdout)" = "sic sic_seed7 cw sorscher sorscher_linear " &&
    test "$(grep -c '^sorscher_linear	' $T/bl.stdout)" = 4; then ok "$what"; else fail "$what"; fi

for cfg in data/*.cfg; do # every config in data/ is one gridssl takes (the papers' ones too: steps=0 only lays them out)
    check "$cfg is a valid config (train steps=0)" sh -c "$G train --config $cfg steps=0 --threads 2 --out $T/cfgcheck > /dev/null 2>&1"
done

# ---- determinism across optimisation levels ----------------------------------------------------
mkdir -p tests/build
DET="-std=c11 -ffp-contract=off"
if $CC -O0 $DET -o tests/build/gridssl_O0 gridssl.c -lm -lpthread && $CC -O2 -march=native $DET -o tests/build/gridssl_native gridssl.c -lm -lpthread; then
    for build in O0 native; do
        run_reference tests/build/gridssl_$build "$T/$build"
        same=1
        for f in $GOLDEN_FILES; do
            [ "$(hash_of "$T/$build/$f")" = "$(golden "$f")" ] || same=0
        done
        check "$CC $([ $build = O0 ] && echo -O0 || echo -O2 -march=native) build: checkpoint, ratemaps, montage and scores hash to the golden values" test $same = 1
    done
else
    fail "could not build the -O0 and -O2 -march=native variants with $CC"
fi

# ---- threads: 1, 2 and 3 threads give the same bytes (the golden run above used the default: every core)
same=1
for threads in 1 2 3; do
    $G train --config data/tiny.cfg N=20 B=9 T=11 steps=12 --threads $threads --out "$T/threads$threads" > /dev/null 2>&1 &&
        $G eval "$T/threads$threads/checkpoint.bin" --box 2 --threads $threads > /dev/null 2>&1 || same=0
    for f in checkpoint.bin eval/box_2m/ratemaps.npy eval/box_2m/scores.csv; do
        cmp -s "$T/threads1/$f" "$T/threads$threads/$f" || same=0
    done
done
check "1, 2 and 3 threads give identical checkpoints, ratemaps and scores" test $same = 1
same=1
for threads in 1 3; do # L_dir's own tasks (section 4): per state, then per heading
    $G train --config data/tiny.cfg N=20 B=9 T=11 steps=12 lambda_dir=5 dir_states=50 iso_start=0 iso_ramp_steps=0 --threads $threads \
        --out "$T/dir$threads" > /dev/null 2>&1 || same=0
    cmp -s "$T/dir1/checkpoint.bin" "$T/dir$threads/checkpoint.bin" || same=0
done
$G train --config data/tiny.cfg N=20 B=9 T=11 steps=12 lambda_dir=0 dir_states=50 iso_start=0 iso_ramp_steps=0 \
    --out "$T/dir_off" > /dev/null 2>&1 || same=0
# L_dir, and nothing else, must change the training: the separation loss logged at step 12 differs
# (the checkpoints differ anyway: their config text names lambda_dir)
[ "$(tail -1 "$T/dir1/log.tsv" | cut -f3)" = "$(tail -1 "$T/dir_off/log.tsv" | cut -f3)" ] && same=0
check "with L_dir on, 1 and 3 threads give identical checkpoints (and not the run without it)" test $same = 1
check "with L_dir on, log.tsv ends in its columns: dir > 0 and w_dir = lambda_dir (no ramp)" \
    sh -c "head -1 $T/dir1/log.tsv | grep -q '	dir	w_dir\$' &&
        awk -F'\t' 'NR > 1 { n++; if (\$NF != 5 || !(\$(NF - 1) > 0)) bad = 1 } END { exit !(n > 0 && !bad) }' $T/dir1/log.tsv"
for threads in 1 3; do
    $G train --config data/tiny.cfg --threads $threads --out "$T/golden$threads" > /dev/null 2>&1 &&
        $G eval "$T/golden$threads/checkpoint.bin" --box 2 --threads $threads > /dev/null 2>&1
    same=1
    for f in $GOLDEN_FILES; do [ "$(hash_of "$T/golden$threads/$f")" = "$(golden "$f")" ] || same=0; done
    check "--threads $threads: the golden hashes" test $same = 1
done

# ---- resume: k steps, checkpoint, resume to 2k == 2k steps straight -----------------------------
$G train --config data/tiny.cfg steps=30 --out "$T/half" > /dev/null 2>&1 &&
    $G train --resume "$T/half/checkpoint.bin" steps=60 --out "$T/half" > /dev/null 2>&1
check "30 steps -> checkpoint -> resume to 60 gives the checkpoint of 60 straight steps, byte for byte" \
    cmp "$T/half/checkpoint.bin" "$T/ref/checkpoint.bin"
$G train --config data/tiny.cfg steps=30 --out "$T/other" > /dev/null 2>&1 &&
    $G train --resume "$T/other/checkpoint.bin" steps=60 --out "$T/resumed" > /dev/null 2>&1
check "resuming into another directory gives the same bytes" cmp "$T/resumed/checkpoint.bin" "$T/ref/checkpoint.bin"
$G train --resume "$T/other/checkpoint.bin" steps=40 lr=0.000125 log_every=10 --out "$T/newlr" > /dev/null 2>&1
$G train --config data/tiny.cfg steps=40 lr_drop_step=30 lr_drop_factor=0.25 log_every=10 --out "$T/drop" > /dev/null 2>&1
check "lr_drop_step=30, lr_drop_factor=0.25: log.tsv shows lr 1e-3 up to step 20 and 2.5e-4 from step 30" \
    sh -c "awk -F'\t' '\$1 ~ /^[0-9]/ { want = \$1 < 30 ? 0.001 : 0.00025; d = \$2 / want - 1; if (d > 1e-12 || d < -1e-12) bad = 1; n++ }
        END { exit !(n == 4 && !bad) }' $T/drop/log.tsv"
check "resume with lr= trains on at the new rate (log.tsv of steps 31-40 shows lr 0.000125)" \
    sh -c "awk -F'\t' '\$1 > 30 && \$1 <= 40 { n++; if (\$2 != 0.000125) bad = 1 } END { exit !(n == 1 && !bad) }' $T/newlr/log.tsv"
$G train --config data/tiny.cfg steps=30 lr_drop_step=20 --out "$T/dropped" > /dev/null 2>&1 &&
    $G train --resume "$T/dropped/checkpoint.bin" steps=40 lr=0.001 log_every=10 --out "$T/relr" > /dev/null 2>&1
check "resume after the drop with lr= equal to the config's lr still resets the rate (steps 31-40 at 0.001)" \
    sh -c "awk -F'\t' '\$1 > 30 && \$1 <= 40 { n++; if (\$2 != 0.001) bad = 1 } END { exit !(n == 1 && !bad) }' $T/relr/log.tsv"

# ---- dump and gradcheck ----------------------------------------------------------------------------
if $G dump "$T/ref/checkpoint.bin" "$T/dump" > "$T/dump.stdout" 2>&1; then
    missing=""
    for f in config.txt velocities.npy index.npy positions.npy g0.npy g.npy losses.txt losses.npy \
        W1.npy b1.npy W2.npy b2.npy W3.npy b3.npy theta0.npy grad_W1.npy grad_b1.npy grad_W2.npy \
        grad_b2.npy grad_W3.npy grad_b3.npy grad_theta0.npy; do
        [ -s "$T/dump/$f" ] || missing="$missing $f"
    done
    if [ -z "$missing" ]; then ok "dump writes every array of one batch"; else fail "dump is missing:$missing"; fi
else
    fail "dump failed: $(cat "$T/dump.stdout")"
fi
$G dump "$T/ref/checkpoint.bin" "$T/dump3" --threads 3 > "$T/dump3.stdout" 2>&1
same=1
for f in g.npy grad_W3.npy grad_theta0.npy losses.npy; do cmp -s "$T/dump/$f" "$T/dump3/$f" || same=0; done
check "dump --threads 3 writes the same states and gradients as dump on all cores" test $same = 1
check "./gridssl_f64 gradcheck passes" ./gridssl_f64 gradcheck --threads 1
check "./gridssl gradcheck (float) refuses and points to gridssl_f64" sh -c "! $G gradcheck 2> $T/gc.err && grep -q gridssl_f64 $T/gc.err"

# ---- bad input: one line naming the problem, non-zero exit, nothing written -------------------------
# The promise every failing command keeps (tests/fuzz.c checks the same): exit status 1; stderr
# ends with one line "gridssl: error: ..." and holds no other error line (before it, at most the
# progress lines of work already begun: "gridssl: ..." and "step ..."); OUTDIR was not created.
expect_error() { # expect_error "description" PATTERN OUTDIR command...
    desc=$1 pattern=$2 outdir=$3
    shift 3
    "$@" > "$T/err.stdout" 2> "$T/err.stderr"
    status=$?
    last=$(tail -n 1 "$T/err.stderr")
    if [ $status -ne 1 ]; then
        fail "$desc: exit status $status"
    elif ! printf '%s\n' "$last" | grep -q "^gridssl: error: .*$pattern" || [ "$(grep -c 'error' "$T/err.stderr")" -ne 1 ] ||
        grep -v '^gridssl: ' "$T/err.stderr" | grep -q -v '^step '; then
        fail "$desc: stderr was: $(cat "$T/err.stderr")"
    elif [ -e "$outdir" ]; then
        fail "$desc: $outdir was created"
    else
        ok "$desc ($last)"
    fi
}
expect_error "unknown key on the command line" "unknown config key 'bogus'" "$T/bad" \
    $G train --config data/tiny.cfg bogus=1 --out "$T/bad"
printf 'N = 8\ncolour = red\n' > "$T/colour.cfg"
expect_error "unknown key in a config file, with file and line" "colour.cfg:2: unknown config key 'colour'" "$T/bad" \
    $G train --config "$T/colour.cfg" --out "$T/bad"
expect_error "malformed number" "'12x' is not a decimal number" "$T/bad" $G train --config data/tiny.cfg N=12x --out "$T/bad"
expect_error "out-of-range value (negative size)" "'B': -5 is out of range" "$T/bad" $G train --config data/tiny.cfg B=-5 --out "$T/bad"
expect_error "missing config file" "cannot open $T/nope.cfg" "$T/bad" $G train --config "$T/nope.cfg" --out "$T/bad"
expect_error "--threads 0" "threads needs a whole number" "$T/bad" $G train --config data/tiny.cfg --threads 0 --out "$T/bad"
expect_error "unknown option" "unknown option '--frobnicate'" "$T/bad" $G train --frobnicate 1 --out "$T/bad"
expect_error "unknown command" "unknown command 'fly'" "$T/bad" $G fly
expect_error "dump with a missing argument" "usage: gridssl dump CHECKPOINT DIR" "$T/bad" $G dump "$T/ref/checkpoint.bin"
expect_error "dump with an unknown option" "unknown option '--out'" "$T/bad" $G dump "$T/ref/checkpoint.bin" "$T/bad" --out x
mkdir -p "$T/ck"
head -c 5000 "$T/ref/checkpoint.bin" > "$T/ck/truncated.bin"
expect_error "truncated checkpoint (eval)" "corrupt or truncated" "$T/ck/eval" $G eval "$T/ck/truncated.bin"
expect_error "truncated checkpoint (resume)" "corrupt or truncated" "$T/bad" $G train --resume "$T/ck/truncated.bin" --out "$T/bad"
cp "$T/ref/checkpoint.bin" "$T/ck/flipped.bin"
# byte 100 lies in the config text (ASCII), so writing 0xff always changes it
printf '\377' | dd of="$T/ck/flipped.bin" bs=1 seek=100 conv=notrunc 2> /dev/null
expect_error "one flipped byte in a checkpoint" "CRC-32 mismatch" "$T/ck/eval" $G eval "$T/ck/flipped.bin"
expect_error "a file that is not a checkpoint" "not a gridssl checkpoint" "$T/ck/eval" $G eval data/tiny.cfg --out "$T/ck/eval"
: > "$T/afile"
expect_error "unwritable output directory (train)" "cannot create output directory" "$T/afile/sub" \
    $G train --config data/tiny.cfg --out "$T/afile/sub"
expect_error "unwritable output directory (eval)" "cannot create output directory" "$T/afile/sub" \
    $G eval "$T/ref/checkpoint.bin" --out "$T/afile/sub"
expect_error "eval may change only eval_* keys" "cannot be changed here" "$T/ck/eval" $G eval "$T/ref/checkpoint.bin" N=3 --out "$T/ck/eval"
expect_error "resume cannot change the model's shape" "cannot change when resuming" "$T/bad" \
    $G train --resume "$T/ref/checkpoint.bin" N=20 --out "$T/bad"
expect_error "eval with a malformed --box list" "expected box sides in metres" "$T/ck/eval" $G eval "$T/ref/checkpoint.bin" --box 2,x --out "$T/ck/eval"
expect_error "score without --box" "score needs --box" "$T/ck/score" $G score "$E/ratemaps.npy" --out "$T/ck/score"
expect_error "score of a file that is not .npy" "not a .npy file" "$T/ck/score" $G score data/tiny.cfg --box 2 --out "$T/ck/score"
expect_error "model=sorscher in a hexagonal arena" "square arena only" "$T/ck/never" $G train --config data/sorscher_tiny.cfg arena=hexagon --out "$T/ck/never"
expect_error "SIC with T=101 (positions must stay exact)" "at most 100 steps" "$T/ck/never" $G train --config data/tiny.cfg T=101 --out "$T/ck/never"
expect_error "a resume that changes the model" "cannot change when resuming" "$T/ck/never" $G train --resume "$T/sorscher/checkpoint.bin" model=cw steps=50 --out "$T/ck/never"
expect_error "a resume of model=sorscher that moves its place cells" "place_cells, seed and arena_size" "$T/ck/never" $G train --resume "$T/sorscher/checkpoint.bin" seed=9 steps=50 --out "$T/ck/never"
leftovers=$(find "$T" -name '*.tmp' | head -3)
check "no temporary files are left behind anywhere" test -z "$leftovers"

# ---- hostile and broken inputs: a one-line error, a non-zero exit and nothing left behind ----------
# Each case once crashed, read out of bounds, ran on silently or left files; tests/fuzz.c (make fuzz)
# throws thousands of mutated configs, checkpoints and .npy files at the same promise.
printf 'N = 12\0\nsteps = abc\n' > "$T/nul.cfg"
expect_error "a NUL byte in a config file (the rest is not silently dropped)" "nul.cfg:1: NUL byte" "$T/bad" \
    $G train --config "$T/nul.cfg" --out "$T/bad"
printf 'N = 12\nN = 13\n' > "$T/twice.cfg"
expect_error "a key set twice in a config file" "twice.cfg:2: key 'N' is already set on line 1" "$T/bad" \
    $G train --config "$T/twice.cfg" --out "$T/bad"
expect_error "hexadecimal is not a config number" "'0x10' is not a decimal number" "$T/bad" $G train --config data/tiny.cfg N=0x10 --out "$T/bad"
expect_error "seed=1e300 is out of range (checked before any integer conversion)" "1e300 is out of range" "$T/bad" \
    $G train --config data/tiny.cfg seed=1e300 --out "$T/bad"
expect_error "a newline inside a key=value argument still gives one line" "'1?2' is not a decimal number" "$T/bad" \
    $G train --config data/tiny.cfg "N=1
2" --out "$T/bad"
expect_error "a config whose buffers exceed 2^28 elements is refused before anything is written" "need 81920000000 MLP activations" "$T/bad" \
    $G train N=1 hidden=8192 B=100000 T=100 permute=0 steps=1 --out "$T/bad"
expect_error "a batch of more than 2^14 states is refused: its matrix of pair distances would exceed 2^28" \
    "need 400000000 pair distances" "$T/bad" $G train --config data/tiny.cfg B=200 T=100 --out "$T/bad"
expect_error "a run that diverges stops with the step (NaN loss), and nothing is left" "training diverged at step" "$T/bad" \
    $G train --config data/tiny.cfg lr=10 clip=0 init_last_scale=1000 weight_decay=1000 --out "$T/bad"
$G train --config data/tiny.cfg lr=10 clip=0 init_last_scale=1000 weight_decay=1000 save_every=2 --out "$T/diverged" > /dev/null 2> "$T/diverged.err"
status=$?
kept=$(sed -n 's/.*checkpoint.bin keeps step \([0-9]*\)).*/\1/p' "$T/diverged.err")
check "a diverging run keeps its last good checkpoint, which evaluates (exit $status, kept step ${kept:-none})" \
    sh -c "test $status = 1 && test -n '$kept' && $G eval $T/diverged/checkpoint.bin --box 2 eval_walks=20 --out $T/diverged_eval"
expect_error "eval --box 1000 with 10^7 walks: no integer overflow" "walks of" "$T/ck/eval" \
    $G eval "$T/ref/checkpoint.bin" --box 1000 eval_walks=10000000 eval_bin_m=10 --out "$T/ck/eval"
expect_error "eval --box 1000 at the tiny config's 12.5 cm bins: refused before any work" "8000 bins per side" "$T/ck/eval" \
    $G eval "$T/ref/checkpoint.bin" --box 2,1000 --out "$T/ck/eval"
expect_error "resume with steps before the checkpoint's step" "steps=20 is before the checkpoint's step 60" "$T/bad" \
    $G train --resume "$T/ref/checkpoint.bin" steps=20 --out "$T/bad"
# ratemaps with an infinity (a '<f4' +inf written into the first map) once crashed score
cp "$E/ratemaps.npy" "$T/ck/inf.npy"
printf '\000\000\200\177' | dd of="$T/ck/inf.npy" bs=1 seek=$((128 + 4 * 5)) conv=notrunc 2> /dev/null
expect_error "score of ratemaps holding +inf" "value 5 is inf" "$T/ck/score" $G score "$T/ck/inf.npy" --box 2 --out "$T/ck/score"
# stdout that cannot be written (a full disk) is an error, and the outputs are not committed
expect_error "train with stdout on /dev/full" "cannot write to standard output" "$T/full" \
    sh -c "$G train --config data/tiny.cfg --out $T/full > /dev/full"
expect_error "eval with stdout on /dev/full" "cannot write to standard output" "$T/ck/eval" \
    sh -c "$G eval $T/ref/checkpoint.bin --box 2 --out $T/ck/eval > /dev/full"
# a full disk, simulated by a file-size limit (writes fail with EFBIG once SIGXFSZ is ignored)
for cmd in "train --config data/tiny.cfg --out $T/disk" "eval $T/ref/checkpoint.bin --box 2 --out $T/disk" \
    "dump $T/ref/checkpoint.bin $T/disk" "score $E/ratemaps.npy --box 2 --out $T/disk"; do
    expect_error "${cmd%% *} on a full disk: nothing half-written" "cannot write" "$T/disk" \
        sh -c "trap '' XFSZ; ulimit -f 4; exec $G $cmd > /dev/null"
done
# the log is committed before the checkpoint: a crash between the two renames never loses log rows.
# Seen here by making the checkpoint's rename fail (a directory stands where the file would go).
mkdir -p "$T/order/checkpoint.bin"
$G train --config data/tiny.cfg --out "$T/order" > /dev/null 2> "$T/order.err"
check "log.tsv is renamed into place before checkpoint.bin" \
    sh -c "grep -q 'cannot rename' $T/order.err && test -s $T/order/log.tsv && test -d $T/order/checkpoint.bin && ! ls $T/order | grep -q tmp"
leftovers=$(find "$T" -name '*.tmp' | head -3)
check "no temporary files are left behind by any of the failures" test -z "$leftovers"
