#!/usr/bin/env bash
# CLI benchmarks for issue 6: builds logs, runs each baseline and walctl alternately, and prints
# medians and ratios as Markdown table rows for docs/PERFORMANCE.md.
#
#   benches/cli.sh                 # everything (needs ~30 GB free in $BENCH_DIR)
#   ROWS="verify export" benches/cli.sh
#
# Rows: verify, export, append_big, append_lines, memory, memory_damaged, compact
# (memory_damaged is not in the default set; it needs python3 to damage its log).
# Knobs: BENCH_DIR (default /tmp/walctl-bench-cli), REPS (5), LOG_GIB (1, the verify/export
# logs), BIG_GIB (10, the log for the one-record append), MEM_GIB (4, peak-memory log),
# LINES (10000000), PAYLOADS ("1024 100", the record sizes of the verify/export logs), WALCTL
# (the binary to measure, default the one built here: set it to compare two builds). For how
# verify grows with size: BENCH_DIR=/tmp/wb16 LOG_GIB=16 PAYLOADS=1024 ROWS=verify benches/cli.sh.
# The page cache is warm for every run: each command runs once untimed first.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_DIR=${BENCH_DIR:-/tmp/walctl-bench-cli}
REPS=${REPS:-5}
LOG_GIB=${LOG_GIB:-1}
BIG_GIB=${BIG_GIB:-10}
MEM_GIB=${MEM_GIB:-4}
LINES=${LINES:-10000000}
PAYLOADS=${PAYLOADS:-"1024 100"}
ROWS=${ROWS:-"verify export append_big append_lines memory compact"}
cargo build --release --quiet --bin walctl --example mklog
W=${WALCTL:-$PWD/target/release/walctl}
MK=$PWD/target/release/examples/mklog
mkdir -p "$BENCH_DIR"

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# time_ns CMD...: wall time of one run in nanoseconds, output discarded.
time_ns() { local t0; t0=$(now); "$@" >/dev/null 2>&1 || true; echo $(( $(now) - t0 )); }

# row NAME BYTES 'baseline command' 'walctl command' ['setup']: prints throughput of both and
# the ratio. The setup command runs untimed before every run of either.
row() {
  local name=$1 bytes=$2 base=$3 ours=$4 setup=${5:-true} b=() o=()
  bash -c "$setup"; bash -c "$base" >/dev/null 2>&1 || true
  bash -c "$setup"; bash -c "$ours" >/dev/null 2>&1 || true
  for _ in $(seq "$REPS"); do
    bash -c "$setup"; b+=("$(time_ns bash -c "$base")")
    bash -c "$setup"; o+=("$(time_ns bash -c "$ours")")
  done
  local bm om
  bm=$(printf '%s\n' "${b[@]}" | median); om=$(printf '%s\n' "${o[@]}" | median)
  awk -v n="$name" -v by="$bytes" -v b="$bm" -v o="$om" 'BEGIN {
    printf "| %s | %.0f MB/s (%.3f s) | %.0f MB/s (%.3f s) | %.2fx |\n", n, by/b*1000, b/1e9, by/o*1000, o/1e9, b/o }'
}

log_of() { # log_of NAME GIB PAYLOAD: builds once, prints the directory
  local d=$BENCH_DIR/$1
  if [ ! -d "$d" ]; then "$MK" "$d" $(( $2 << 30 )) "$3" >/dev/null; fi
  echo "$d"
}

