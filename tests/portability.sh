#!/bin/sh
# tests/portability.sh - what `make portability` runs: the determinism matrix (DETERMINISM in gridssl.c's manual).
#
# Every cell builds gridssl with one compiler, libc and target (through the Makefile, so its
# per-target flags are what is tested), runs the reference job (train data/tiny.cfg, then eval in
# a 2 m box) and compares the SHA-256 of the checkpoint, ratemaps.npy, montage.pgm and scores.csv
# with ref_outputs/tiny.sha256; then it resumes the x86-64 checkpoint of step 30 to step 60 and
# compares that with the golden checkpoint (a checkpoint written on one target resumes on every
# other). Each cell also trains and evaluates (in a 1 m arena) the two supervised baselines' tiny runs,
# data/cw_tiny.cfg (hexagonal arena) and data/sorscher_tiny.cfg, whose checkpoints, ratemaps and scores
# must hash to ref_outputs/cw_tiny.sha256 and sorscher_tiny.sha256; the result says "baselines DIFFERENT"
# when they do not. Foreign CPUs run under qemu-user (static binaries), Windows under wine. Two cells run under
# ASan + UBSan and valgrind memcheck, where any report fails the run. One row resumes on the host a
# checkpoint written on big-endian s390x.
# A cell whose toolchain is missing is an ERROR, never skipped. Three rows check the checks: an x87
# build must be refused at compile time, and two controls (aarch64 with FMA contraction, and dot8's
# lanes folded one after another) must come out DIFFERENT, or the matrix could not see what it is
# there to see.
# The tiny run never has a dead state, a learning-rate drop or an isometry speed floor, and its batch of
# B*T = 48 states (48 mod 32 = 16) ends the pair kernels' 32-column chunks where their buffers end: a
# heap over-read there, at B*T mod 32 = 0 or above 16, went unseen by ASan and valgrind. So the rows
# after the cells run more, each comparing its checkpoint with the one the host's default build
# (./gridssl) writes for the same command (the bytes never depend on the build): an edge run (B*T = 56,
# N = 3: dead states, the isometry band, the drop) under ASan + UBSan, valgrind, aarch64 and s390x; the
# default size (B*T = 640) under valgrind for 3 steps; and a real-size run (default.cfg through the full
# isometry weight and the drop) under ASan, aarch64 and s390x. The host's rows check in its log.tsv
# that each run reaches what it is there for. These rows take 4-5 minutes on 2 cores, the whole matrix 6.
# Prints one table and "portability: N passed, N failed"; exit status 0 iff all passed.
set -u
cd "$(dirname "$0")/.." || exit 2
B=tests/build/port
O=tests/out/port
rm -rf "$B" "$O"
mkdir -p "$B" "$O"
export WINEDEBUG=-all
FILES="checkpoint.bin eval/box_2m/ratemaps.npy eval/box_2m/montage.pgm eval/box_2m/scores.csv"
golden() { grep " $1\$" ref_outputs/tiny.sha256 | cut -d' ' -f1; }
BASE_FILES="checkpoint.bin eval/box_1m/ratemaps.npy eval/box_1m/scores.csv"
base_golden() { grep " $2\$" "ref_outputs/$1_tiny.sha256" | cut -d' ' -f1; } # base_golden MODEL FILE
passed=0
failed=0

# The step-30 checkpoint every cell resumes, written by the host's default build.
./gridssl train --config data/tiny.cfg steps=30 --out "$O/half" > /dev/null 2>&1 || echo "could not write the step-30 checkpoint"

printf '%-36s %-22s %6s  %-12s %-12s %-12s %-12s %-7s %s\n' build target seconds checkpoint ratemaps montage scores resume result
row() { # row BUILD TARGET SECONDS H1 H2 H3 H4 RESUME RESULT
    printf '%-36s %-22s %6s  %-12s %-12s %-12s %-12s %-7s %s\n' "$@"
    case "$9" in OK*) passed=$((passed + 1)) ;; *) failed=$((failed + 1)) ;; esac
}

