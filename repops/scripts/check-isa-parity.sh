#!/usr/bin/env bash
# Bit parity between a baseline x86-64 build and an x86-64-v3 build (AVX2, FMA, BMI...),
# with the best GEMM kernel (AVX-512 where present), the AVX2 kernel
# (REPOPS_MAX_KERNEL=avx2) and the portable kernels (REPOPS_FORCE_PORTABLE=1), the baseline
# additionally with glibc's FMA code path disabled for fmaf (GLIBC_TUNABLES).
#
# Compares (1) BLAKE3 hashes over all outputs of every R4 elementary function (exhaustive
# over 2^32 inputs by default; STEP=4099 for a quick run), and (2) vt-train's
# final_state_hash and trace_root for mlp-digits (300 steps) and tiny-lm (LM_STEPS steps)
# with 1 and 2 threads.
#
# usage: repops/scripts/check-isa-parity.sh        (from the workspace root)
#        STEP=4099 LM_STEPS=20 repops/scripts/check-isa-parity.sh
#        VARIANTS="base v3" repops/scripts/check-isa-parity.sh   (subset of variants)
set -euo pipefail
cd "$(dirname "$0")/../.."
STEP="${STEP:-1}"
LM_STEPS="${LM_STEPS:-100}"
BASE="${CARGO_TARGET_DIR:-/work/target-repops}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

build() { # name rustflags
  echo "== building $1 ($2)" >&2
  CARGO_TARGET_DIR="$BASE/isa-$1" RUSTFLAGS="$2" \
    cargo build --quiet --release -p repops --example math_exhaustive -p train --bin vt-train
}
build base "-C target-cpu=x86-64"
build v3 "-C target-cpu=x86-64-v3"

variants=(${VARIANTS:-base v3 base-avx2 base-portable v3-portable base-portable-softfma})
run_variant() { # variant cmd...
  local v="$1"; shift
  local dir="${v%%-*}"
  local env=()
  case "$v" in
    *portable*) env+=(REPOPS_FORCE_PORTABLE=1) ;;
    *avx2*) env+=(REPOPS_MAX_KERNEL=avx2) ;;
  esac
  case "$v" in
    *softfma) env+=(GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4,-AVX512F) ;;
  esac
  env "${env[@]}" "$BASE/isa-$dir/release/$@"
}

status=0
for v in "${variants[@]}"; do
  echo "== $v: elementary functions (step $STEP)" >&2
  run_variant "$v" examples/math_exhaustive --hash --step "$STEP" | sed -E 's/ secs=.*//' > "$OUT/math-$v.txt"
  for prog in mlp-digits tiny-lm; do
    steps=300; [ "$prog" = tiny-lm ] && steps="$LM_STEPS"
    for th in 1 2; do
      echo "== $v: vt-train $prog steps=$steps threads=$th" >&2
      run_variant "$v" vt-train --program "$prog" --steps "$steps" --threads "$th" --output json 2>/dev/null \
        | grep -E '"(final_state_hash|trace_root)"' > "$OUT/train-$v-$prog-$th.txt"
    done
  done
done

echo
echo "elementary functions:"
cat "$OUT/math-base.txt"
for v in "${variants[@]}"; do
  if cmp -s "$OUT/math-base.txt" "$OUT/math-$v.txt"; then echo "  $v: identical"; else echo "  $v: DIFFERS"; diff "$OUT/math-base.txt" "$OUT/math-$v.txt" || true; status=1; fi
done
echo "training:"
for prog in mlp-digits tiny-lm; do
  echo "  $prog: $(tr -d ' \n' < "$OUT/train-base-$prog-1.txt")"
  for v in "${variants[@]}"; do for th in 1 2; do
    if cmp -s "$OUT/train-base-$prog-1.txt" "$OUT/train-$v-$prog-$th.txt"; then echo "    $v threads=$th: identical"; else echo "    $v threads=$th: DIFFERS"; status=1; fi
  done; done
done
if [ "$status" = 0 ]; then echo "ISA PARITY: OK"; else echo "ISA PARITY: FAILED"; fi
exit "$status"
