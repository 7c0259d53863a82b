#!/bin/sh
# tests/run.sh - what `make test` runs: the unit tests in both precisions, then the command-line
# tests. Every check prints "ok   ..." or "FAIL ..."; a part that exits non-zero without saying
# why is a failure too. Ends with the plain line "N passed, N failed"; exit status 0 iff none failed.
set -u
cd "$(dirname "$0")/.." || exit 2
log=tests/last_run.log
: > "$log"
run_part() {
    name=$1
    shift
    "$@" > tests/part.log 2>&1
    status=$?
    cat tests/part.log >> "$log"
    cat tests/part.log
    if [ "$status" -ne 0 ] && ! grep -q '^FAIL' tests/part.log; then
        echo "FAIL $name exited with status $status" | tee -a "$log"
    fi
    rm -f tests/part.log
}
run_part unit_f32 ./tests/unit_f32
run_part unit_f64 ./tests/unit_f64
run_part cli sh tests/cli.sh
# AddressSanitizer and UBSan on the sizes where the pair kernels' chunks end differently: the default
# (B*T = 640, a multiple of 32) and B*T = 56 (56 mod 32 > 16); any report is fatal (make asan).
sanitized() {
    if ! make -s asan CC="${CC:-cc}" > tests/out/asan.build 2>&1; then
        echo "FAIL make asan (the sanitizer build): $(head -c 300 tests/out/asan.build)"
        return
    fi
    for run in "train steps=2 --out tests/out/asan_default" "eval tests/out/asan_default/checkpoint.bin --box 2 eval_walks=50" \
        "train --config data/tiny.cfg B=7 steps=4 --out tests/out/asan_56"; do
        if ./gridssl_asan $run > /dev/null 2> tests/out/asan.err; then echo "ok   ASan + UBSan clean: gridssl $run"
        else echo "FAIL ASan + UBSan: gridssl $run: $(grep -m 1 -E 'ERROR|runtime error' tests/out/asan.err)"; fi
    done
}
run_part sanitizers sanitized
passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^FAIL' "$log")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
