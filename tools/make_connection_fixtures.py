#!/usr/bin/env python3
"""Generate hcgrad's reference cases for the hyper-connection modules.

Runs the real `hyper-connections` library (lucidrains, PyTorch) on small deterministic inputs and writes
JSON files in the format of tests/fixtures/connections/README.md:

    {"meta": {...}, "cases": [{"name", "kind", "description", "config", "inputs", "params",
                               "outputs", "grads"?, "library_bug"?}, ...]}

The C++ checker in hcgrad replays every case and compares its own modules against these numbers.
Every value is stored explicitly (float32, row-major), but inputs also follow the `det()` fill below so a
case can be re-created without the file.

Usage (from the repository root, with the virtualenv of tools/requirements-fixtures.txt):
    tools/.venv/bin/python tools/make_connection_fixtures.py            # write tests/fixtures/connections/
    tools/.venv/bin/python tools/make_connection_fixtures.py --verify   # re-check the written files
    tools/.venv/bin/python tools/make_connection_fixtures.py --only vit.json   # write one file of FILES
"""

import argparse
import json
import math
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

import hyper_connections.hyper_connections as hc_mod
import hyper_connections.manifold_constrained_hyper_connections as mhc1
import hyper_connections.mHCv2 as mhc2
import hyper_connections.hyper_connections_channel_first as cf_mod
import hyper_connections.hyper_connections_with_multi_branch_inputs as mb_mod
import hyper_connections.hyper_connections_with_multi_input_streams as mi_mod
import hyper_connections.residuals as res_mod
import hyper_connections.vit as vit_mod

# The reference this generator was written against (pinned also in tools/requirements-fixtures.txt): another
# version may change a module's behaviour, so it is refused rather than silently recorded.
LIBRARY_VERSION = "0.4.11"
if version("hyper-connections") != LIBRARY_VERSION:
    raise SystemExit(f"make_connection_fixtures: needs hyper-connections=={LIBRARY_VERSION}, "
                     f"found {version('hyper-connections')} (pip install -r tools/requirements-fixtures.txt)")

OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "connections"

DET_RULE = "det(shape, seed, scale, offset)[k] = float32(offset + scale*sin(0.731*k + 1.37*seed)), k row-major"
PERTURB_RULE = "perturbed param i (sorted state_dict names) = init + det(shape, 100 + i, 0.5)"
TOL_FORWARD = 1e-5        # |got - ref| <= tol + tol*|ref|
TOL_SINKHORN_GRAD = 1e-4  # Sinkhorn-heavy and gradient cases

# Small sizes keep every file well under 200 KB.
B, N, D = 2, 3, 8
D_FRAC = 16               # cases with num_fracs > 1 need D divisible by F


# ----------------------------------------------------------------------------------------------------------
# deterministic values and JSON conversion

def det(shape, seed, scale=1.0, offset=0.0):
    count = math.prod(shape)
    k = np.arange(count, dtype=np.float64)
    values = (offset + scale * np.sin(0.731 * k + 1.37 * seed)).astype(np.float32)
    return torch.from_numpy(values.reshape(shape))


def tensor_json(t):
    """{"shape", "data"}; str(np.float32) is the shortest text that parses back to the same float32."""
    flat = t.detach().to(torch.float32).contiguous().reshape(-1).numpy()
    return {"shape": list(t.shape), "data": [float(str(v)) for v in flat]}


def perturb(module):
    """Move every parameter off its init: init + det(shape, 100 + i, 0.5), i = index in sorted-name order."""
    names = sorted(module.state_dict().keys())
    params = dict(module.named_parameters())
    with torch.no_grad():
        for i, name in enumerate(names):
            p = params[name]
            p.data = p.data.clone() + det(tuple(p.shape), 100 + i, 0.5)  # clone: some params alias one storage


def state_json(module):
    return {name: tensor_json(t) for name, t in sorted(module.state_dict().items())}


def make_case(name, kind, description, config, inputs, params, outputs, grads=None, library_bug=None,
              tolerance=TOL_FORWARD):
    case = {"name": name, "kind": kind, "description": description, "config": config,
            "inputs": {k: tensor_json(v) for k, v in inputs.items()},
            "params": params,
            "outputs": {k: tensor_json(v) for k, v in outputs.items()},
            "tolerance": tolerance}
    if grads:
        case["grads"] = {k: tensor_json(v) for k, v in grads.items()}
    if library_bug:
        case["library_bug"] = library_bug
    return case


# ----------------------------------------------------------------------------------------------------------
# primitives: RMSNorm and the Sinkhorn variants

SINKHORN_FNS = {"v1": mhc1.sinkhorn_knopps, "v2": mhc2.sinkhorn_knopps, "log": mhc2.log_domain_sinkhorn_knopps}
SINKHORN_PREFIX = {"v1": "sinkhorn_v1", "v2": "sinkhorn_v2", "log": "log_sinkhorn_v2"}
SINKHORN_ITERS0_BUG = {
    "v1": "v1 sinkhorn_iters=0 returns the unnormalised exp(L - colmax) (spec b.10, b.12)",
    "v2": "v2 sinkhorn_iters<=0 returns the raw logits L, no constraint at all (spec b.10, b.12)",
    "log": "v2 log-domain sinkhorn_iters<=0 returns the raw logits L, no constraint at all (spec b.10, b.12)",
}