# wine_rerun ARGS...: wine, run once more if it fails. Wine itself can fail to start a process (see
# the wineserver note below; seen once more in CI with the server held: an eval wrote nothing and
# gridssl printed no error). Every run of a wine cell goes through here (train, eval, resume); the
# rerun must give the golden bytes like any other run, and the row counts the reruns.
wine_rerun() {
    wine "$@" && return
    reruns=$((reruns + 1))
    wine "$@"
}

# cell ID NAME CC CFLAGS RUNNER [EXPECT [SOURCE [ARGS]]]: ID names the files, NAME the row. A control
# row has EXPECT "differ" and may name a SOURCE to compile directly, bypassing the Makefile (whose
# determinism flags come after CFLAGS and so would undo the perturbation). ARGS go to every run
# (--threads N). A cell whose ID was built before reuses that build.
cell() {
    id=$1 name=$2 cc=$3 cflags=$4 runner=$5 expect=${6:-same} source=${7:-} args=${8:-}
    bin_id=${id%%+*}
    exe="$B/$bin_id"
    case "$cc" in *mingw32*) exe="$exe.exe" ;; esac
    target=$($cc -dumpmachine 2> /dev/null) || target="$(uname -m) (host)"
    for tool in $cc ${runner%% *}; do
        if ! command -v "$tool" > /dev/null 2>&1; then
            row "$name" "$target" - - - - - - "ERROR: $tool missing"
            return
        fi
    done
    if [ -n "$source" ]; then
        build="$cc -std=c11 $cflags -I. -o $exe $source -lm"
    else
        build="make -s BIN=$exe CC=$cc CFLAGS=\"$cflags\" $exe"
    fi
    if [ -x "$exe" ] && [ "$bin_id" != "$id" ]; then
        : # built for an earlier row
    elif ! eval "$build" > "$O/$id.build" 2>&1; then
        row "$name" "$target" - - - - - - "ERROR: build failed ($(head -c 100 "$O/$id.build"))"
        return
    fi
    run=$runner reruns=0
    [ "$runner" = wine ] && run=wine_rerun
    start=$(date +%s.%N)
    $run "$exe" train --config data/tiny.cfg --out "$O/$id" $args > /dev/null 2> "$O/$id.err" &&
        $run "$exe" eval "$O/$id/checkpoint.bin" --box 2 $args > /dev/null 2>> "$O/$id.err"
    end=$(date +%s.%N)
    seconds=$(awk "BEGIN { printf \"%.1f\", $end - $start }")
    same=1
    hashes=""
    for f in $FILES; do
        h=$(sha256sum "$O/$id/$f" 2> /dev/null | cut -c1-12)
        [ -n "$h" ] || h=missing
        [ "$h" = "$(golden "$f" | cut -c1-12)" ] || same=0
        hashes="$hashes $h"
    done
    base=OK
    for m in cw sorscher; do
        $run "$exe" train --config "data/${m}_tiny.cfg" --out "$O/$id-$m" $args > /dev/null 2>> "$O/$id.err" &&
            $run "$exe" eval "$O/$id-$m/checkpoint.bin" --box 1 $args > /dev/null 2>> "$O/$id.err"
        for f in $BASE_FILES; do
            [ "$(sha256sum "$O/$id-$m/$f" 2> /dev/null | cut -d' ' -f1)" = "$(base_golden $m "$f")" ] || base=DIFFERENT
        done
    done
    $run "$exe" train --resume "$O/half/checkpoint.bin" steps=60 --out "$O/$id-resume" $args > /dev/null 2>&1
    resume=DIFF
    [ "$(sha256sum "$O/$id-resume/checkpoint.bin" 2> /dev/null | cut -d' ' -f1)" = "$(golden checkpoint.bin)" ] && resume=OK
    if [ "$expect" = differ ]; then
        result="OK (control: DIFFERENT, as it must be)"
        [ $same = 1 ] && result="FAIL: the control gave the golden bytes; the matrix cannot see it"
    elif [ $same = 1 ] && [ $resume = OK ] && [ $base = OK ]; then
        result=OK
        [ $reruns = 0 ] || result="OK (wine failed to start $reruns of its runs; rerun)"
    else
        result=DIFFERENT
        [ $base = OK ] || result="DIFFERENT (baselines DIFFERENT)"
    fi
    # shellcheck disable=SC2086
    row "$name" "$target" "$seconds" $hashes "$resume" "$result"
}

