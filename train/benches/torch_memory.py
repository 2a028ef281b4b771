"""PyTorch baseline of train/benches/memory.rs: one AdamW step of the same
GPT-2-shaped model (tied embeddings, 1 x T tokens), peak RSS over the state."""
import argparse
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        sp = lambda z: z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        a = F.scaled_dot_product_attention(sp(self.q(h)), sp(self.k(h)), sp(self.v(h)), is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, vocab, layers, d=768, heads=12):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(1024, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.lnf = nn.LayerNorm(d)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.lnf(x) @ self.wte.weight.T


def rss():
    with open("/proc/self/status") as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1]) * 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    vocab = 50257
    m = Gpt2(vocab, a.layers)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-4)
    ids = torch.randint(0, vocab, (1, a.tokens + 1))

    def step():
        loss = F.cross_entropy(m(ids[:, :-1]).view(-1, vocab), ids[0, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # creates the Adam moments
    state = sum(p.numel() for p in m.parameters()) * 4 * 3
    before = rss()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t0 = time.time()
    step()
    secs = time.time() - t0
    with open("/proc/self/status") as f:
        peak = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
    mib = 1 << 20
    print(
        f"  PyTorch {torch.__version__}: state {state / mib:.0f} MiB; step {secs:.1f} s; RSS before "
        f"{before / mib:.0f} MiB ({before / state:.2f}x); peak during the step {peak / mib:.0f} MiB "
        f"({peak / state:.2f}x state)"
    )


if __name__ == "__main__":
    main()