def sinkhorn_case(variant, iters, shape=(2, 4, 4), with_grad=False, name=None):
    log_alpha = det(shape, 1, 2.0).requires_grad_(with_grad)  # logits in [-2, 2]
    out = SINKHORN_FNS[variant](log_alpha, iters=iters)
    inputs, grads = {"log_alpha": log_alpha}, None
    if with_grad:
        cotangent = det(tuple(out.shape), 7)
        (out * cotangent).sum().backward()
        inputs["G"] = cotangent
        grads = {"input.log_alpha": log_alpha.grad}
    name = name or f"{SINKHORN_PREFIX[variant]}_iters{iters}" + ("_grad" if with_grad else "")
    return make_case(
        name, "sinkhorn",
        f"{variant} Sinkhorn, {iters} iterations, logits {list(shape)} = det(seed 1, scale 2)"
        + ("; gradient of sum(out*G) through all iterations" if with_grad else ""),
        {"variant": variant, "iters": iters}, inputs, {}, {"out": out},
        grads=grads, library_bug=SINKHORN_ITERS0_BUG[variant] if iters == 0 else None,
        tolerance=TOL_SINKHORN_GRAD)


def primitive_cases():
    norm = hc_mod.RMSNorm(D)
    perturb(norm)
    x = det((B, N, D), 1)
    cases = [make_case("rmsnorm", "rmsnorm", "RMSNorm over the last axis, gamma perturbed",
                       {"dim": D}, {"x": x}, state_json(norm), {"y": norm(x)})]
    for variant in ("v1", "v2", "log"):
        for iters in (20, 3, 1, 0):
            cases.append(sinkhorn_case(variant, iters))
    cases.append(sinkhorn_case("v1", 20, shape=(2, 3, 5), name="sinkhorn_v1_nonsquare"))
    for variant in ("v1", "v2", "log"):
        cases.append(sinkhorn_case(variant, 20, with_grad=True))
    return cases


# ----------------------------------------------------------------------------------------------------------
# modules with width_connection / depth_connection: HC, mHC v1/v2, channel-first, multi-branch

def width_depth_case(name, kind, description, module, config, residuals, branch_output, with_grad=False,
                     library_bug=None, tolerance=TOL_FORWARD):
    """Width connection, then add_residual(branch_output); optionally a gradient run whose branch is
    z -> tanh(z) + branch_output and whose loss is sum(out * G)."""
    with torch.no_grad():
        branch_input, mixed, extra = module.width_connection(residuals)
        if module_adds_branch(module):
            out = module.depth_connection(branch_output, mixed, **extra)
        else:
            out = branch_output   # add_branch_out_to_residual=False: add_residual(y) returns y itself
    outputs = {"branch_input": branch_input, "residuals_after_width": mixed, "out": out}
    if extra.get("beta") is not None:
        outputs["beta"] = extra["beta"]
    inputs = {"residuals": residuals, "branch_output": branch_output}
    params = state_json(module)
    grads = None
    if with_grad:
        residuals_g = residuals.clone().requires_grad_(True)
        branch_output_g = branch_output.clone().requires_grad_(True)
        u, add_residual = module(residuals_g)
        grad_out = add_residual(torch.tanh(u) + branch_output_g)
        cotangent = det(tuple(grad_out.shape), 7)
        (grad_out * cotangent).sum().backward()
        inputs["G"] = cotangent
        outputs["grad_case_out"] = grad_out
        grads = {"input.residuals": residuals_g.grad, "input.branch_output": branch_output_g.grad}
        for pname, p in sorted(module.named_parameters()):
            grads[f"param.{pname}"] = p.grad if p.grad is not None else torch.zeros_like(p)
        tolerance = TOL_SINKHORN_GRAD
    return make_case(name, kind, description, config, inputs, params, outputs, grads, library_bug, tolerance)


def module_adds_branch(module):
    return getattr(module, "add_branch_out_to_residual", True)


HC_FRAC_BUG = ("HC num_fracs>1: static_alpha rows are (f1,s) but columns are re-read as F blocks of (V+S), "
               "so the init is not identity-like (spec b.3.4, b.12)")


def hc_case(name, S, *, F=1, layer_index=1, perturbed=True, with_grad=False, tanh=True, views=1,
            add_branch=True, channel_first=False, depth_fn=None, kind="hc", library_bug=None, note=""):
    torch.manual_seed(0)
    dim = D_FRAC if F > 1 else D
    kwargs = dict(dim=dim, layer_index=layer_index, tanh=tanh, num_fracs=F, num_input_views=views,
                  add_branch_out_to_residual=add_branch, channel_first=channel_first)
    if depth_fn is not None:
        kwargs["depth_residual_fn"] = depth_fn()   # built after the seed, like the module itself
    module = hc_mod.HyperConnections(S, **kwargs)
    if perturbed:
        perturb(module)
    if channel_first:
        residuals, branch_output = det((B * S, dim, N), 1), det((B, dim, N), 2)
    else:
        residuals, branch_output = det((B * S, N, dim), 1), det((B, N, dim), 2)
    config = {"num_residual_streams": S, **{k: v for k, v in kwargs.items() if k != "depth_residual_fn"},
              "layout": "L1"}
    if F > 1 and library_bug is None:
        library_bug = HC_FRAC_BUG
    description = (f"HyperConnections S={S} F={F} V={views} layer_index={layer_index}, "
                   f"{'perturbed params' if perturbed else 'params at init'}{note}")
    return width_depth_case(name, kind, description, module, config, residuals, branch_output,
                            with_grad=with_grad, library_bug=library_bug)