cell gcc-O0 "gcc -O0" gcc "-O0" ""
cell gcc-O2 "gcc -O2" gcc "-O2" ""
cell gcc-O2+t1 "gcc -O2, 1 thread" gcc "-O2" "" same "" "--threads 1"
cell gcc-O2+t2 "gcc -O2, 2 threads" gcc "-O2" "" same "" "--threads 2"
cell gcc-O2+t3 "gcc -O2, 3 threads (uneven)" gcc "-O2" "" same "" "--threads 3"
cell gcc-O3-native "gcc -O3 -march=native" gcc "-O3 -march=native" ""
cell clang-O2 "clang -O2" clang "-O2" ""
cell clang-O3-native "clang -O3 -march=native" clang "-O3 -march=native" ""
cell tcc "tcc" tcc "" ""
cell musl "musl-gcc -O2 -static" musl-gcc "-O2 -static" ""
cell aarch64 "aarch64 gcc -O2 (qemu)" aarch64-linux-gnu-gcc "-O2 -static" qemu-aarch64
cell aarch64+t3 "aarch64, 3 threads (qemu)" aarch64-linux-gnu-gcc "-O2 -static" qemu-aarch64 same "" "--threads 3"
cell armhf "armhf gcc -O2 (qemu)" arm-linux-gnueabihf-gcc "-O2 -static" qemu-arm
cell i686 "i686 gcc -O2, SSE2 (qemu)" i686-linux-gnu-gcc "-O2 -static" qemu-i386
cell riscv64 "riscv64 gcc -O2 (qemu)" riscv64-linux-gnu-gcc "-O2 -static" qemu-riscv64
cell ppc64le "ppc64le gcc -O2 (qemu)" powerpc64le-linux-gnu-gcc "-O2 -static" qemu-ppc64le
cell s390x "s390x gcc -O2, big-endian (qemu)" s390x-linux-gnu-gcc "-O2 -static" qemu-s390x
# wine starts a wineserver for the first process and stops it a moment after the last one exits; a
# run that starts in that moment can lose its server ("wine client error:0: recvmsg: Connection
# reset by peer", once in CI, between a cell's train and eval). One persistent server for both cells.
command -v wineserver > /dev/null 2>&1 && wineserver -p > /dev/null 2>&1
cell mingw "mingw-w64 gcc -O2 (wine)" x86_64-w64-mingw32-gcc "-O2" wine
cell mingw+t3 "mingw-w64, 3 threads (wine)" x86_64-w64-mingw32-gcc "-O2" wine same "" "--threads 3"
command -v wineserver > /dev/null 2>&1 && wineserver -k > /dev/null 2>&1
cell control-fma "control: aarch64 -ffp-contract=fast" aarch64-linux-gnu-gcc "-O2 -static -ffp-contract=fast" qemu-aarch64 differ gridssl.c
# the second control folds dot8's eight lanes one after another instead of pairwise: one reduction,
# reassociated (merely reversing the pairwise fold would change nothing: + is commutative)
sed 's/((lane\[0\] + lane\[1\]) + (lane\[2\] + lane\[3\])) + ((lane\[4\] + lane\[5\]) + (lane\[6\] + lane\[7\]))/((((((lane[0] + lane[1]) + lane[2]) + lane[3]) + lane[4]) + lane[5]) + lane[6]) + lane[7]/' gridssl.c > "$B/reversed.c"
if cmp -s gridssl.c "$B/reversed.c"; then
    row "control: dot8 folded sequentially" - - - - - - - "FAIL: the sed found no dot8 fold to reverse"
else
    cell control-reduction "control: dot8 folded sequentially" gcc "-O2 -ffp-contract=off" "" differ "$B/reversed.c"
fi

