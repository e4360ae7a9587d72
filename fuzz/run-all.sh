#!/usr/bin/env bash
# Runs every fuzz target for SECONDS seconds each (default 600), one after the other, one
# libFuzzer process at a time, and prints per target: seconds, executions, exec/s, corpus
# entries and whether a crash, timeout or OOM was found (libFuzzer writes the input to
# fuzz/artifacts/<target>/, the log is fuzz/logs/<target>.log).
#
#   fuzz/run-all.sh [SECONDS] [TARGET...]
#
# The targets are built once up front and then run directly, so edits elsewhere in the tree
# during a long run do not trigger rebuilds between targets. Address sanitizer by default;
# FUZZ_SANITIZER=none runs without (faster; panics, hangs and runaway allocations are still
# caught through -timeout and -rss_limit_mb/-malloc_limit_mb).
set -uo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${1:-600}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(subject message slim doc docx sheet attach)
SAN=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1 # cargo-fuzz passes -Z flags; the toolchain is stable
mkdir -p logs
[[ -d corpus ]] || ./seed.sh

# FUZZ_NO_BUILD=1: run the binaries as last built.
[[ -n "${FUZZ_NO_BUILD:-}" ]] || cargo fuzz build -s "$SAN" || exit 1
triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=target/$triple/release

summary=()
for t in "${TARGETS[@]}"; do
    log=logs/$t.log
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== $t: ${SECONDS_EACH}s (sanitizer: $SAN)"
    start=$(date +%s)
    "$bin_dir/$t" -artifact_prefix="artifacts/$t/" -max_total_time="$SECONDS_EACH" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 "corpus/$t" >"$log" 2>&1
    rc=$?
    elapsed=$(($(date +%s) - start))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    entries=$(find "corpus/$t" -type f | wc -l)
    # Panics inside dependencies that shenbao catches are logged as "[fuzz] dependency panic"
    # and are not defects (see fuzz_targets/common.rs); count them separately.
    # (The hook logs the first few and then every power of two, each with its number.)
    caught=$(grep -o '^\[fuzz\] dependency panic #[0-9]*' "$log" | grep -o '[0-9]*$' | sort -n | tail -1)
    caught=$((${caught:--1} + 1))
    found=$(grep -v '^\[fuzz\]' "$log" |
        grep -o 'ERROR: libFuzzer: [a-z-]*\|ERROR: AddressSanitizer: [a-z-]*\|panicked at [^ ]*\|Test unit written to [^ ]*' |
        tr '\n' ' ')
    line=$(printf '%-8s rc=%-3s %5ss execs=%-10s exec/s=%-7s corpus=%-6s caught-dep-panics=%-4s %s' \
        "$t" "$rc" "$elapsed" "${execs:-?}" "${rate:-?}" "$entries" "$caught" "${found:-no defects}")
    echo "$line"
    summary+=("$line")
done
echo
echo "== summary"
printf '%s\n' "${summary[@]}"