def hc_pipeline_case():
    """expand(S) -> 3 HC layers at init around Linear(D, D) branches -> reduce: equals S x plain residual net."""
    S, layers = 4, 3
    torch.manual_seed(0)
    init_hc, expand, reduce = hc_mod.get_init_and_expand_reduce_stream_functions(S)
    net = nn.Module()
    net.layers = nn.ModuleList([init_hc(dim=D, branch=nn.Linear(D, D), layer_index=i) for i in range(layers)])
    # the Linear branches get det values so the plain-residual network is reproducible; HC params stay at init
    with torch.no_grad():
        for i, layer in enumerate(net.layers):
            layer.branch.weight.copy_(det((D, D), 200 + 2 * i, 0.3))
            layer.branch.bias.copy_(det((D,), 201 + 2 * i, 0.1))
    x = det((B, N, D), 1)
    with torch.no_grad():
        h = expand(x)
        for layer in net.layers:
            h = layer(h)
        out = reduce(h)
        plain = x
        for layer in net.layers:
            plain = plain + layer.branch(plain)
    return make_case("hc_pipeline_init", "hc_pipeline",
                     f"expand(S={S}) -> {layers} HC layers at init (layer_index 0..{layers - 1}) with Linear branches "
                     "layers.<i>.branch -> reduce(sum); plain_residual_out = x_{i+1} = x_i + branch_i(x_i); "
                     "expected out = S * plain_residual_out",
                     {"num_residual_streams": S, "dim": D, "layers": layers, "layout": "L1"},
                     {"x": x}, state_json(net), {"out": out, "plain_residual_out": plain})


def residual_disable_case():
    init_fn, expand, reduce = hc_mod.get_init_and_expand_reduce_stream_functions(4, disable=True)
    module = init_fn(dim=D, layer_index=0)
    residuals, branch_output = det((B, N, D), 1), det((B, N, D), 2)
    with torch.no_grad():
        u, add_residual = module(residuals)
        out = add_residual(branch_output)
    return make_case("residual_disable", "residual",
                     "get_init_and_expand_reduce_stream_functions(4, disable=True): plain Residual, out = y + x",
                     {"num_residual_streams": 4, "dim": D, "disable": True},
                     {"residuals": residuals, "branch_output": branch_output}, state_json(module),
                     {"branch_input": u, "out": out})


def hc_cases():
    return [
        hc_case("hc_s4_f1", 4),
        hc_case("hc_s4_f1_notanh", 4, tanh=False),
        hc_case("hc_s4_f1_init", 4, perturbed=False),
        hc_case("hc_s2_f2", 2, F=2),
        hc_case("hc_s2_f2_init", 2, F=2, perturbed=False),
        hc_case("hc_s1_f4_init", 1, F=4, layer_index=0, perturbed=False),
        hc_case("hc_s3_v2", 3, views=2, note="; branch_input is (V, B, N, D)"),
        hc_case("hc_s4_nodepth", 4, add_branch=False, note="; add_branch_out_to_residual=False: out is branch_output"),
        hc_case("hc_s2_channel_first", 2, channel_first=True,
                library_bug="HC channel_first=True: the depth step sums the branch output over the last "
                            "spatial axis (spec b.3.7, b.12)",
                note="; residuals (B*S, D, N)"),
        hc_case("hc_s4_f1_grad", 4, with_grad=True),
        hc_case("hc_s2_f2_grad", 2, F=2, with_grad=True),
        hc_pipeline_case(),
        hc_case("hc_s2_gated_depth", 2, kind="hc_gated_depth", depth_fn=lambda: res_mod.GatedResidual(D),
                note="; depth_residual_fn = GatedResidual(dim) (params depth_residual_fn.*)"),
        residual_disable_case(),
    ]


# ----------------------------------------------------------------------------------------------------------
# L1 helpers (stream embed expand, attention-pool reduce) and the v2 plain expand / reduce

def helper_cases():
    S = 3
    cases = []
    embed = hc_mod.StreamEmbed(S, D, expand_to_streams=True)
    perturb(embed)
    x = det((B, N, D), 1)
    with torch.no_grad():
        cases.append(make_case("hc_stream_embed_expand", "stream_embed_expand",
                               "L1 StreamEmbed(S, D, expand_to_streams=True), stream_embed perturbed: "
                               "row b*S+s = x[b] + E[s]",
                               {"num_streams": S, "dim": D, "expand_to_streams": True},
                               {"x": x}, state_json(embed), {"out": embed(x)}))
        for channel_first in (False, True):
            pool = hc_mod.AttentionPoolReduceStream(S, D, channel_first=channel_first)
            perturb(pool)
            residuals = det((B * S, D, N) if channel_first else (B * S, N, D), 1)
            cases.append(make_case("hc_attn_pool_reduce" + ("_channel_first" if channel_first else ""),
                                   "attn_pool_reduce",
                                   "L1 AttentionPoolReduceStream, to_attn_logits perturbed; softmax over streams "
                                   "per feature" + ("; residuals (B*S, D, N) -> (B, D, N)" if channel_first else ""),
                                   {"num_streams": S, "dim": D, "channel_first": channel_first},
                                   {"residuals": residuals}, state_json(pool), {"out": pool(residuals)}))
        expand, reduce = mhc2.get_expand_reduce_stream_functions(S, dim=D)
        expanded = expand(x)
        cases.append(make_case("mhc2_expand_reduce_plain", "expand_reduce_v2",
                               "v2 plain expand (B,N,D)->(B,N,S,D) copies, reduce = sum over the stream axis",
                               {"num_streams": S, "dim": D}, {"x": x}, {},
                               {"expanded": expanded, "reduced": reduce(expanded)}))
    return cases