# Sanitizers and valgrind: no undefined behaviour, no invalid or uninitialised memory use, and the
# same bytes (-fno-sanitize-recover makes any report fatal; valgrind's --error-exitcode likewise).
cell asan "gcc ASan + UBSan -O1" gcc "-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all" ""
VALGRIND="valgrind -q --error-exitcode=3 --leak-check=full --errors-for-leak-kinds=definite"
cell valgrind "gcc -O2 under valgrind memcheck" gcc "-O2 -g" "$VALGRIND"

# reached DIR: what the run in DIR went through, read from its config.txt and log.tsv: the first logged
# step whose learning rate is below the one before (the drop), the first at the full isometry weight,
# how many logged steps had dead states, a nonzero isometry term (at least two steps of a batch inside
# the speed band) and, when they are on, a nonzero L_dist and L_dir (their columns found by name).
# Prints "drop@D full-iso@F dead:K/R iso:I/R [dist:J/R] [dir:L/R]"; exit status 0 iff the drop comes at
# lr_drop_step, the full weight before it, each addition that is on was nonzero, and, with a second
# argument "dead", a dead state.
reached() {
    awk -F'\t' -v need_dead="${2:-}" '
        FILENAME ~ /config[.]txt$/ { split($0, kv, " = "); cfg[kv[1]] = kv[2]; next }
        FNR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        {
            if (lr != "" && $2 + 0 < lr + 0 && drop == "") drop = $1
            lr = $2
            if (full == "" && $8 + 0 == cfg["lambda_iso"] + 0) full = $1
            rows++
            if ($9 > 0) dead++
            if ($6 > 0) iso++
            if (col["dist"] && $col["dist"] > 0) dist++
            if (col["dir"] && $col["dir"] > 0) dir++
        }
        END {
            dist_on = cfg["lambda_dist"] + 0 > 0; dir_on = cfg["lambda_dir"] + 0 > 0
            printf "drop@%s full-iso@%s dead:%d/%d iso:%d/%d%s%s\n", drop == "" ? "none" : drop, full == "" ? "none" : full,
                dead, rows, iso, rows, dist_on ? sprintf(" dist:%d/%d", dist, rows) : "", dir_on ? sprintf(" dir:%d/%d", dir, rows) : ""
            exit !(drop != "" && drop + 0 == cfg["lr_drop_step"] + 0 && full != "" && full + 0 < drop + 0 &&
                   (need_dead == "" || dead > 0) && (!dist_on || dist > 0) && (!dir_on || dir > 0))
        }' "$1/config.txt" "$1/log.tsv" 2> /dev/null
}

# reference ID NAME CHECK -- ARGS...: the host's default build (./gridssl, as make builds it) runs
# `train ARGS` into $O/ID; the rows of `versus` compare with its checkpoint. CHECK "drop": the row is OK
# only if the run reaches what `reached` checks, and says what that is; "dead": dead states too; "-":
# the run has only to finish.
reference() {
    id=$1 name=$2 check=$3
    shift 4
    start=$(date +%s.%N)
    ./gridssl train "$@" --out "$O/$id" > /dev/null 2> "$O/$id.err"
    rc=$?
    seconds=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }")
    h=$(sha256sum "$O/$id/checkpoint.bin" 2> /dev/null | cut -c1-12)
    if [ $rc != 0 ] || [ -z "$h" ]; then
        rm -f "$O/$id/checkpoint.bin"
        row "$name" "$(uname -m) (host)" "$seconds" "${h:--}" - - - - "ERROR: exit $rc: $(why "$O/$id.err")"
    elif [ "$check" = - ]; then
        row "$name" "$(uname -m) (host)" "$seconds" "$h" - - - - OK
    elif what=$(reached "$O/$id" "$([ "$check" = dead ] && echo dead)"); then
        row "$name" "$(uname -m) (host)" "$seconds" "$h" - - - - "OK (reaches $what)"
    else
        row "$name" "$(uname -m) (host)" "$seconds" "$h" - - - - "FAIL: reaches only $what"
    fi
}

# why FILE: the line of FILE that says why a run failed: the first sanitizer or valgrind report, else
# the last line (gridssl's own error).
why() {
    { grep -m1 -E 'ERROR: |runtime error|== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and|[0-9,]+ bytes in)' "$1" ||
        tail -n 1 "$1"; } 2> /dev/null | sed 's/^==[0-9]*== *//' | cut -c1-100
}

