#!/usr/bin/env python3
"""A PyTorch state_dict of convolution and group-norm layers, with their outputs, for hcgrad's nn layer tests.

    tools/.venv/bin/python tools/make_conv_layers_fixture.py   # tests/fixtures/safetensors/conv_layers.safetensors

torch.nn.Conv2d, Conv1d and GroupNorm are saved with torch's own state_dict names and layouts by
`safetensors.torch.save_file`, the way a PyTorch user shares weights. tests/test_checkpoint.cpp builds hcgrad's
nn::Conv2d, nn::Conv1d and nn::GroupNorm under the same names, loads the file into them, and compares each
layer's output on the stored input with torch's. The layers (module attribute = state_dict prefix):

    conv2d          Conv2d(2, 4, 3, padding=1)                      input.conv2d  [2, 2, 5, 5] -> [2, 4, 5, 5]
    conv2d_grouped  Conv2d(4, 6, 3, stride=2, dilation=2, groups=2,  input.conv2d_grouped [1, 4, 7, 6]
                           bias=False)                                                      -> [1, 6, 2, 1]
    conv1d          Conv1d(2, 3, 3)                                 input.conv1d  [2, 2, 6] -> [2, 3, 4]
    norm            GroupNorm(2, 4)                                 input.norm    [2, 4, 3, 3] -> [2, 4, 3, 3]

Each output is stored as output.<layer>. The weights are torch's init after torch.manual_seed(0) plus
0.25·sin(0.731k + 1.37·(10 + i)) (k row-major, i the parameter's index in sorted-name order), so that GroupNorm's
weight and bias are not its init 1 and 0; the inputs are sin(0.731k + 1.37·seed), seeds 1 to 4. Regenerating
gives the same bytes for the same torch and safetensors (float32 CPU arithmetic).

Set-up: tools/.venv of tools/requirements-fixtures.txt (torch), plus `pip install safetensors` (made with
torch 2.15.0 and safetensors 0.8.0).
"""
import math
import pathlib

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "safetensors" / "conv_layers.safetensors"


def det(shape, seed, scale=1.0):
    k = np.arange(math.prod(shape), dtype=np.float64)
    return torch.from_numpy((scale * np.sin(0.731 * k + 1.37 * seed)).astype(np.float32).reshape(shape))


class ConvLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv2d = nn.Conv2d(2, 4, 3, padding=1)
        self.conv2d_grouped = nn.Conv2d(4, 6, 3, stride=2, dilation=2, groups=2, bias=False)
        self.conv1d = nn.Conv1d(2, 3, 3)
        self.norm = nn.GroupNorm(2, 4)


INPUT_SHAPES = {"conv2d": (2, 2, 5, 5), "conv2d_grouped": (1, 4, 7, 6), "conv1d": (2, 2, 6), "norm": (2, 4, 3, 3)}


def main():
    torch.manual_seed(0)
    layers = ConvLayers()
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(layers.named_parameters())):
            p.add_(det(tuple(p.shape), 10 + i, 0.25))
    tensors = {name: t.detach().clone() for name, t in layers.state_dict().items()}
    with torch.no_grad():
        for seed, (name, shape) in enumerate(INPUT_SHAPES.items(), start=1):
            x = det(shape, seed)
            tensors[f"input.{name}"] = x
            tensors[f"output.{name}"] = getattr(layers, name)(x)
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(FIXTURE), metadata={"made_by": "tools/make_conv_layers_fixture.py"})
    back = load_file(str(FIXTURE))
    assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors)
    print(f"wrote {FIXTURE.relative_to(ROOT)} ({FIXTURE.stat().st_size} bytes, {len(tensors)} tensors)")
    for name, t in tensors.items():
        print(f"  {name}: {list(t.shape)}")


if __name__ == "__main__":
    main()