# ----------------------------------------------------------------------------------------------------------
# other HC modules: the 2-D channel-first module, multi-branch inputs, multi-input streams

def other_module_cases():
    cases = []
    S = 2
    torch.manual_seed(0)
    cf = cf_mod.HyperConnections(S, dim=D, layer_index=1)
    perturb(cf)
    H, W = 2, 3
    cases.append(width_depth_case("cf_s2", "hc_channel_first_module",
                                  "separate channel-first HC module (1x1 convs), residuals (B*S, D, H, W), perturbed",
                                  cf, {"num_residual_streams": S, "dim": D, "layer_index": 1, "tanh": True,
                                       "layout": "L1 channel-first"},
                                  det((B * S, D, H, W), 1), det((B, D, H, W), 2)))

    S, I = 3, 2
    mb_config = {"num_residual_streams": S, "dim": D, "layer_index": 1, "tanh": True, "num_branch_inputs": I,
                 "layout": "L1"}
    mb = mb_mod.HyperConnections(S, dim=D, layer_index=1, num_branch_inputs=I)
    cases.append(make_case("mb_s3_i2_initparams", "multi_branch",
                           "multi-branch-inputs HC, S=3, I=2, layer_index=1: init params only "
                           "(input0 reads stream 1, input1 reads stream 0)",
                           mb_config, {}, state_json(mb), {}))
    perturb(mb)
    cases.append(width_depth_case("mb_s3_i2", "multi_branch",
                                  "multi-branch-inputs HC, perturbed; branch_input (I*B, N, D) input-major, "
                                  "branch_output (I*B, N, D)",
                                  mb, mb_config, det((B * S, N, D), 1), det((I * B, N, D), 2)))

    S, D_third = 2, 4
    paths = [1, ("third", D_third)]
    torch.manual_seed(0)
    mi = mi_mod.HyperConnections(S, dim=D, layer_index=1, additional_input_paths=paths)
    perturb(mi)  # perturb() clones, so the aliased additional_static_input.* become independent
    residuals, extra1, third = det((B * S, N, D), 1), det((B * S, N, D), 3), det((B * S, N, D_third), 4)
    branch_output = det((B, N, D), 2)
    with torch.no_grad():
        (args, kwargs), mixed, extra = mi.width_connection(residuals, extra1, third=third)
        out = mi.depth_connection(branch_output, mixed, **extra)
    cases.append(make_case("mi_s2", "multi_input",
                           "multi-input-streams HC, perturbed; extra inputs: positional arg 1 (dim D, input '1') "
                           "and kwarg 'third' (dim 4); each is reduced over streams with its own weights. "
                           "additional_static_input.* alias one storage in the library; here they are separated "
                           "before perturbing",
                           {"num_residual_streams": S, "dim": D, "layer_index": 1, "tanh": True,
                            "additional_input_paths": [1, ["third", D_third]], "layout": "L1"},
                           {"residuals": residuals, "1": extra1, "third": third, "branch_output": branch_output},
                           state_json(mi),
                           {"branch_input": args[0], "1_reduced": args[1], "third_reduced": kwargs["third"],
                            "residuals_after_width": mixed, "beta": extra["beta"], "out": out}))
    return cases


# ----------------------------------------------------------------------------------------------------------
# mHC v1 (L1) and v2 (L2)

def mhc_case(version_mod, kind, name, S, *, F=1, layer_index=1, perturbed=True, with_grad=False, iters=20,
             log_domain=False, proposals=1, mix=False, residual_shape=None, library_bug=None, note=""):
    torch.manual_seed(0)
    dim = D_FRAC if F > 1 else D
    kwargs = dict(dim=dim, layer_index=layer_index, num_fracs=F, sinkhorn_iters=iters,
                  log_domain_sinkhorn=log_domain, num_dynamic_alpha_proposals=proposals)
    if mix:
        kwargs["mix_streams_before_norm"] = True
    module = version_mod.ManifoldConstrainedHyperConnections(S, **kwargs)
    if perturbed:
        perturb(module)
    if kind == "mhc_v1":
        residuals, branch_output, layout = det((B * S, N, dim), 1), det((B, N, dim), 2), "L1"
    else:
        residual_shape = residual_shape or (B, N, S, dim)
        residuals, branch_output, layout = det(residual_shape, 1), det(residual_shape[:-2] + (dim,), 2), "L2"
    description = (f"mHC {kind[-2:]} S={S} F={F} P={proposals} iters={iters}"
                   f"{' log-domain' if log_domain else ''}{' mix_streams_before_norm' if mix else ''}, "
                   f"{'perturbed params' if perturbed else 'params at init'}{note}")
    return width_depth_case(name, kind, description, module, {"num_residual_streams": S, **kwargs, "layout": layout},
                            residuals, branch_output, with_grad=with_grad, library_bug=library_bug,
                            tolerance=TOL_SINKHORN_GRAD)