# versus ID NAME BIN CC RUNNER REF -- ARGS...: the build $B/BIN (made by a cell above with compiler CC)
# runs `train ARGS` under RUNNER into $O/ID, and its checkpoint must equal the reference REF's. Any
# sanitizer or valgrind report makes the run exit nonzero: an ERROR.
versus() {
    id=$1 name=$2 exe=$B/$3 cc=$4 runner=$5 ref=$6
    shift 7
    target=$($cc -dumpmachine 2> /dev/null) || target=-
    for tool in $cc ${runner%% *}; do
        if ! command -v "$tool" > /dev/null 2>&1; then
            row "$name" "$target" - - - - - - "ERROR: $tool missing"
            return
        fi
    done
    if [ ! -x "$exe" ]; then
        row "$name" "$target" - - - - - - "ERROR: no build $exe (see its cell above)"
        return
    fi
    hr=$(sha256sum "$O/$ref/checkpoint.bin" 2> /dev/null | cut -c1-12)
    if [ -z "$hr" ]; then
        row "$name" "$target" - - - - - - "ERROR: no host checkpoint $O/$ref to compare with"
        return
    fi
    start=$(date +%s.%N)
    $runner "$exe" train "$@" --out "$O/$id" > /dev/null 2> "$O/$id.err"
    rc=$?
    seconds=$(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }")
    h=$(sha256sum "$O/$id/checkpoint.bin" 2> /dev/null | cut -c1-12)
    if [ $rc != 0 ]; then
        row "$name" "$target" "$seconds" "${h:--}" - - - - "ERROR: exit $rc: $(why "$O/$id.err")"
    elif [ "$h" = "$hr" ]; then
        row "$name" "$target" "$seconds" "$h" - - - - OK
    else
        row "$name" "$target" "$seconds" "${h:-missing}" - - - - "DIFFERENT (host: $hr)"
    fi
}

# The edge run: data/tiny.cfg with B = 7, so a batch (accum 2 halves) has B*T = 56 states: four blocks
# of 16 rows, the last one half full, and a last 32-column chunk of 24 columns, where the pair kernels'
# reads end closest to the end of their buffers (the over-read ASan once missed came at B*T mod 32 = 0
# or above 16, with more than one block). N = 3 makes states die (all of z <= 0; 11 of the 60 steps,
# between 7 and 18) and takes the tails of the 8-lane sums; the isometry band is 2-10 cm (the square's
# speeds reach 21 cm); L_dist is on (far pairs up to 12 cm; the pair kernels' sqrt path), and L_dir (20
# of the 56 states, 5 headings, dead probe steps among them); the weights
# ramp in over steps 21-41 (tiny.cfg), the learning rate drops after step 50 and the plateau scheduler
# halves it after 53. 0.1 s on the host and under ASan, 1-2 s under valgrind or qemu (2 cores).
EDGE="--config data/tiny.cfg B=7 N=3 iso_vmin=0.02 iso_vmax=0.1 lambda_dist=0.3 dist_scale=5 dist_rmax=0.12 sep_rmax=0.3 lambda_dir=2 dir_headings=5 dir_states=20 lr_drop_step=50 log_every=1"
# shellcheck disable=SC2086
{
reference edge "host: edge run (B*T=56, N=3)" dead -- $EDGE
versus edge-asan "ASan + UBSan: edge run" asan gcc "" edge -- $EDGE
versus edge-valgrind "valgrind: edge run" valgrind gcc "$VALGRIND" edge -- $EDGE
versus edge-aarch64 "aarch64 (qemu): edge run" aarch64 aarch64-linux-gnu-gcc qemu-aarch64 edge -- $EDGE
versus edge-s390x "s390x (qemu): edge run" s390x s390x-linux-gnu-gcc qemu-s390x edge -- $EDGE
}
# The default size (B*T = 640: 40 row blocks, 20 column chunks; 1.1 M parameters) under valgrind, some
# 50 times slower than native: 3 steps, 15 s (ASan runs this size in the real-size rows below).
# shellcheck disable=SC2086
{
reference default3 "host: default.cfg, 3 steps" - -- --config data/default.cfg steps=3 --threads 2
versus default3-valgrind "valgrind: default.cfg, 3 steps" valgrind gcc "$VALGRIND" default3 -- --config data/default.cfg steps=3 --threads 2
}
# The real-size run: data/default.cfg (B*T = 640, N = 64, hidden 256, the isometry band 5-10 cm) with
# its schedule compressed so that few steps pass every phase: the isometry weight ramps from 0 at step 1
# to full at step 17, the learning rate drops after step 32, and 16 steps run at the dropped rate. No
# state dies at this size (the edge run has them). 48 steps take 2 s on the host, 15-30 s under ASan,
# 60-80 s under qemu-aarch64 and 160-185 s under qemu-s390x (2 cores; two runs): with the rows above,
# 4-5 minutes. A few hundred steps (300: 6 s on the host) would take 16-19 minutes on s390x alone.
REAL="--config data/default.cfg steps=48 iso_ramp_steps=16 lr_drop_step=32 log_every=4"
# shellcheck disable=SC2086
{
reference real "host: real size, 48 steps" drop -- $REAL
versus real-asan "ASan + UBSan: real size" asan gcc "" real -- $REAL
versus real-aarch64 "aarch64 (qemu): real size" aarch64 aarch64-linux-gnu-gcc qemu-aarch64 real -- $REAL
versus real-s390x "s390x (qemu): real size" s390x s390x-linux-gnu-gcc qemu-s390x real -- $REAL
}

