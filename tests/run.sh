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
passed=$(grep -c '^ok ' "$log")
failed=$(grep -c '^FAIL' "$log")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