def mhc_v1_cases():
    v1 = lambda name, S, **kw: mhc_case(mhc1, "mhc_v1", name, S, **kw)
    return [
        v1("mhc1_s4", 4),
        v1("mhc1_s4_init", 4, perturbed=False),
        v1("mhc1_s4_p2", 4, proposals=2),
        v1("mhc1_s4_log", 4, log_domain=True),
        v1("mhc1_s4_iters0", 4, iters=0, library_bug=SINKHORN_ITERS0_BUG["v1"]),
        v1("mhc1_s2_f2", 2, F=2, library_bug="v1 num_fracs>1: sigmoid on one column only and a non-square "
                                              "Sinkhorn re-read with the HC (f2, t) layout (spec b.8, b.12)"),
        v1("mhc1_s4_grad", 4, with_grad=True),
    ]


def mhc2_pipeline_case():
    """v2 stream-embed expand -> 2 mHC layers with Linear branches -> attention-pool reduce, all perturbed."""
    S, layers = 4, 2
    torch.manual_seed(0)
    init_mhc, expand, reduce = mhc2.get_init_and_expand_reduce_stream_functions(
        S, dim=D, add_stream_embed=True, add_attn_pool_reduce_stream=True)
    net = nn.Module()
    net.expand, net.reduce = expand, reduce
    net.layers = nn.ModuleList([init_mhc(branch=nn.Linear(D, D), layer_index=i) for i in range(layers)])
    perturb(net)
    x = det((B, N, D), 1)
    with torch.no_grad():
        expanded = expand(x)
        after0 = net.layers[0](expanded)
        after1 = net.layers[1](after0)
        out = reduce(after1)
    return make_case("mhc2_pipeline", "mhc_v2_pipeline",
                     "v2 StreamEmbed expand -> 2 mHC v2 layers (layer_index 0, 1; Linear branches layers.<i>.branch) "
                     "-> AttentionPoolReduceStream; every param perturbed",
                     {"num_residual_streams": S, "dim": D, "layers": layers, "sinkhorn_iters": 20,
                      "add_stream_embed": True, "add_attn_pool_reduce_stream": True, "layout": "L2"},
                     {"x": x}, state_json(net),
                     {"expanded": expanded, "after_layer0": after0, "after_layer1": after1, "out": out},
                     tolerance=TOL_SINKHORN_GRAD)


def mhc_v2_cases():
    v2 = lambda name, S, **kw: mhc_case(mhc2, "mhc_v2", name, S, **kw)
    return [
        v2("mhc2_s4", 4),
        v2("mhc2_s4_init", 4, perturbed=False),
        v2("mhc2_s2_f2", 2, F=2),
        v2("mhc2_s2_f2_init", 2, F=2, perturbed=False),
        v2("mhc2_s4_mix", 4, mix=True),
        v2("mhc2_s4_p2", 4, proposals=2),
        v2("mhc2_s4_iters0", 4, iters=0, library_bug=SINKHORN_ITERS0_BUG["v2"]),
        v2("mhc2_s4_log", 4, log_domain=True),
        v2("mhc2_s4_3d", 4, residual_shape=(B, 4, D), note="; residuals (B, S, D), no token axis"),
        v2("mhc2_s4_grad", 4, with_grad=True),
        v2("mhc2_s2_f2_grad", 2, F=2, with_grad=True),
        mhc2_pipeline_case(),
    ]


# ----------------------------------------------------------------------------------------------------------
# depth-residual gates

def gate_cases():
    cases = []
    x, residual = det((B, N, D), 1), det((B, N, D), 2)
    for fine in (False, True):
        torch.manual_seed(0)
        gate = res_mod.GatedResidual(D, fine_gate=fine)
        perturb(gate)
        with torch.no_grad():
            out = gate(x, residual)
        cases.append(make_case(f"gated_residual_fine{int(fine)}", "gated_residual",
                               "GatedResidual: out = x + sigmoid(Linear([x ; residual])) * (residual - x); "
                               "params = torch default init (seed 0) + perturbation",
                               {"dim": D, "fine_gate": fine}, {"x": x, "residual": residual},
                               state_json(gate), {"out": out}))
    torch.manual_seed(0)
    gru = res_mod.GRUGatedResidual(D)
    perturb(gru)
    with torch.no_grad():
        out = gru(x, residual)
    cases.append(make_case("gru_gated_residual", "gru_gated_residual",
                           "GRUGatedResidual: GRUCell(input=x, hidden=residual) over flattened leading axes",
                           {"dim": D}, {"x": x, "residual": residual}, state_json(gru), {"out": out}))
    return cases


