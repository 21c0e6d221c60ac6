#!/usr/bin/env bash
# Builds the cargo-fuzz targets and runs each for FUZZ_SECONDS (default 60) on the stable
# toolchain (--sanitizer none), printing libFuzzer's execution count per target.
# Not part of CI (.ci/run); tests/fuzz_corpus.rs replays the committed corpus there instead.
#
#   fuzz/run.sh                         # every target, 60 s each
#   FUZZ_SECONDS=3600 fuzz/run.sh scenario
#   FUZZ_JOBS=2 fuzz/run.sh             # parallel libFuzzer workers per target
#
# New inputs go to fuzz/work/<target>/ (ignored by git), seeded from fuzz/corpus/<target>/.
# A finding stops the run and lands in fuzz/artifacts/<target>/; replay it with
# `cargo fuzz run <target> --sanitizer none <file>`. To fold new coverage into the committed
# corpus: `cargo fuzz cmin <target> --sanitizer none` after copying fuzz/work/<target>/* into
# fuzz/corpus/<target>/ (keep the whole corpus around 1 MB: CI replays all of it).
set -euo pipefail
cd "$(dirname "$0")"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
seconds="${FUZZ_SECONDS:-60}"
jobs="${FUZZ_JOBS:-1}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode_record scenario differential)
status=0
for t in "${targets[@]}"; do
    # `scenario` is built without comparison tracing: it spent a third of its time in the
    # tracing hooks, its inputs are decoded by `arbitrary` (no magic values for the hooks to
    # find), and its committed corpus reaches the same edge coverage either way (TESTING.md).
    flags=(--sanitizer none)
    [ "$t" != scenario ] || flags+=(--no-trace-compares)
    cargo fuzz build "${flags[@]}" "$t"
    mkdir -p "work/$t" "corpus/$t"
    log="work/$t.log"
    echo "== $t: ${seconds}s"
    set +e
    if [ "$jobs" -gt 1 ]; then
        cargo fuzz run "$t" "${flags[@]}" "work/$t" "corpus/$t" -- \
            -max_total_time="$seconds" -print_final_stats=1 -jobs="$jobs" -workers="$jobs" \
            >"$log" 2>&1
        rc=$?
        # The workers' own logs carry their final stats; libFuzzer also copies them into the
        # main log, so count only theirs (counting both doubled the figure). A worker that got
        # two interrupts prints its stats twice: take the last count of each worker's log.
        execs=0
        for w in fuzz-*.log; do
            n=$(grep -h 'stat::number_of_executed_units' "$w" | tail -1 | awk '{print $2}')
            execs=$((execs + ${n:-0}))
        done
        cat fuzz-*.log >"work/$t.workers.log" 2>/dev/null && rm -f fuzz-*.log
    else
        cargo fuzz run "$t" "${flags[@]}" "work/$t" "corpus/$t" -- \
            -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
        rc=$?
        execs=$(grep -h 'stat::number_of_executed_units' "$log" | tail -1 | awk '{print $2 + 0}')
    fi
    set -e
    echo "$t: $execs executions in ${seconds}s (exit $rc; log fuzz/$log)"
    if [ "$rc" -ne 0 ]; then
        grep -h -m1 -A3 'panicked' "$log" || tail -20 "$log"
        status=1
    fi
done
exit "$status"
