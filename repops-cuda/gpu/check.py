#!/usr/bin/env python3
"""The GPU check: one command on a machine with an NVIDIA GPU, one JSON document out.

Runs, from the kit `repops-cuda/gpu/prepare.sh` builds (no Rust needed here):
  1. the device conformance tests (golden vectors, random shapes, sampled
     elementary functions, short training runs; all bitwise against the CPU);
  2. `cuda-parity`: the golden vectors and 2,000 random-shape cases on the device,
     1,000 steps of mlp-digits and 200 of tiny-lm on the CPU and the GPU in lockstep
     (every state hash, both trace roots);
  3. `cuda-bench`: GEMM GFLOP/s against cuBLAS SGEMM (TF32 off) at 512 ... 8192, and
     ms per training step on both backends;
  4. PyTorch fp32 eager (TF32 off) on the same two models, as the speed baseline.
Each step has its own time limit (cut to a total budget, --budget-s, default 460 s); a step that
fails or times out is recorded, and the rest still run.

    python3 target/gpu-kit/check.py --out "$OUT/gpu-check.json"

Exit status: 0 when every parity check passed, 1 otherwise (benchmarks never fail it).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def cuda_env():
    """LD_LIBRARY_PATH with the CUDA libraries (libcuda, libnvrtc) if they are in
    the usual places; cudarc loads them at run time."""
    env = dict(os.environ)
    extra = [
        d
        for d in ["/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib", "/usr/lib/x86_64-linux-gnu"]
        if os.path.isdir(d)
    ]
    try:
        import nvidia  # the PyPI wheels (nvidia-cuda-nvrtc, nvidia-cublas), if installed

        # A namespace package: every entry of its path, not just the first.
        for top in list(nvidia.__path__):
            for root, _, files in os.walk(top):
                if any(f.startswith(("libnvrtc.so", "libcublas.so")) for f in files) and root not in extra:
                    extra.append(root)
    except ImportError:
        pass
    env["LD_LIBRARY_PATH"] = ":".join(extra + [env.get("LD_LIBRARY_PATH", "")])
    env["REPOPS_REQUIRE_CUDA"] = "1"
    env["RUST_BACKTRACE"] = "0"  # the error, not a backtrace, in the output tail
    env.pop("NVIDIA_TF32_OVERRIDE", None)
    return env


def run(name, cmd, limit_s, env, cwd=HERE):
    """Runs `cmd` in `cwd`; returns a record with the exit status, time and output tail."""
    t = time.time()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=limit_s)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        rc = 124
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        out += f"\n[timed out after {limit_s} s]"
    except OSError as e:
        rc, out = 127, f"[could not run: {e}]"
    return {
        "name": name,
        "cmd": " ".join(cmd),
        "rc": rc,
        "seconds": round(time.time() - t, 2),
        "output_tail": out[-4000:],
        "_out": out,
    }


def parse_parity(out):
    f = {}
    hashes = parse_hashes(out)
    if hashes:
        f["device_hashes"] = hashes
    m = re.search(r"golden: (\d+) cases, (\d+) mismatches", out)
    if m:
        f["golden_cases"], f["golden_mismatches"] = int(m.group(1)), int(m.group(2))
    for m in re.finditer(
        r"train (\S+): (\d+) steps, cpu trace root (\w+), gpu trace root (\w+), (identical|DIVERGED at step \d+) "
        r"\(cpu ([\d.]+)s, gpu ([\d.]+)s\)",
        out,
    ):
        f[f"train_{m.group(1)}"] = {
            "steps": int(m.group(2)),
            "cpu_trace_root": m.group(3),
            "gpu_trace_root": m.group(4),
            "result": m.group(5),
            "cpu_seconds": float(m.group(6)),
            "gpu_seconds": float(m.group(7)),
        }
    return f


def parse_hashes(out):
    rows = []
    for m in re.finditer(r"hash (\[[^\]]*\]): (\S+), device ([\d.]+) ms \(([\d.]+) GB/s\), host ([\d.]+) ms \(([\d.]+) GB/s\)", out):
        rows.append({
            "shape": m.group(1),
            "result": m.group(2),
            "device_ms": float(m.group(3)),
            "device_gb_s": float(m.group(4)),
            "host_ms": float(m.group(5)),
            "host_gb_s": float(m.group(6)),
        })
    return rows


def parse_exhaustive(out):
    return {
        f"exhaustive_{m.group(1)}": {"inputs": int(m.group(2)), "mismatches": int(m.group(3)), "seconds": float(m.group(4))}
        for m in re.finditer(r"exhaustive (\S+): (\d+) inputs, (\d+) mismatches.*?, ([\d.]+)s", out)
    }


def parse_bench(out):
    f = {"gemm": [], "gemm_choice": {}, "gemm_variants": [], "gemm_variant_errors": [], "train_ms_per_step": {}}
    m = re.search(r"device: (.+)", out)
    if m:
        f["device"] = m.group(1).strip()
    for m in re.finditer(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", out, re.M):
        f["gemm"].append(
            {"n": int(m.group(1)), "repops_gflops": float(m.group(2)), "cublas_gflops": float(m.group(3)), "ratio": float(m.group(4))}
        )
    for m in re.finditer(r"^gemm-choice\s+(\d+)\s+(\S+)\s*$", out, re.M):
        f["gemm_choice"][m.group(1)] = m.group(2)
    for m in re.finditer(r"^gemm-variant\s+(\S+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)\s*$", out, re.M):
        f["gemm_variants"].append(
            {"kernel": m.group(1), "n": int(m.group(2)), "gflops": float(m.group(3)), "ratio": float(m.group(4)), "bits": m.group(5)}
        )
    for m in re.finditer(r"^gemm-variant\s+(\S+)\s+(\d+)\s+error: (.*)$", out, re.M):
        f["gemm_variant_errors"].append({"kernel": m.group(1), "n": int(m.group(2)), "error": m.group(3).strip()})
    for m in re.finditer(r"^\s*(\S+)\s+(\S+): ([\d.]+) ms/step", out, re.M):
        f["train_ms_per_step"][f"{m.group(1)} {m.group(2)}"] = float(m.group(3))
    return f


def parse_torch(out):
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s*(\S+) torch-fp32-eager: ([\d.]+) ms/step", out, re.M)}


# Lines as the binaries print them (H200 run of 2026-11-30), for --self-test.
SAMPLE = {
    "parity": """device: NVIDIA H200 (cuda:0), kernels compiled for compute_90
