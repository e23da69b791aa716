#!/bin/sh
# Runs every fuzz target for SECONDS each (default 60), starting from the
# committed seeds. Outside CI: needs the nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`). New inputs go to fuzz/corpus/<target>
# (ignored by git), crashes to fuzz/artifacts/<target>.
set -u
seconds=${1:-60}
cd "$(dirname "$0")"
failed=""
for target in $(cargo +nightly fuzz list); do
    mkdir -p "corpus/$target"
    echo "== $target: ${seconds}s"
    cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 || failed="$failed $target"
done
if [ -n "$failed" ]; then
    echo "failed:$failed (inputs in fuzz/artifacts/)"
    exit 1
fi