bytes_of() { du -cb "$1"/*.wal | tail -1 | cut -f1; }

# peak_anon ARGS...: runs walctl with ARGS, output discarded, and prints its peak anonymous RSS
# in KiB (RssAnon polled every 10 ms: mapped segment pages are not anonymous) and its wall ms.
peak_anon() {
  local t0 pid peak=0 a
  t0=$(now); "$W" "$@" >/dev/null 2>&1 & pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    a=$(awk '/RssAnon/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
    [ "${a:-0}" -gt "$peak" ] && peak=$a; sleep 0.01
  done
  wait "$pid" || true
  echo "$peak $(( ($(now) - t0) / 1000000 ))"
}

# damaged_log: 2,000,000 records of 67 bytes (99 with their header, three 64 MiB segments)
# with a byte of every other record's payload flipped: 999,999 damaged places.
damaged_log() {
  local d=$BENCH_DIR/log-damaged
  if [ ! -d "$d" ]; then
    python3 -c 'import sys; sys.stdout.buffer.write((b"x" * 67 + b"\n") * 2000000)' |
      "$W" --dir "$d" append --lines >/dev/null 2>&1
    python3 - "$d" <<'PY'
import glob, sys
for path in sorted(glob.glob(sys.argv[1] + "/*.wal")):
    b = bytearray(open(path, "rb").read())
    off, i = 12288, 0
    while off + 99 <= len(b) and any(b[off:off + 32]):
        if i % 2 == 1:
            b[off + 40] ^= 0xFF
        off, i = off + 99, i + 1
    open(path, "wb").write(b)
PY
  fi
  echo "$d"
}

echo "| workload | baseline | walctl | walctl / baseline |"
echo "|---|---|---|---|"
for r in $ROWS; do case $r in
verify)
  for p in $PAYLOADS; do
    d=$(log_of "log-$p" "$LOG_GIB" "$p"); n=$(bytes_of "$d")
    row "verify, ${LOG_GIB} GiB, $p B records (baseline: cat)" "$n" "cat $d/*.wal" "$W --dir $d verify"
  done ;;
export)
  for p in $PAYLOADS; do
    d=$(log_of "log-$p" "$LOG_GIB" "$p"); n=$(bytes_of "$d")
    row "export-jsonl, ${LOG_GIB} GiB, $p B records (baseline: cat)" "$n" "cat $d/*.wal" "$W --dir $d export-jsonl"
    row "dump --json, ${LOG_GIB} GiB, $p B records (baseline: cat)" "$n" "cat $d/*.wal" "$W --dir $d dump --json"
  done ;;
append_big)
  big=$(log_of "log-big" "$BIG_GIB" 1024); small=$BENCH_DIR/log-empty
  rm -rf "$small"; "$W" --dir "$small" append first >/dev/null
  row "append one record, no sync: ${BIG_GIB} GiB log (baseline: empty log)" 1 \
    "$W --dir $small append x" "$W --dir $big append x"
  # The log above ends in an almost empty segment; these end in a full one (63 MiB of records),
  # the worst case for open, which reads the last segment.
  for p in 1024 100; do
    full=$BENCH_DIR/log-full-$p
    [ -d "$full" ] || "$MK" "$full" $(( 63 << 20 )) "$p" >/dev/null
    row "append one record, no sync: full last segment of $p B records (baseline: empty log)" 1 \
      "$W --dir $small append x" "$W --dir $full append x"
  done ;;
append_lines)
  in=$BENCH_DIR/lines-$LINES.txt  # named by its size, so a run with another LINES builds its own
  [ -f "$in" ] || seq -f 'line %.0f of the input' 1 "$LINES" > "$in"
  n=$(stat -c %s "$in")
  # Both start from nothing, and the previous run's dirty pages are written back untimed.
  row "append --lines, $LINES lines (baseline: cat into a file)" "$n" \
    "cat $in > $BENCH_DIR/cat.out" "$W --dir $BENCH_DIR/lines-log append --lines < $in" \
    "rm -rf $BENCH_DIR/cat.out $BENCH_DIR/lines-log; sync"
  # The ceiling the record framing sets: cat of the bytes walctl writes for the same lines (its
  # log's segments: a 32-byte header per line, and each segment's preamble) against cat of the
  # lines. The ratio is the best any writer of this format could do at cat's own speed.
  ref=$BENCH_DIR/lines-ref-$LINES
  [ -d "$ref" ] || "$W" --dir "$ref" append --lines < "$in" > /dev/null
  row "cat of the log append --lines writes (baseline: cat of the lines)" "$n" \
    "cat $in > $BENCH_DIR/cat.out" "cat $ref/*.wal > $BENCH_DIR/cat.out" \
    "rm -f $BENCH_DIR/cat.out; sync" ;;
compact)
  # Retention: drop the first half of the 1 KiB-record log. Baseline: the same compaction
  # rewriting every survivor (--rewrite); walctl: in place. Each run gets a fresh copy of the
  # log, made untimed, and its page cache is dropped from the timing by a sync first.
  src=$(log_of "log-1024" "$LOG_GIB" 1024); n=$(bytes_of "$src")
  last=$("$W" --dir "$src" dump --tail 1 --json | sed 's/.*"seq":\([0-9]*\).*/\1/')
  half=$(( last / 2 )); b=(); o=()
  for _ in $(seq "$REPS"); do
    for mode in rewrite in_place; do
      rm -rf "$BENCH_DIR/compact"; cp -r "$src" "$BENCH_DIR/compact"; sync
      flag=""; [ "$mode" = rewrite ] && flag="--rewrite"
      t=$(time_ns "$W" --dir "$BENCH_DIR/compact" compact --before "$half" $flag)
      if [ "$mode" = rewrite ]; then b+=("$t"); else o+=("$t"); fi
    done
  done
  rm -rf "$BENCH_DIR/compact"
  bm=$(printf '%s\n' "${b[@]}" | median); om=$(printf '%s\n' "${o[@]}" | median)
  awk -v n="compact --before $half, ${LOG_GIB} GiB log of 1 KiB records (baseline: --rewrite)" \
      -v by="$n" -v b="$bm" -v o="$om" 'BEGIN {
    printf "| %s | %.0f MB/s (%.3f s) | %.0f MB/s (%.3f s) | %.2fx |\n", n, by/b*1000, b/1e9, by/o*1000, o/1e9, b/o }' ;;
memory)
  d=$(log_of "log-mem" "$MEM_GIB" 1024)
  for cmd in "verify" "dump --json" "export-jsonl"; do
    read -r peak _ < <(peak_anon --dir "$d" $cmd)
    echo "| peak anonymous RSS, walctl $cmd, ${MEM_GIB} GiB log | - | $(( peak / 1024 )) MiB | limit 64 MiB |"
  done ;;
memory_damaged)
  d=$(damaged_log)
  for cmd in "verify" "verify --json" "stat --json" "export-jsonl" \
      "salvage --to $BENCH_DIR/salvaged --dry-run --json"; do
    for _ in $(seq "$REPS"); do
      read -r peak ms < <(peak_anon --dir "$d" $cmd)
      echo "| peak anonymous RSS, walctl $cmd, 189 MiB log, 999,999 damaged places | - | $(( peak / 1024 )) MiB, $ms ms | limit 64 MiB |"
    done
  done ;;
esac; done
