#!/usr/bin/env python3
"""tinylm's model and training step in PyTorch eager: the peer of hcgrad's throughput figures.

The same byte-level GPT as nn/gpt.h (pre-LayerNorm blocks, GELU in its tanh form, learned position
embeddings, biases, the output head tied to the token embedding, no dropout) and the same step (forward,
backward, gradient clip at 1.0, AdamW with weight decay on the matrices only), on random byte batches.
The connection variants come from the `hyper-connections` package (tools/requirements-fixtures.txt), as
hcgrad's modules are checked against it.

  tools/.venv/bin/python tools/torch_peer.py --device cuda --layers 6 --dim 384 --heads 6 --ctx 256 --batch 64
  tools/.venv/bin/python tools/torch_peer.py --device cpu --threads 2 --connection hc --streams 4

The last line reads like bench/bench_tinylm's: tokens_per_s=<x> ms_per_step=<y> peak_rss_mb=<z> (the
process's peak resident set; on CUDA a line gpu_peak_allocated_mb=<w> comes before it).
"""
import argparse
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def connection_functions(kind, streams, fracs, dim):
    """(init, expand, reduce) from the reference library; 'residual' is its disabled form (x + f(x))."""
    if kind in ("mhc",):
        from hyper_connections.mHCv2 import get_init_and_expand_reduce_stream_functions
    else:
        from hyper_connections import get_init_and_expand_reduce_stream_functions
    if kind == "residual":
        return get_init_and_expand_reduce_stream_functions(1, dim=dim, disable=True)
    return get_init_and_expand_reduce_stream_functions(streams, num_fracs=fracs, dim=dim)


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln, self.heads = nn.LayerNorm(dim), heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.ln, self.fc, self.out = nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)

    def forward(self, x):
        return self.out(F.gelu(self.fc(self.ln(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, a):
        super().__init__()
        init_hc, self.expand, self.reduce = connection_functions(a.connection, a.streams, a.fracs, a.dim)
        self.wte, self.wpe = nn.Embedding(256, a.dim), nn.Embedding(a.ctx, a.dim)
        self.blocks = nn.ModuleList()
        for i in range(a.layers):
            self.blocks.append(init_hc(dim=a.dim, branch=Attention(a.dim, a.heads), layer_index=2 * i))
            self.blocks.append(init_hc(dim=a.dim, branch=MLP(a.dim), layer_index=2 * i + 1))
        self.ln_f = nn.LayerNorm(a.dim)
        for p in self.parameters():  # GPT-2's init for the weight matrices
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, targets):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1], device=ids.device))
        x = self.expand(x)
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(self.reduce(x)) @ self.wte.weight.t()
        return F.cross_entropy(logits.reshape(-1, 256), targets.reshape(-1))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    p.add_argument("--connection", default="residual", choices=["residual", "hc", "frac", "mhc"])
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--fracs", type=int, default=1)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=60, help="timed steps, after 10 warm-up steps")
    a = p.parse_args()
    if a.connection == "frac":
        a.streams, a.fracs = 1, max(a.fracs, 4)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    model = GPT(a).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.95))

    def step():
        ids = torch.randint(0, 256, (a.batch, a.ctx + 1), device=device)
        loss = model(ids[:, :-1], ids[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(10):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    window, times = max(1, a.steps // 6), []
    for _ in range(max(1, a.steps // window)):
        start = time.perf_counter()
        for _ in range(window):
            step()
        sync()
        times.append((time.perf_counter() - start) / window)
    ms = statistics.median(times) * 1e3
    print(f"torch {torch.__version__} on {a.device}, {a.connection}, {a.layers} layers, dim {a.dim}, "
          f"batch {a.batch} x {a.ctx}, {torch.get_num_threads()} threads")
    if device.type == "cuda":
        print(f"gpu_peak_allocated_mb={torch.cuda.max_memory_allocated() / 2**20:.0f}")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"tokens_per_s={a.batch * a.ctx / ms * 1e3:.0f} ms_per_step={ms:.2f} peak_rss_mb={peak_rss:.0f}")


if __name__ == "__main__":
    main()
