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
Each step has its own time limit (all within ~8 minutes on an H200); a step that
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
        import nvidia  # the PyPI wheels (nvidia-cuda-nvrtc), if installed

        for root, _, files in os.walk(nvidia.__path__[0]):
            if any(f.startswith("libnvrtc.so") for f in files):
                extra.append(root)
    except ImportError:
        pass
    env["LD_LIBRARY_PATH"] = ":".join(extra + [env.get("LD_LIBRARY_PATH", "")])
    env["REPOPS_REQUIRE_CUDA"] = "1"
    env["RUST_BACKTRACE"] = "0"  # the error, not a backtrace, in the output tail
    env.pop("NVIDIA_TF32_OVERRIDE", None)
    return env


def run(name, cmd, limit_s, env):
    """Runs `cmd`; returns a record with the exit status, time and output tail."""
    t = time.time()
    try:
        p = subprocess.run(cmd, cwd=HERE, env=env, capture_output=True, text=True, timeout=limit_s)
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


def parse_bench(out):
    f = {"gemm": [], "train_ms_per_step": {}}
    m = re.search(r"device: (.+)", out)
    if m:
        f["device"] = m.group(1).strip()
    for m in re.finditer(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", out, re.M):
        f["gemm"].append(
            {"n": int(m.group(1)), "repops_gflops": float(m.group(2)), "cublas_gflops": float(m.group(3)), "ratio": float(m.group(4))}
        )
    for m in re.finditer(r"^\s*(\S+)\s+(\S+): ([\d.]+) ms/step", out, re.M):
        f["train_ms_per_step"][f"{m.group(1)} {m.group(2)}"] = float(m.group(3))
    return f


def parse_torch(out):
    return {m.group(1): float(m.group(2)) for m in re.finditer(r"^\s*(\S+) torch-fp32-eager: ([\d.]+) ms/step", out, re.M)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the JSON document here (default: stdout)")
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test of the kit)")
    a = ap.parse_args()
    env = cuda_env()
    q = a.quick
    doc = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "steps": [], "figures": {}}
    smi = run("nvidia-smi", ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], 30, env)
    doc["device"] = smi["_out"].strip() if smi["rc"] == 0 else None
    parity = [
        run("device conformance tests", ["./gpu-tests", "--test-threads=1"], 150, env),
        run(
            "golden + fuzz",
            ["./cuda-parity", "--golden", "--fuzz", "200" if q else "2000"],
            90,
            env,
        ),
        run("train mlp-digits", ["./cuda-parity", "--train", "50" if q else "1000", "--programs", "mlp-digits"], 120, env),
        run("train tiny-lm", ["./cuda-parity", "--train", "10" if q else "200", "--programs", "tiny-lm"], 150, env),
    ]
    for r in parity[1:]:
        doc["figures"].setdefault("parity", {}).update(parse_parity(r["_out"]))
    bench = run(
        "cuda-bench",
        ["./cuda-bench", "--sizes", "512,1024" if q else "512,1024,2048,4096,8192", "--train-steps", "20" if q else "100"],
        120,
        env,
    )
    doc["figures"]["bench"] = parse_bench(bench["_out"])
    torch = run("torch fp32 eager", [sys.executable, "torch_step.py", "--steps", "20" if q else "200"], 90, env)
    doc["figures"]["torch_ms_per_step"] = parse_torch(torch["_out"])
    for r in [smi] + parity + [bench, torch]:
        r.pop("_out")
        doc["steps"].append(r)
    doc["parity_passed"] = all(r["rc"] == 0 for r in parity)
    doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = json.dumps(doc, indent=2)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0 if doc["parity_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