def residual_update_cases():
    """Depth-residual functions added in 0.4.11 (not kinds of the fixtures format yet)."""
    x, residual = det((B, N, D), 1), det((B, N, D), 2)
    ortho = res_mod.OrthogonalResidualUpdate(double_precision=True)
    mv = res_mod.MVSplitResidualUpdate(D)
    perturb(mv)
    with torch.no_grad():
        return [
            make_case("orthogonal_residual_update", "orthogonal_residual_update",
                      "OrthogonalResidualUpdate (new in 0.4.11): residual + (x - (x.u)u), u = residual/|residual| "
                      "over the last axis, computed in float64", {"double_precision": True},
                      {"x": x, "residual": residual}, {}, {"out": ortho(x, residual)}),
            make_case("mv_split_residual_update", "mv_split_residual_update",
                      "MVSplitResidualUpdate (new in 0.4.11): residual + (x - mean_n x)*beta + "
                      "(mean_n x - mean_n residual)*alpha, means over axis -2 (tokens); params perturbed",
                      {"dim": D}, {"x": x, "residual": residual}, state_json(mv), {"out": mv(x, residual)}),
        ]


# ----------------------------------------------------------------------------------------------------------
# the library's example ViT (vit.py) with mHC v2 connections, end to end

def set_home_streams(model, num_streams):
    """Gives every mHC of the ViT the home stream hcgrad's examples/vit_digits picks: connection c (attention of
    layer l is c = 2l, its feed-forward 2l + 1) reads stream c mod S at init. vit.py passes no layer_index, so the
    library draws the home stream with Python's random; it lives only in static_alpha's pre column (one-hot
    row at init), so rewriting that column before perturbing is the library's init for layer_index = c."""
    homes = []
    with torch.no_grad():
        for layer, (attn, ff) in enumerate(model.transformer.layers):
            for c, hc in ((2 * layer, attn), (2 * layer + 1, ff)):
                pre = hc.static_alpha[:, :hc.num_input_views * hc.num_fracs]   # [S·F, V·F]
                pre.zero_()
                pre[c % num_streams] = 1.0
                homes.append(c % num_streams)
    return homes


def vit_case(name, S, *, heads, dim_head, pool="cls", note=""):
    config = dict(image_size=8, patch_size=4, num_classes=10, dim=16, depth=2, heads=heads, mlp_dim=32, pool=pool,
                  channels=1, dim_head=dim_head, dropout=0.0, emb_dropout=0.0, num_residual_streams=S,
                  mhc_kwargs={"num_dynamic_alpha_proposals": 1})
    torch.manual_seed(0)
    model = vit_mod.ViT(**config)
    homes = set_home_streams(model, S)
    perturb(model)
    model.eval()
    img = det((B, config["channels"], 8, 8), 1)
    with torch.no_grad():
        logits = model(img)
    return make_case(name, "vit",
                     f"vit.py ViT, 8x8 images in 2x2 patches of 4x4, dim 16, depth 2, {heads} heads of {dim_head}, "
                     f"MLP 32, pool {pool}, {S} streams, mHC v2 (1 proposal, 20 Sinkhorn iterations); home stream "
                     f"of connection c (2l attention, 2l+1 feed-forward) = c mod S, every param perturbed, eval "
                     f"mode{note}",
                     {**config, "home_streams": homes}, {"img": img}, state_json(model), {"logits": logits},
                     tolerance=TOL_FORWARD)  # not the mHC cases' 1e-4: at the logits a change of 0.01 in one
                                             # weight moves them by about that much, and hcgrad agrees to ~1e-6


def vit_cases():
    return [
        vit_case("vit_s2", 2, heads=2, dim_head=8),
        vit_case("vit_s4_mean_pool_no_out_proj", 4, heads=1, dim_head=16, pool="mean",
                 note="; heads = 1 and dim_head = dim, so Attention.to_out is the identity (no params); pool mean, "
                      "so cls_token is (0, 16) and pos_embedding (4, 16)"),
    ]


FILES = {
    "primitives.json": primitive_cases,
    "hc.json": hc_cases,
    "helpers.json": helper_cases,
    "other_modules.json": other_module_cases,
    "mhc_v1.json": mhc_v1_cases,
    "mhc_v2.json": mhc_v2_cases,
    "gates.json": gate_cases,
    "residual_updates.json": residual_update_cases,
    "vit.json": vit_cases,
}


def meta():
    return {"library": "hyper-connections", "version": version("hyper-connections"),
            "torch": torch.__version__, "det": DET_RULE, "perturbed": PERTURB_RULE,
            "tolerance": {"forward": TOL_FORWARD, "sinkhorn_or_grad": TOL_SINKHORN_GRAD,
                          "rule": "|got - ref| <= tol + tol*|ref|; each case states its own tol"}}


def generate(only=None):
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for file_name, build in FILES.items():
        if only and file_name not in only:
            continue
        doc = {"meta": meta(), "cases": build()}
        path = OUT_DIR / file_name
        path.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
        print(f"{file_name}: {len(doc['cases'])} cases, {path.stat().st_size} bytes")


# ----------------------------------------------------------------------------------------------------------
# --verify: structural check of every file + a few cases re-derived independently in numpy (float64)

def arr(t):
    return np.asarray(t["data"], dtype=np.float64).reshape(t["shape"])


def np_rmsnorm(x, gamma):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12) * math.sqrt(x.shape[-1]) * (gamma + 1)


def np_sinkhorn(logits, iters, variant):
    if variant == "log":
        for _ in range(iters):
            logits = logits - np.log(np.exp(logits).sum(-2, keepdims=True))
            logits = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        return np.exp(logits)
    a = np.exp(logits - logits.max(-2, keepdims=True))
    for _ in range(iters):
        a = a / a.sum(-2, keepdims=True)
        a = a / a.sum(-1, keepdims=True)
    return a


