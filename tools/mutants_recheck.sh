#!/usr/bin/env bash
# Re-tests the mutants a cargo-mutants run missed, against the tests of another checkout
# (docs/TESTING.md, family 10): each missed mutant's diff is applied, the given `cargo test`
# arguments are run, and the file is restored. Prints CAUGHT, MISSED, UNVIABLE or NOAPPLY
# (the code moved too far for the diff) per mutant.
#
#   tools/mutants_recheck.sh CHECKOUT MUTANTS_OUT [CARGO_TEST_ARGS...]
#   tools/mutants_recheck.sh /tmp/clone mutants.out --lib --test library -- --skip model::
#
# CHECKOUT is changed while this runs; use a clone, not the tree you work in.
set -uo pipefail
checkout=$1
out=$(cd "$2" && pwd)
shift 2
cd "$checkout" || exit 2
log=$(mktemp)
python3 -c "
import json, sys
for o in json.load(open(sys.argv[1]))['outcomes']:
    if o['summary'] == 'MissedMutant':
        print(o['diff_path'])" "$out/outcomes.json" | while read -r diff; do
    file=$(head -1 "$out/$diff" | sed 's/^--- //')
    name=$(sed -n 2p "$out/$diff" | sed 's/^+++ //')
    if ! patch -p0 --dry-run -s <"$out/$diff" >/dev/null 2>&1; then
        echo "NOAPPLY  $file: $name"
        continue
    fi
    patch -p0 -s <"$out/$diff"
    if timeout 900 cargo test -q "$@" >"$log" 2>&1; then
        echo "MISSED   $file: $name"
    elif grep -q '^error\[E\|^error: could not compile' "$log"; then
        echo "UNVIABLE $file: $name"
    else
        echo "CAUGHT   $file: $name"
    fi
    git checkout -q -- "$file"
done
rm -f "$log"
