#!/usr/bin/env python3
"""PyTorch fp32 eager baseline for `cuda-bench`'s training step.

Builds the two builtin Veritrain programs' models with the same shapes (mlp-digits:
64-64-10 ReLU MLP, batch 64; tiny-lm: 2-layer pre-LN transformer, vocab 128, ctx 32,
d_model 64, 4 heads, d_mlp 256, tanh-GELU, batch 16), AdamW with the programs'
hyper-parameters, random inputs of the right shapes, and times one full step (forward,
backward, optimizer) in fp32 eager mode with TF32 disabled.

Needs a CUDA GPU and `pip install torch`. Nothing here is hashed or compared: it is a
speed baseline only.

    python3 repops-cuda/bench/torch_step.py --steps 200
"""

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, d_mlp, eps):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=eps)
        self.wq = nn.Linear(d, d, bias=False)
        self.wk = nn.Linear(d, d, bias=False)
        self.wv = nn.Linear(d, d, bias=False)
        self.wo = nn.Linear(d, d, bias=False)
        self.ln2 = nn.LayerNorm(d, eps=eps)
        self.w1 = nn.Linear(d, d_mlp)
        self.w2 = nn.Linear(d_mlp, d)

    def forward(self, h):
        b, t, d = h.shape
        x = self.ln1(h)
        q, k, v = (w(x).view(b, t, self.heads, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        att = (q @ k.transpose(-1, -2)) / (q.shape[-1] ** 0.5)
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=h.device), 1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, d)
        h = h + self.wo(y)
        return h + self.w2(F.gelu(self.w1(self.ln2(h)), approximate="tanh"))


class TinyLM(nn.Module):
    def __init__(self, vocab=128, ctx=32, d=64, heads=4, layers=2, d_mlp=256, eps=1e-5):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads, d_mlp, eps) for _ in range(layers))
        self.lnf = nn.LayerNorm(d, eps=eps)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens):
        t = tokens.shape[1]
        h = self.wte(tokens) + self.wpe(torch.arange(t, device=tokens.device))
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.lnf(h))


def bench(name, model, make_batch, loss_fn, opt, steps):
    for _ in range(5):
        x, y = make_batch()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        x, y = make_batch()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    torch.cuda.synchronize()
    per = (time.perf_counter() - t0) / steps
    print(f"{name:>10} torch-fp32-eager: {per * 1e3:.3f} ms/step")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = torch.device("cuda")
    print("device:", torch.cuda.get_device_name(dev), "torch", torch.__version__)

    mlp = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)).to(dev)
    opt = torch.optim.AdamW(mlp.parameters(), lr=0.005, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)
    mlp_batch = lambda: (torch.rand(64, 64, device=dev) * 16 * 0.0625, torch.randint(0, 10, (64,), device=dev))
    bench("mlp-digits", mlp, mlp_batch, F.cross_entropy, opt, a.steps)

    lm = TinyLM().to(dev)
    opt = torch.optim.AdamW(lm.parameters(), lr=0.003, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)
    lm_batch = lambda: (torch.randint(0, 128, (16, 32), device=dev), torch.randint(0, 128, (16, 32), device=dev))
    lm_loss = lambda logits, y: F.cross_entropy(logits.reshape(-1, 128), y.reshape(-1))
    bench("tiny-lm", lm, lm_batch, lm_loss, opt, a.steps)


if __name__ == "__main__":
    main()