def np_hc_f1(case):
    """Textbook DHC for F=1, V=1 (spec b.3.2 / b.3.3), index-explicit on the L1 layout."""
    S = case["config"]["num_residual_streams"]
    p = {k: arr(v) for k, v in case["params"].items()}
    x = arr(case["inputs"]["residuals"])                       # (B*S, N, D)
    y = arr(case["inputs"]["branch_output"])                   # (B, N, D)
    xs = x.reshape(-1, S, *x.shape[1:])                        # (B, S, N, D)
    phi = np.tanh if case["config"]["tanh"] else (lambda v: v)
    normed = np_rmsnorm(xs, p["norm.gamma"])
    alpha = p["static_alpha"][None, :, None, :] + p["dynamic_alpha_scale"] * phi(normed @ p["dynamic_alpha_fn"])
    beta = p["static_beta"][None, :, None] + p["dynamic_beta_scale"] * phi(normed @ p["dynamic_beta_fn"])
    mixed = np.einsum("bsnc,bsnd->bcnd", alpha, xs)            # c = 0: branch input, 1+t: stream t
    out = mixed[:, 1:] + beta[..., None] * y[:, None]
    return {"branch_input": mixed[:, 0], "residuals_after_width": mixed[:, 1:], "out": out}


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_mhc_step(p, xs, branch, iters, variant="v2", prefix=""):
    """One mHC v2 step, F=1, V=1, on xs (B, N, S, D) with params p[prefix + name]; branch maps u (B, N, D) to y."""
    S = xs.shape[-2]
    normed = np_rmsnorm(xs, p[prefix + "norm.gamma"])
    scale = np.concatenate([p[prefix + "pre_branch_scale"], np.repeat(p[prefix + "residual_scale"], S)])  # (1+S,)
    logits = p[prefix + "static_alpha"] + scale * np.einsum("bnsd,pdc->pbnsc", normed, p[prefix + "dynamic_alpha_fn"])
    h_pre = np_sigmoid(logits[..., 0])                                                       # (P, B, N, S)
    h_res = np_sinkhorn(logits[..., 1:], iters, variant)                                     # (P, B, N, S, S)
    h_pre, h_res = h_pre.mean(0), h_res.mean(0)
    beta_logit = (p[prefix + "static_beta"].reshape(S)
                  + p[prefix + "h_post_scale"] * (normed @ p[prefix + "dynamic_beta_fn"].reshape(-1)))
    beta = 2 * np_sigmoid(beta_logit)                                                        # (B, N, S)
    u = np.einsum("bns,bnsd->bnd", h_pre, xs)
    r = np.einsum("bnst,bnsd->bntd", h_res, xs)
    return u, r, r + beta[..., None] * branch(u)[:, :, None]


def np_mhc_f1(case):
    """mHC clean form for F=1, V=1 (spec b.8 / b.9): sigmoid pre weights, Sinkhorn H_res, 2*sigmoid post."""
    S = case["config"]["num_residual_streams"]
    p = {k: arr(v) for k, v in case["params"].items()}
    x = arr(case["inputs"]["residuals"])
    y = arr(case["inputs"]["branch_output"])                   # (B, N, D)
    if case["kind"] == "mhc_v1":
        xs = np.moveaxis(x.reshape(-1, S, *x.shape[1:]), 1, -2)  # (B*S, N, D) -> (B, N, S, D)
    else:
        xs = x                                                 # (B, N, S, D)
    u, r, out = np_mhc_step(p, xs, lambda _: y, case["config"]["sinkhorn_iters"],
                            "log" if case["config"]["log_domain_sinkhorn"] else "v2")
    if case["kind"] == "mhc_v1":                               # back to the L1 layout (B*S, N, D)
        r, out = (np.moveaxis(t, -2, 1).reshape(x.shape) for t in (r, out))
    return {"branch_input": u, "residuals_after_width": r, "out": out}


def np_layernorm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True) + eps) * weight + bias


def np_vit(case):
    """vit.py's forward written out: patches, embedding, S streams through 2·depth mHC v2 steps around
    pre-norm attention / feed-forward, sum over the streams, LayerNorm, cls row or token mean, head."""
    cfg = case["config"]
    p = {k: arr(v) for k, v in case["params"].items()}
    linear = lambda x, name: x @ p[name + ".weight"].T + p.get(name + ".bias", 0)
    norm = lambda x, name: np_layernorm(x, p[name + ".weight"], p[name + ".bias"])
    img = arr(case["inputs"]["img"])                            # (B, C, H, W)
    b, c, g, ps = img.shape[0], img.shape[1], img.shape[2] // cfg["patch_size"], cfg["patch_size"]
    patches = img.reshape(b, c, g, ps, g, ps).transpose(0, 2, 4, 3, 5, 1).reshape(b, g * g, ps * ps * c)
    x = norm(linear(norm(patches, "to_patch_embedding.1"), "to_patch_embedding.2"), "to_patch_embedding.3")
    x = np.concatenate([np.broadcast_to(p["cls_token"], (b, *p["cls_token"].shape)), x], axis=1)
    x = x + p["pos_embedding"][: x.shape[1]]
    heads, dh = cfg["heads"], cfg["dim_head"]

    def attention(u, pre):
        q, k, v = np.split(norm(u, pre + "norm") @ p[pre + "to_qkv.weight"].T, 3, axis=-1)
        q, k, v = (t.reshape(*t.shape[:2], heads, dh).transpose(0, 2, 1, 3) for t in (q, k, v))
        dots = q @ k.transpose(0, 1, 3, 2) * dh ** -0.5
        attn = np.exp(dots - dots.max(-1, keepdims=True))
        out = (attn / attn.sum(-1, keepdims=True) @ v).transpose(0, 2, 1, 3).reshape(*u.shape[:2], heads * dh)
        return linear(out, pre + "to_out.0") if pre + "to_out.0.weight" in p else out

    def feed_forward(u, pre):
        h = linear(norm(u, pre + "net.0"), pre + "net.1")
        return linear(0.5 * h * (1 + np.vectorize(math.erf)(h / math.sqrt(2))), pre + "net.4")

    xs = np.repeat(x[:, :, None], cfg["num_residual_streams"], axis=2)   # (B, T, S, D)
    for layer in range(cfg["depth"]):
        for block, branch in ((0, attention), (1, feed_forward)):
            pre = f"transformer.layers.{layer}.{block}."
            xs = np_mhc_step(p, xs, lambda u: branch(u, pre + "branch."), 20, prefix=pre)[2]
    x = norm(xs.sum(2), "transformer.norm")
    return {"logits": linear(x.mean(1) if cfg["pool"] == "mean" else x[:, 0], "mlp_head")}