# An x87 build must not compile (FLT_EVAL_METHOD != 0 -> #error).
if ! command -v i686-linux-gnu-gcc > /dev/null 2>&1; then
    row "x87 (-mfpmath=387)" i686-linux-gnu - - - - - - "ERROR: i686-linux-gnu-gcc missing"
elif i686-linux-gnu-gcc -std=c11 -ffp-contract=off -mfpmath=387 -o "$B/x87" gridssl.c -lm > "$O/x87.build" 2>&1; then
    row "x87 (-mfpmath=387)" i686-linux-gnu - - - - - - "FAIL: an x87 build compiled"
elif grep -q "FLT_EVAL_METHOD == 0" "$O/x87.build"; then
    row "x87 (-mfpmath=387)" i686-linux-gnu - - - - - - "OK (refused by #error at compile time)"
else
    row "x87 (-mfpmath=387)" i686-linux-gnu - - - - - - "FAIL: refused, but not by gridssl's #error"
fi

# A checkpoint written on big-endian s390x, resumed on the x86-64 host.
s390x="$B/s390x"
if [ -x "$s390x" ] && command -v qemu-s390x > /dev/null 2>&1; then
    qemu-s390x "$s390x" train --config data/tiny.cfg steps=30 --out "$O/s390x-half" > /dev/null 2>&1
    ./gridssl train --resume "$O/s390x-half/checkpoint.bin" steps=60 --out "$O/s390x-on-host" > /dev/null 2>&1
    h=$(sha256sum "$O/s390x-on-host/checkpoint.bin" 2> /dev/null | cut -d' ' -f1)
    if [ "$h" = "$(golden checkpoint.bin)" ]; then r=OK; else r=DIFFERENT; fi
    row "s390x steps 0-30, host steps 30-60" "s390x -> x86-64" - "$(echo "$h" | cut -c1-12)" - - - "$r" "$r"
else
    row "s390x steps 0-30, host steps 30-60" "s390x -> x86-64" - - - - - - "ERROR: no s390x build"
fi
echo "golden: $(for f in $FILES; do printf '%s ' "$(golden "$f" | cut -c1-12)"; done)(ref_outputs/tiny.sha256)"
for m in cw sorscher; do
    echo "golden: $(for f in $BASE_FILES; do printf '%s ' "$(base_golden $m "$f" | cut -c1-12)"; done)(ref_outputs/${m}_tiny.sha256)"
done
echo "portability: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
