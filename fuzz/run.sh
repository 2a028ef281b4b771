#!/usr/bin/env bash
# Fuzz targets of Veritrain (fuzz/README.md). Stable Rust, cargo-fuzz with
# libFuzzer, no sanitizer (`-s none`; AddressSanitizer needs nightly and
# safe Rust does not need it), with debug assertions and overflow checks on.
#
#   fuzz/run.sh build                  build every target
#   fuzz/run.sh short [SECONDS]        every target SECONDS (default 30) from the
#                                      committed corpus; fails on a crash,
#                                      timeout or out-of-memory (CI)
#   fuzz/run.sh long SECONDS [TARGET…] a campaign per target, corpus kept in
#                                      fuzz/corpus-long/<target> (not committed)
#   fuzz/run.sh seeds                  rewrite the committed seeds from code
#   fuzz/run.sh repro TARGET FILE      run one input (a crash artifact)
#
# Each run prints executions, exec/s, seconds, coverage and peak RSS per
# target; set VT_FUZZ_REPORT=<file> to append them as TSV.
# Environment: CARGO_TARGET_DIR (default fuzz/target), FUZZ_TIMEOUT (seconds
# per input, default 10), FUZZ_RSS_MB (default 2048), FUZZ_NO_BUILD=1 (use
# the binaries already built).
set -euo pipefail
cd "$(dirname "$0")"
FUZZ_DIR=$(pwd)
TARGETS=(tx msg program cost_model proofs checkpoint dataset cli kernels solver onnx)
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
TARGET_DIR=${CARGO_TARGET_DIR:-$FUZZ_DIR/target}
BIN_DIR=$TARGET_DIR/$TRIPLE/release
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS=${FUZZ_RSS_MB:-2048}

build() {
  [ -n "${FUZZ_NO_BUILD:-}" ] && return
  cargo fuzz build --sanitizer none --debug-assertions
}

# run TARGET SECONDS WORKDIR: libFuzzer on WORKDIR (new inputs) and the
# committed corpus; prints one result line.
run_one() {
  local t=$1 secs=$2 work=$3 log rc
  mkdir -p "$work" "artifacts/$t"
  log=$(mktemp)
  set +e
  "$BIN_DIR/$t" -max_total_time="$secs" -timeout="$TIMEOUT" -rss_limit_mb="$RSS" \
    -print_final_stats=1 -artifact_prefix="artifacts/$t/" \
    "$work" "corpus/$t" >"$log" 2>&1
  rc=$?
  set -e
  local execs eps rss cov slow
  slow=$(sed -n 's/^stat::slowest_unit_time_sec: *//p' "$log" | tail -1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  printf '%-11s rc=%-3s execs=%-10s exec/s=%-7s secs=%-6s %s rss_mb=%s slowest_s=%s\n' \
    "$t" "$rc" "${execs:-?}" "${eps:-?}" "$secs" "${cov:-cov: ?}" "${rss:-?}" "${slow:-?}"
  if [ -n "${VT_FUZZ_REPORT:-}" ]; then
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$rc" "${execs:-}" "${eps:-}" "$secs" "${cov:-}" "${rss:-}" "${slow:-}" >>"$VT_FUZZ_REPORT"
  fi
  if [ "$rc" != 0 ]; then
    echo "---- $t failed (rc $rc); the input is under fuzz/artifacts/$t/; log tail:"
    tail -40 "$log"
  fi
  rm -f "$log"
  return "$rc"
}

cmd=${1:-short}
shift || true
case "$cmd" in
  build) build ;;
  short)
    secs=${1:-30}
    build
    work=$(mktemp -d)
    failed=()
    for t in "${TARGETS[@]}"; do
      run_one "$t" "$secs" "$work/$t" || failed+=("$t")
    done
    rm -rf "$work"
    if [ ${#failed[@]} -gt 0 ]; then
      echo "fuzz: failed: ${failed[*]}"
      exit 1
    fi
    echo "fuzz: every target ran ${secs}s without a crash"
    ;;
  long)
    secs=${1:?seconds}
    shift
    [ $# -gt 0 ] || set -- "${TARGETS[@]}"
    build
    failed=()
    for t in "$@"; do
      run_one "$t" "$secs" "corpus-long/$t" || failed+=("$t")
    done
    [ ${#failed[@]} -eq 0 ] || { echo "fuzz: failed: ${failed[*]}"; exit 1; }
    ;;
  seeds)
    build
    for t in "${TARGETS[@]}"; do
      VT_FUZZ_WRITE_SEEDS="$FUZZ_DIR/corpus/$t" "$BIN_DIR/$t" -runs=0 >/dev/null 2>&1 || true
      mkdir -p "corpus/$t"
      echo "$t: $(ls "corpus/$t" | wc -l) seeds"
    done
    # kernels and proofs read generator bytes, not a file format: one seed
    # per op kind (sizes 3, then a mix of special and small values), and a
    # Merkle and a row case.
    for k in $(seq 0 43); do
      printf "\\x$(printf %02x "$k")$(printf '\\x03\\x00%.0s' 1 2 3 4 5 6)$(printf '\\x00\\x02\\x31\\x03\\x05%.0s' $(seq 1 30))" >"corpus/kernels/op-$k"
    done
    printf '\x01\x07\x00\x2a\x03\x00\x02\x00\x05' >corpus/proofs/merkle
    printf '\x00\x03\x00\x02\x00\x09\x00\x04\x00\x01\x00\x00' >corpus/proofs/row
    echo "kernels: 44 seeds, proofs: 2 seeds"
    ;;
  repro)
    "$BIN_DIR/${1:?target}" -timeout="$TIMEOUT" -rss_limit_mb="$RSS" "${2:?file}"
    ;;
  *)
    echo "usage: fuzz/run.sh build | short [SECONDS] | long SECONDS [TARGET...] | seeds | repro TARGET FILE" >&2
    exit 2
    ;;
esac