def max_err(got, ref_tensor):
    return float(np.max(np.abs(np.asarray(got).reshape(-1) - arr(ref_tensor).reshape(-1))))


def verify():
    docs = {}
    for file_name in FILES:
        path = OUT_DIR / file_name
        doc = json.loads(path.read_text())
        assert set(doc["meta"]) >= {"library", "version", "det", "tolerance"}, file_name
        for case in doc["cases"]:
            for key in ("name", "kind", "description", "config", "inputs", "params", "outputs"):
                assert key in case, f"{file_name}:{case.get('name')}: missing {key}"
            groups = [case["inputs"], case["params"], case["outputs"], case.get("grads", {})]
            for group in groups:
                for tname, t in group.items():
                    assert len(t["data"]) == math.prod(t["shape"]), f"{case['name']}.{tname}: size/shape mismatch"
                    assert all(math.isfinite(v) for v in t["data"]), f"{case['name']}.{tname}: non-finite"
        docs.update({c["name"]: c for c in doc["cases"]})
        print(f"{file_name}: {len(doc['cases'])} cases parse, every data length = product of shape "
              f"({path.stat().st_size} bytes)")

    errors = {}
    c = docs["rmsnorm"]
    errors["rmsnorm"] = max_err(np_rmsnorm(arr(c["inputs"]["x"]), arr(c["params"]["gamma"])), c["outputs"]["y"])
    for name in ("sinkhorn_v1_iters20", "sinkhorn_v2_iters3", "log_sinkhorn_v2_iters20", "sinkhorn_v1_nonsquare"):
        c = docs[name]
        ref = np_sinkhorn(arr(c["inputs"]["log_alpha"]), c["config"]["iters"], c["config"]["variant"])
        errors[name] = max_err(ref, c["outputs"]["out"])
    for name in ("hc_s4_f1", "hc_s4_f1_notanh", "hc_s4_f1_init"):
        c = docs[name]
        ref = np_hc_f1(c)
        errors[name] = max(max_err(ref[k], c["outputs"][k]) for k in ref)
    # HC at init: the branch reads the home stream and every stream gets x_t + y
    c = docs["hc_s4_f1_init"]
    S, k = 4, c["config"]["layer_index"] % 4
    xs = arr(c["inputs"]["residuals"]).reshape(B, S, N, D)
    y = arr(c["inputs"]["branch_output"])
    errors["hc_s4_f1_init (u = x_home, out = x + y)"] = max(max_err(xs[:, k], c["outputs"]["branch_input"]),
                                                            max_err(xs + y[:, None], c["outputs"]["out"]))
    c = docs["hc_pipeline_init"]
    errors["hc_pipeline_init (out = S x plain)"] = max_err(4 * arr(c["outputs"]["plain_residual_out"]),
                                                          c["outputs"]["out"])
    for name in ("mhc1_s4", "mhc1_s4_init", "mhc1_s4_p2", "mhc1_s4_log", "mhc2_s4", "mhc2_s4_init", "mhc2_s4_p2",
                 "mhc2_s4_log"):
        c = docs[name]
        ref = np_mhc_f1(c)
        errors[name] = max(max_err(ref[k], c["outputs"][k]) for k in ref)
    for name in ("vit_s2", "vit_s4_mean_pool_no_out_proj"):
        errors[name] = max_err(np_vit(docs[name])["logits"], docs[name]["outputs"]["logits"])
    for name, err in errors.items():
        print(f"  numpy re-derivation {name}: max abs error {err:.3g}")
    worst = max(errors.values())
    assert worst < 1e-5, f"re-derivation error {worst} too large"
    print(f"verify OK: {len(docs)} cases, worst re-derivation error {worst:.3g}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verify", action="store_true", help="re-check the written files instead of generating")
    parser.add_argument("--only", nargs="+", choices=sorted(FILES), metavar="FILE",
                        help="write only these files (names as in FILES, e.g. vit.json)")
    args = parser.parse_args()
    if args.verify:
        verify()
    else:
        generate(args.only)
