#!/bin/sh
# tests/demo_check.sh - the default run, end to end (make demo-check; .ci/run runs it after make test):
# ./gridssl train with no config, then eval in the 2 m box, must give the bytes recorded in
# ref_outputs/default_seed4.sha256, and the montage and period histogram must be byte for byte the
# pictures the README shows. So the README's grid cells are what a fresh clone grows, on any machine.
# About 3 min (training and one box) on 2 cores; its progress lines go to stderr. Prints "ok   ..." /
# "FAIL ..." and "N passed, N failed"; leaves tests/out_demo/ behind only when something failed.
set -u
G=./gridssl
D=tests/out_demo
rm -rf "$D"
mkdir -p "$D"
pass=0 failed=0
report() { # report "description" exit-status
    if [ "$2" = 0 ]; then echo "ok   $1"; pass=$((pass + 1)); else echo "FAIL $1"; failed=$((failed + 1)); fi
}
check() { # check "description" command...
    desc=$1
    shift
    "$@" > /dev/null 2>&1
    report "$desc" $?
}
hash_of() { # a missing file has no hash: it never equals one
    if [ -f "$1" ]; then sha256sum "$1" | cut -d' ' -f1; else echo "missing:$1"; fi
}
golden() { grep " $1\$" ref_outputs/default_seed4.sha256 | cut -d' ' -f1; }

$G train --out "$D/run" > "$D/train.stdout"
report "./gridssl train (built-in defaults = data/default.cfg) succeeds" $?
check "./gridssl eval --box 2 succeeds" $G eval "$D/run/checkpoint.bin" --box 2
for f in checkpoint.bin eval/box_2m/ratemaps.npy eval/box_2m/scores.csv; do
    check "$f matches ref_outputs/default_seed4.sha256" test "$(hash_of "$D/run/$f")" = "$(golden "$f")"
done
check "the 2 m montage is ref_outputs/default_seed4_montage.png" cmp "$D/run/eval/box_2m/montage.png" ref_outputs/default_seed4_montage.png
check "the period histogram is ref_outputs/default_seed4_period_histogram.png" \
    cmp "$D/run/eval/box_2m/period_histogram.png" ref_outputs/default_seed4_period_histogram.png
echo "$pass passed, $failed failed"
[ "$failed" = 0 ] && rm -rf "$D"
[ "$failed" = 0 ]
