#!/usr/bin/env python3
"""PyTorch -> ONNX -> Veritrain round trip.

For each small model below: export it to ONNX (opset 20, weights inline), import it
with `vt-train --import-onnx` (the program and its start state), fetch the exact
batch tensors of the program's first steps with `vt-train --batches`, and train the
PyTorch model on them with the program's optimizer. Writes, per model, into --out:
  NAME.onnx         the export
  NAME.torch.json   {"base", "steps", "losses"}: PyTorch's loss at each step

`train/tests/onnx.rs` imports the same ONNX file, trains it with RepOps and
compares the loss curves (close, not bitwise: PyTorch's kernels are not RepOps').
The committed files in train/tests/onnx/ were made by:
  python3 train/onnx/roundtrip.py --vt-train target/debug/vt-train --out train/tests/onnx
and the test runs this script afresh when torch and onnx are installed.
"""
import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):
    """LayerNorm and a tanh GELU between two linear layers, on the 8x8 digits."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.ln = nn.LayerNorm(64)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc2(self.act(self.ln(self.fc1(x / 16.0))))


class Cnn(nn.Module):
    """Two 3x3 convolutions with ReLU and 2x2 max pooling, then a linear head."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = (x * 0.0625).reshape(-1, 1, 8, 8)
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc(torch.flatten(x, 1))


class Lm(nn.Module):
    """A one-block causal transformer over bytes (pre-LayerNorm, tanh GELU MLP)."""

    def __init__(self, vocab, ctx, d=32, heads=2):
        super().__init__()
        self.ctx, self.heads, self.d = ctx, heads, d
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(ctx, d) * 0.1)
        self.ln1 = nn.LayerNorm(d)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.up = nn.Linear(d, 4 * d)
        self.down = nn.Linear(4 * d, d)
        self.lnf = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)
        self.register_buffer("mask", torch.tril(torch.ones(ctx, ctx, dtype=torch.bool)))

    def forward(self, ids):
        b, t = ids.shape
        x = self.tok(ids) + self.pos
        h = self.ln1(x)
        dh = self.d // self.heads

        def split(z):
            return z.reshape(b, t, self.heads, dh).transpose(1, 2)

        q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
        s = (q @ k.transpose(-2, -1)) / math.sqrt(dh)
        s = s.masked_fill(~self.mask, float("-inf"))
        a = torch.softmax(s, dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(b, t, self.d))
        x = x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))
        return self.head(self.lnf(x))


def vt(bin_, *args):
    r = subprocess.run([bin_, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"vt-train {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def optimizer(spec, params):
    if spec["kind"] == "adamw":
        return torch.optim.AdamW(
            params,
            lr=spec["lr"],
            betas=(spec["beta1"], spec["beta2"]),
            eps=spec["eps"],
            weight_decay=spec["weight_decay"],
        )
    if spec["kind"] == "sgd":
        return torch.optim.SGD(params, lr=spec["lr"], momentum=spec["momentum"])
    sys.exit(f"optimizer {spec['kind']} is not mapped")


def round_trip(bin_, out, work, name, model, example, base, steps):
    model.eval()
    onnx_path = out / f"{name}.onnx"
    torch.onnx.export(
        model,
        (example,),
        str(onnx_path),
        dynamo=False,
        opset_version=20,
        do_constant_folding=True,
        input_names=["input"],
        output_names=["logits"],
    )
    state = work / f"{name}.safetensors"
    program = json.loads(
        vt(bin_, "--program", base, "--steps", str(steps), "--import-onnx", str(onnx_path),
           "--init-state-out", str(state))
    )
    for k in ("schedule", "clip_norm", "grad_accum"):
        if program.get(k):
            sys.exit(f"{base}: {k} is not mapped to PyTorch here")
    prog_path = work / f"{name}.program.json"
    prog_path.write_text(json.dumps(program))
    batches = [json.loads(l) for l in vt(bin_, "--program", str(prog_path), "--batches", str(steps)).splitlines()]
    opt = optimizer(program["optimizer"], model.parameters())
    model.train()
    losses = []
    for b in batches:
        if "x" in b:
            x = torch.tensor(b["x"]["data"], dtype=torch.float32).reshape(b["x"]["shape"])
            y = torch.tensor(b["y"]["data"]).long()
            logits = model(x)
        else:
            ids = torch.tensor(b["tokens"]["data"]).long().reshape(-1, example.shape[1])
            y = torch.tensor(b["targets"]["data"]).long()
            logits = model(ids).reshape(y.shape[0], -1)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    (out / f"{name}.torch.json").write_text(
        json.dumps({"base": base, "steps": steps, "losses": losses}, indent=1) + "\n"
    )
    print(f"{name}: loss {losses[0]:.4f} -> {losses[-1]:.4f} over {steps} steps")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vt-train", required=True, help="the vt-train binary")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    lm_ctx = 32
    with tempfile.TemporaryDirectory() as w:
        w = Path(w)
        round_trip(a.vt_train, a.out, w, "mlp", Mlp(), torch.zeros(64, 64), "mlp-digits", a.steps)
        round_trip(a.vt_train, a.out, w, "cnn", Cnn(), torch.zeros(64, 64), "mlp-digits", a.steps)
        round_trip(a.vt_train, a.out, w, "lm", Lm(128, lm_ctx),
                   torch.zeros(16, lm_ctx, dtype=torch.long), "tiny-lm", a.steps)


if __name__ == "__main__":
    main()
