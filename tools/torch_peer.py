#!/usr/bin/env python3
"""tinylm's model and training step in PyTorch, eager or compiled: the peer of hcgrad's throughput figures.

The same byte-level GPT as nn/gpt.h (pre-LayerNorm blocks, GELU in its tanh form, learned position
embeddings, biases, the output head tied to the token embedding, no dropout, GPT-2's init) and the same
step (forward, backward, gradient clip at 1.0, AdamW with weight decay on the weight matrices, as
GPT::decay_split), on random byte batches.

--connection picks how the blocks join the residual stream(s):
  residual   x + f(x)
  hc, frac, mhc
             the `hyper-connections` package's modules (tools/requirements-fixtures.txt), as hcgrad's
             modules are checked against it: HyperConnections (hc; frac = its num_fracs 4 on 1 stream) and
             mHCv2's ManifoldConstrainedHyperConnections (mhc), the library forms of hcgrad's hc, frac, mhc
  hc-eq      Hyper-Connections (Zhu et al. 2024, dynamic, tanh) written as the paper's equations in a few
             tensor ops (HyperConnectionsEq): the same equations and init as the package's hc
  mhc-eq     mHC (Xie et al. 2025, eq. 3 and 7-9) in the paper's flattened form (ManifoldHCEq): the
             equations and init of hcgrad's mhc-paper (nn/mhc_paper.h), not the package's per-stream form
Each multi-stream variant copies the embedding onto --streams streams before the blocks and sums the
streams after them, as the package's expand / reduce functions do.

--compile wraps the model (its forward and the loss, and through AOTAutograd their backward) in
torch.compile, default mode; the optimizer step stays eager. The compile happens in the warm-up steps, so
the timed windows exclude it; a line `compile: ...` says how long the warm-up took.

  tools/.venv/bin/python tools/torch_peer.py --device cuda --layers 6 --dim 384 --heads 6 --ctx 256 --batch 64
  tools/.venv/bin/python tools/torch_peer.py --device cpu --threads 2 --connection hc --streams 4
  tools/.venv/bin/python tools/torch_peer.py --device cpu --threads 2 --connection mhc-eq --compile

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


def rms_norm(x, gain, eps=1e-12):
    """x / rms(x) * gain over the last dim: the package's and hcgrad's RMSNorm (gain = gamma + 1 there)."""
    return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps) * gain


def sinkhorn(logits, iters):
    """Sinkhorn-Knopp on [..., S, S]: exp, then `iters` times columns (dim -2) then rows (dim -1) to sum 1."""
    m = (logits - logits.amax(dim=-2, keepdim=True).detach()).exp()
    for _ in range(iters):
        m = m / m.sum(dim=-2, keepdim=True)
        m = m / m.sum(dim=-1, keepdim=True)
    return m


class HyperConnectionsEq(nn.Module):
    """Dynamic Hyper-Connections (HC paper eq. 1-9, tanh), streams H [B, T, S, D]:

      x̂    = RMSNorm(H) (learned gain over D)
      α    = s_α · tanh(x̂ W_α) + A        [B, T, S, 1+S]; A = [e_k | I], k = layer_index mod S
      β    = s_β · tanh(x̂ W_β) + 1        [B, T, S]
      h    = Σ_s α[s, 0] H_s               the branch input
      H'_t = Σ_s α[s, 1+t] H_s             the kept streams
      out  = H' + β_t · branch(h)

    Init: W_α = W_β = 0, s_α = s_β = 0.01, gain 1: each stream starts as H_t + branch(H_k).
    """

    def __init__(self, streams, dim, branch, layer_index):
        super().__init__()
        self.branch = branch
        home = torch.zeros(streams, 1)
        home[layer_index % streams] = 1.0
        self.gain = nn.Parameter(torch.ones(dim))
        self.static_alpha = nn.Parameter(torch.cat([home, torch.eye(streams)], dim=1))  # [S, 1+S]
        self.static_beta = nn.Parameter(torch.ones(streams))                           # [S]
        self.w_alpha = nn.Parameter(torch.zeros(dim, 1 + streams))
        self.w_beta = nn.Parameter(torch.zeros(dim))
        self.s_alpha = nn.Parameter(torch.tensor(0.01))
        self.s_beta = nn.Parameter(torch.tensor(0.01))

    def forward(self, H):
        x = rms_norm(H, self.gain)
        alpha = self.s_alpha * torch.tanh(x @ self.w_alpha) + self.static_alpha  # [B, T, S, 1+S]
        beta = self.s_beta * torch.tanh(x @ self.w_beta) + self.static_beta      # [B, T, S]
        mixed = alpha.transpose(-1, -2) @ H                                      # [B, T, 1+S, D]
        y = self.branch(mixed[..., 0, :])
        return mixed[..., 1:, :] + beta.unsqueeze(-1) * y.unsqueeze(-2)


class ManifoldHCEq(nn.Module):
    """mHC in the paper's flattened form (eq. 3, 7-9), n = S streams H [B, T, S, D]:

      x̂      = RMSNorm(vec H) over S·D (learned gain)
      [p|q|r] = x̂ φ                              φ [S·D, 2S + S²]
      H_pre  = σ(α_pre · p + b_pre)               [S]
      H_post = 2σ(α_post · q + b_post)            [S]
      H_res  = Sinkhorn(α_res · mat(r) + b_res)   [S, S], row t = destination, 20 iterations
      out_t  = Σ_s H_res[t, s] H_s + H_post[t] · branch(Σ_s H_pre[s] H_s)

    Init as hcgrad's mhc-paper (nn/mhc_paper.h): φ = 0, α's = 0.01, gain 1, b_pre = e_k (home stream
    k = layer_index mod S), b_post = 1, b_res = I.
    """

    def __init__(self, streams, dim, branch, layer_index, sinkhorn_iters=20):
        super().__init__()
        self.branch, self.streams, self.iters = branch, streams, sinkhorn_iters
        self.gain = nn.Parameter(torch.ones(streams * dim))
        self.phi = nn.Parameter(torch.zeros(streams * dim, 2 * streams + streams * streams))
        self.alpha_pre = nn.Parameter(torch.tensor(0.01))
        self.alpha_post = nn.Parameter(torch.tensor(0.01))
        self.alpha_res = nn.Parameter(torch.tensor(0.01))
        self.b_pre = nn.Parameter(F.one_hot(torch.tensor(layer_index % streams), streams).float())
        self.b_post = nn.Parameter(torch.ones(streams))
        self.b_res = nn.Parameter(torch.eye(streams))

    def forward(self, H):
        B, T, S, D = H.shape
        proj = rms_norm(H.reshape(B, T, S * D), self.gain) @ self.phi                # [B, T, 2S + S²]
        h_pre = torch.sigmoid(self.alpha_pre * proj[..., :S] + self.b_pre)            # [B, T, S]
        h_post = 2 * torch.sigmoid(self.alpha_post * proj[..., S:2 * S] + self.b_post)
        h_res = sinkhorn(self.alpha_res * proj[..., 2 * S:].view(B, T, S, S) + self.b_res, self.iters)
        y = self.branch((h_pre.unsqueeze(-2) @ H).squeeze(-2))                       # [B, T, D]
        return h_res @ H + h_post.unsqueeze(-1) * y.unsqueeze(-2)


def equation_functions(kind, streams):
    """(init, expand, reduce) for the -eq variants: S copies of the input, the sum of the streams at the end."""
    module = {"hc-eq": HyperConnectionsEq, "mhc-eq": ManifoldHCEq}[kind]

    def init(dim, branch, layer_index):
        return module(streams, dim, branch, layer_index)

    def expand(x):  # [B, T, D] -> [B, T, S, D]
        return x.unsqueeze(-2).expand(*x.shape[:-1], streams, x.shape[-1])

    def reduce(H):  # [B, T, S, D] -> [B, T, D]
        return H.sum(dim=-2)

    return init, expand, reduce


def connection_functions(kind, streams, fracs, dim):
    """(init, expand, reduce) from the reference library; 'residual' is its disabled form (x + f(x))."""
    if kind.endswith("-eq"):
        return equation_functions(kind, streams)
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
        # GPT-2's init, as GPT::reset_parameters: the embeddings' and linear layers' weights N(0, 0.02), those
        # that write into the residual N(0, 0.02 / sqrt(2 layers)), biases 0; connections keep their own init.
        writes_residual = {id(m.proj) for m in self.modules() if isinstance(m, Attention)} | \
            {id(m.out) for m in self.modules() if isinstance(m, MLP)}
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02 / (2 * a.layers) ** 0.5 if id(m) in writes_residual else 0.02)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

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
    p.add_argument("--connection", default="residual", choices=["residual", "hc", "frac", "mhc", "hc-eq", "mhc-eq"])
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--fracs", type=int, default=1)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=60, help="timed steps, after 10 warm-up steps")
    p.add_argument("--compile", action="store_true", help="torch.compile the model and loss (default mode)")
    a = p.parse_args()
    if a.connection == "frac":
        a.streams, a.fracs = 1, max(a.fracs, 4)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    device = torch.device(a.device)
    model = GPT(a).to(device)
    # GPT::decay_split: no decay on the embeddings nor on the static connection weights
    def decays(name, p):
        leaf = name.rsplit(".", 1)[-1]
        return p.dim() >= 2 and not name.startswith(("wte.", "wpe.")) and not leaf.startswith(("static_", "b_"))

    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-3, betas=(0.9, 0.95))

    forward = torch.compile(model) if a.compile else model

    def step():
        ids = torch.randint(0, 256, (a.batch, a.ctx + 1), device=device)
        loss = forward(ids[:, :-1], ids[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    for _ in range(10):
        step()
    sync()
    warmup_s = time.perf_counter() - start
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
          f"batch {a.batch} x {a.ctx}, {torch.get_num_threads()} threads, {'compiled' if a.compile else 'eager'}")
    if a.compile:
        print(f"compile: torch.compile (default mode) on model and loss; the 10 warm-up steps with the compile "
              f"took {warmup_s:.1f} s (the timed steps exclude them)")
    if device.type == "cuda":
        print(f"gpu_peak_allocated_mb={torch.cuda.max_memory_allocated() / 2**20:.0f}")
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"tokens_per_s={a.batch * a.ctx / ms * 1e3:.0f} ms_per_step={ms:.2f} peak_rss_mb={peak_rss:.0f}")


if __name__ == "__main__":
    main()
