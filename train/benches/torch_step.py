#!/usr/bin/env python3
"""One PyTorch CPU training step of each builtin Veritrain program, for comparison.

Benchmark only: never imported by tests or CI. Builds the same model, batch and
optimizer as `train::Program::builtin` (train/src/program.rs):

* mlp-digits: x[64, 64] * 0.0625 -> Linear(64, 64) -> ReLU -> Linear(64, 10) ->
  mean cross-entropy; AdamW(lr 0.005, betas (0.9, 0.999), eps 1e-8), weight decay
  1e-4 on rank-2 parameters only.
* tiny-lm: tokens[16, 32] -> wte[128, 64] + wpe[32, 64] -> 2 pre-LN blocks (LayerNorm
  eps 1e-5; q, k, v, o 64x64 without bias; 4 causal softmax heads of 16, scaled by
  1/4; MLP 64 -> 256 -> 64 with biases and tanh-GELU; residuals) -> LayerNorm ->
  head 64 -> 128 with bias -> mean cross-entropy over the 512 tokens; AdamW(lr 0.003,
  betas (0.9, 0.99), eps 1e-8), weight decay 0.01 on rank-2 parameters only.

A step is what `Trainer::step` does: draw the batch (rows from a preloaded table),
zero the gradients, forward, backward, optimizer update. Data is random with the
datasets' shapes and ranges (timing does not depend on the values).

Two modes:
  torch_step.py --program P --threads K [--steps S --rounds R]
      prints one JSON object: median seconds per step over R rounds of S steps;
  torch_step.py --program P --threads K --serve
      reads a step count per line on stdin, runs that many steps, prints the wall and
      process CPU seconds per step (one JSON object per line): lets a Rust bench
      interleave its rounds with ours.
"""

import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.l0 = nn.Linear(64, 64)
        self.l1 = nn.Linear(64, 10)

    def forward(self, x):
        return self.l1(torch.relu(self.l0(x * 0.0625)))


class Block(nn.Module):
    def __init__(self, d, nh, d_mlp, eps):
        super().__init__()
        self.nh = nh
        self.ln1 = nn.LayerNorm(d, eps=eps)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d, eps=eps)
        self.fc1 = nn.Linear(d, d_mlp)
        self.fc2 = nn.Linear(d_mlp, d)

    def forward(self, x, mask):
        b, t, d = x.shape
        dh = d // self.nh
        h = self.ln1(x)

        def heads(v):
            return v.view(b, t, self.nh, dh).transpose(1, 2)

        q, k, v = heads(self.wq(h)), heads(self.wk(h)), heads(self.wv(h))
        s = (q @ k.transpose(-1, -2)) * (1.0 / dh**0.5)
        s = s.masked_fill(mask, float("-inf"))
        o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.wo(o)
        m = self.fc2(F.gelu(self.fc1(self.ln2(x)), approximate="tanh"))
        return x + m


class TinyLm(nn.Module):
    def __init__(self, vocab=128, ctx=32, d=64, nh=4, layers=2, d_mlp=256, eps=1e-5):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, nh, d_mlp, eps) for _ in range(layers))
        self.lnf = nn.LayerNorm(d, eps=eps)
        self.head = nn.Linear(d, vocab)
        self.register_buffer(
            "mask", torch.triu(torch.ones(ctx, ctx, dtype=torch.bool), diagonal=1)
        )
        self.register_buffer("pos", torch.arange(ctx))

    def forward(self, tok):
        x = self.wte(tok) + self.wpe(self.pos)
        for blk in self.blocks:
            x = blk(x, self.mask)
        return self.head(self.lnf(x))


def adamw(model, lr, betas, wd, impl):
    decay = [p for p in model.parameters() if p.dim() == 2]
    other = [p for p in model.parameters() if p.dim() != 2]
    kw = {}
    if impl == "fused":
        kw["fused"] = True
    elif impl == "foreach":
        kw["foreach"] = True
    elif impl == "single":
        kw["foreach"] = False
    groups = [{"params": decay, "weight_decay": wd}, {"params": other, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=1e-8, **kw)


def make(program, impl):
    g = torch.Generator().manual_seed(1)
    if program == "mlp-digits":
        model = Mlp()
        opt = adamw(model, 0.005, (0.9, 0.999), 1e-4, impl)
        rows = torch.randint(0, 17, (1500, 64), generator=g).float()
        labels = torch.randint(0, 10, (1500,), generator=g)

        def step():
            idx = torch.randint(0, 1500, (64,))
            x, y = rows[idx], labels[idx]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

    elif program == "tiny-lm":
        model = TinyLm()
        opt = adamw(model, 0.003, (0.9, 0.99), 0.01, impl)
        text = torch.randint(32, 127, (190, 257), generator=g)

        def step():
            r = torch.randint(0, 190, (16,))
            o = torch.randint(0, 257 - 32, (16,))
            win = o[:, None] + torch.arange(33)[None, :]
            seq = text[r[:, None], win]
            tok, tgt = seq[:, :32], seq[:, 1:]
            opt.zero_grad(set_to_none=True)
            logits = model(tok)
            loss = F.cross_entropy(logits.reshape(-1, 128), tgt.reshape(-1))
            loss.backward()
            opt.step()
            return loss

    else:
        raise SystemExit(f"unknown program {program}")
    return step


def timed_both(step, n):
    """(wall, process CPU) seconds per step over n steps."""
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n


def timed(step, n):
    return timed_both(step, n)[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", default="mlp-digits")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument(
        "--adamw",
        default="default",
        choices=["default", "single", "foreach", "fused"],
        help="AdamW implementation (default: what torch picks on CPU)",
    )
    ap.add_argument("--serve", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    step = make(a.program, a.adamw)
    timed(step, 10)  # warm-up
    meta = {
        "program": a.program,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "adamw": a.adamw,
    }
    if a.serve:
        print(json.dumps({**meta, "ready": True}), flush=True)
        for line in sys.stdin:
            n = int(line)
            wall, cpu = timed_both(step, n)
            print(json.dumps({"seconds_per_step": wall, "cpu_seconds_per_step": cpu}), flush=True)
        return
    per = [timed(step, a.steps) for _ in range(a.rounds)]
    print(json.dumps({**meta, "median_seconds_per_step": statistics.median(per), "rounds": per}))


if __name__ == "__main__":
    main()
