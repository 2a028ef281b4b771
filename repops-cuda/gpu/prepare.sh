#!/usr/bin/env bash
# Builds the GPU check kit on this (GPU-less) machine: the release binaries
# the check runs, stripped, plus the scripts, in target/gpu-kit/ (carried to
# the GPU machine, which has CUDA and PyTorch but no Rust). Then, on the GPU
# machine:  python3 target/gpu-kit/check.py --out "$OUT/gpu-check.json"
set -euo pipefail
cd "$(dirname "$0")/../.."
kit=target/gpu-kit
rm -rf "$kit" && mkdir -p "$kit"
cargo build --release --locked -p repops-cuda --bins
cp target/release/cuda-parity target/release/cuda-bench "$kit/"
# The device conformance tests (tests/gpu.rs) as one executable.
test_bin=$(cargo test --release --locked -p repops-cuda --test gpu --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu":
        print(m["executable"])')
cp "$test_bin" "$kit/gpu-tests"
strip --strip-debug "$kit"/cuda-parity "$kit"/cuda-bench "$kit"/gpu-tests
cp repops-cuda/gpu/check.py repops-cuda/bench/torch_step.py "$kit/"
du -sh "$kit"