golden: 58 cases, 0 mismatches
hash [64, 1024, 1024]: identical, device 2.974 ms (90.3 GB/s), host 172.448 ms (1.6 GB/s)
train tiny-lm: 200 steps, cpu trace root 6de63811a154e2c9401f1e4e6e44ff1a0f0c061e196434a532369189ee38cd29, gpu trace root 6de63811a154e2c9401f1e4e6e44ff1a0f0c061e196434a532369189ee38cd29, identical (cpu 4.6s, gpu 0.9s)
""",
    "exhaustive": "exhaustive gelu: 4294967296 inputs, 0 mismatches, 60.1s\n",
    "bench": """device: NVIDIA H200 (compute_90)
gemm-choice 8192 rp_gemm_w128_k8
  8192        37330        51074    0.731
gemm-variant rp_gemm_w128x64 8192 33834 0.662 same
     tiny-lm cuda-resident: 3.862 ms/step, state hash c09f, 40.8 KiB up and 3.3 KiB down per step
""",
    "torch": "   tiny-lm torch-fp32-eager: 4.890 ms/step\n",
}


def self_test():
    """The parsers against SAMPLE: the figures a run records must not silently vanish."""
    p = parse_parity(SAMPLE["parity"])
    assert p["golden_cases"] == 58 and p["golden_mismatches"] == 0, p
    assert p["device_hashes"][0]["result"] == "identical", p
    assert p["train_tiny-lm"]["result"] == "identical" and p["train_tiny-lm"]["steps"] == 200, p
    e = parse_exhaustive(SAMPLE["exhaustive"])
    assert e["exhaustive_gelu"] == {"inputs": 4294967296, "mismatches": 0, "seconds": 60.1}, e
    b = parse_bench(SAMPLE["bench"])
    assert b["device"] == "NVIDIA H200 (compute_90)", b
    assert b["gemm"] == [{"n": 8192, "repops_gflops": 37330.0, "cublas_gflops": 51074.0, "ratio": 0.731}], b
    assert b["gemm_choice"] == {"8192": "rp_gemm_w128_k8"}, b
    assert b["gemm_variants"][0]["kernel"] == "rp_gemm_w128x64", b
    assert b["train_ms_per_step"] == {"tiny-lm cuda-resident": 3.862}, b
    t = parse_torch(SAMPLE["torch"])
    assert t == {"tiny-lm": 4.89}, t
    print("self-test passed")
    return 0


def write(doc, path):
    """The document so far: a run stopped from outside still leaves its finished steps."""
    text = json.dumps(doc, indent=2)
    if path:
        with open(path + ".tmp", "w") as f:
            f.write(text + "\n")
        os.replace(path + ".tmp", path)
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the JSON document here, after every step (default: stdout at the end)")
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test of the kit)")
    ap.add_argument("--budget-s", type=float, default=460, help="total seconds; each step's limit is cut to what is left")
    ap.add_argument("--skip", default="", help="comma-separated step names to leave out (e.g. after an earlier run did them)")
    ap.add_argument("--funcs", default="", help="exhaustive step: only these functions (comma-separated)")
    ap.add_argument("--kit", default=HERE, help="the folder holding the binaries and torch_step.py (default: this script's)")
    ap.add_argument("--self-test", action="store_true", help="check the output parsers on recorded output and exit (no GPU needed)")
    a = ap.parse_args()
    if a.self_test:
        return self_test()
    env = cuda_env()
    q = a.quick
    t0 = time.time()
    doc = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ld_library_path": env["LD_LIBRARY_PATH"],
        "steps": [],
        "figures": {"parity": {}},
    }
    steps = [
        # (name, command, own limit in s, is a parity check, parser of its figures)
        ("nvidia-smi", ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], 30, False, None),
        ("device conformance tests", ["./gpu-tests", "--test-threads=1"], 150, True, None),
        ("golden + hashes + fuzz", ["./cuda-parity", "--golden", "--hashes", "--fuzz", "200" if q else "2000"], 90, True, parse_parity),
        ("train mlp-digits", ["./cuda-parity", "--train", "50" if q else "1000", "--programs", "mlp-digits"], 120, True, parse_parity),
        ("train tiny-lm", ["./cuda-parity", "--train", "10" if q else "200", "--programs", "tiny-lm"], 150, True, parse_parity),
        (
            "cuda-bench",
            ["./cuda-bench", "--sizes", "512,1024" if q else "512,1024,2048,4096,8192", "--train-steps", "20" if q else "100"],
            120,
            False,
            None,
        ),
        ("torch fp32 eager", [sys.executable, "torch_step.py", "--steps", "20" if q else "200"], 90, False, None),
        # Last: the host port already matched the CPU on all 2^32 inputs; this checks what
        # NVRTC and the GPU make of it.
        (
            "exhaustive elementary functions",
            ["./cuda-parity", "--exhaustive"] + (["--funcs", a.funcs] if a.funcs else []),
            150,
            True,
            parse_exhaustive,
        ),
    ]
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    steps = [s for s in steps if s[0] not in skip]
    passed = True
    for name, cmd, limit, is_parity, parse in steps:
        left = a.budget_s - (time.time() - t0)
        if left < 5:
            doc["steps"].append({"name": name, "rc": None, "skipped": "out of budget"})
            passed = passed and not is_parity
            continue
        r = run(name, cmd, min(limit, left), env, cwd=a.kit)
        out = r.pop("_out")
        if name == "nvidia-smi":
            doc["device"] = out.strip() if r["rc"] == 0 else None
        elif name == "cuda-bench":
            doc["figures"]["bench"] = parse_bench(out)
        elif name == "torch fp32 eager":
            doc["figures"]["torch_ms_per_step"] = parse_torch(out)
        elif parse:
            doc["figures"]["parity"].update(parse(out))
        r["parity"] = is_parity
        doc["steps"].append(r)
        passed = passed and (r["rc"] == 0 or not is_parity)
        doc["parity_passed"] = passed
        write(doc, a.out)
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = write(doc, a.out)
    print(text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
