#!/usr/bin/env python3
"""Safetensors files made by the reference implementation, for hcgrad's checkpoint tests and fuzzer.

    tools/.venv/bin/python tools/make_safetensors_fixture.py               # tests/fixtures/safetensors/*.safetensors
    tools/.venv/bin/python tools/make_safetensors_fixture.py --check FILE  # FILE loads in Python, same values as the fixture
    tools/.venv/bin/python tools/make_safetensors_fixture.py --corpus DIR  # seed inputs for tests/fuzz/fuzz_safetensors

The fixture is written by Hugging Face's `safetensors` library, so tests/test_checkpoint.cpp can check that
hcgrad reads files from the wider ecosystem. --check goes the other way: it loads a file hcgrad wrote with the
reference library, compares it with the fixture's tensors and recomputes hcgrad's checksum independently. The
fixture is also written a second time with hcgrad's checksum in its metadata (resaved_with_checksum.safetensors):
the reference writer lays it out its own way, and hcgrad must still verify it.

tools/make_conv_layers_fixture.py, beside this one, writes conv_layers.safetensors the way PyTorch users share
weights: torch.nn Conv2d / Conv1d / GroupNorm state_dicts (with torch's outputs), which hcgrad's nn layers load.

Set-up (tools/.venv is ignored by git):
    python3 -m venv tools/.venv && tools/.venv/bin/pip install safetensors numpy
"""
import argparse
import json
import pathlib
import struct
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "safetensors" / "reference.safetensors"
# The fixture's tensors and metadata with hcgrad's checksum, written by the reference writer (which orders and
# pads the file its own way): a checksummed file re-saved by another tool must still verify.
RESAVED = FIXTURE.with_name("resaved_with_checksum.safetensors")


def fixture_tensors():
    """Values simple enough for the C++ test to spell out by hand."""
    return {
        "weight": (np.arange(6, dtype=np.float32) * 0.5 - 1.0).reshape(2, 3),  # [[-1, -.5, 0], [.5, 1, 1.5]]
        "ids": np.array([-3, 0, 7, 2**40 + 1], dtype=np.int64),
        "mask": np.array([[True, False], [False, True]]),
        "scale": np.array(0.1, dtype=np.float64),  # 0-d
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


FIXTURE_METADATA = {"format": "np", "made_by": "tools/make_safetensors_fixture.py"}

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "BOOL": np.bool_}


# ---- hcgrad's checksum, written again from its description in nn/checkpoint.cpp ----

def fnv1a64(data, h=0xCBF29CE484222325):
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def u64(value):
    return struct.pack("<Q", value)


def length_prefixed(text):
    raw = text.encode("utf-8")
    return u64(len(raw)) + raw


def hcgrad_checksum(metadata, tensors):
    """fnv1a64-v2: the metadata sorted by key (the checksum entry left out), then each tensor sorted by name:
    name, dtype, ndim, sizes, byte count, bytes. `tensors` maps a name to (dtype, shape, raw bytes)."""
    entries = sorted((k, v) for k, v in metadata.items() if k != "hcgrad_checksum")
    canonical = length_prefixed("hcgrad-checksum-2") + u64(len(entries))
    for key, value in entries:
        canonical += length_prefixed(key) + length_prefixed(value)
    canonical += u64(len(tensors))
    for name in sorted(tensors, key=lambda n: n.encode("utf-8")):
        dtype, shape, raw = tensors[name]
        canonical += length_prefixed(name) + length_prefixed(dtype) + u64(len(shape))
        canonical += b"".join(u64(size) for size in shape) + u64(len(raw)) + raw
    return "fnv1a64-v2:%016x" % fnv1a64(canonical)


def legacy_checksum(header, data_section):
    """fnv1a64 (files saved before v2): the tensor table in data order (begin, end, name), then the data section."""
    entries = sorted((e["data_offsets"][0], e["data_offsets"][1], name, e)
                     for name, e in header.items() if name != "__metadata__")
    canonical = b""
    for begin, end, name, e in entries:
        canonical += length_prefixed(name) + length_prefixed(e["dtype"]) + u64(len(e["shape"]))
        canonical += b"".join(u64(size) for size in e["shape"]) + u64(begin) + u64(end)
    return "fnv1a64:%016x" % fnv1a64(canonical + data_section)


def tensors_of(header, data_section):
    """name -> (dtype, shape, raw bytes) of a parsed file."""
    return {name: (e["dtype"], e["shape"], data_section[e["data_offsets"][0]:e["data_offsets"][1]])
            for name, e in header.items() if name != "__metadata__"}


def dtype_name(array):
    return next(k for k, v in DTYPES.items() if v == array.dtype)


def split(raw):
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def encode(header, data_section):
    """A file from a header dict, padded with spaces to 8 bytes like the reference writer."""
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return u64(len(text)) + text + data_section


def with_checksum(tensors, metadata=None):
    """An hcgrad-style file (with its checksum) of numpy arrays, laid out in the given order."""
    header, data, offset = {}, b"", 0
    for name, array in tensors.items():
        raw = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": dtype_name(array), "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        data, offset = data + raw, offset + len(raw)
    meta = dict(metadata or {"step": "7"})
    meta["hcgrad_checksum"] = hcgrad_checksum(meta, tensors_of(header, data))
    header["__metadata__"] = meta
    return encode(header, data)


def legacy_file(tensors):
    """A file with the checksum hcgrad wrote before v2 (still verified when loaded)."""
    header, data = split(with_checksum(tensors))
    header["__metadata__"] = {"step": "7"}
    header["__metadata__"]["hcgrad_checksum"] = legacy_checksum(header, data)
    return encode(header, data)


# ---- modes ----

def write_fixture():
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    save_file(fixture_tensors(), str(FIXTURE), metadata=FIXTURE_METADATA)
    print(f"wrote {FIXTURE.relative_to(ROOT)} ({FIXTURE.stat().st_size} bytes)")
    tensors = fixture_tensors()
    raw = {name: (dtype_name(a), list(a.shape), np.ascontiguousarray(a).tobytes()) for name, a in tensors.items()}
    metadata = dict(FIXTURE_METADATA, hcgrad_checksum=hcgrad_checksum(FIXTURE_METADATA, raw))
    save_file(tensors, str(RESAVED), metadata=metadata)
    print(f"wrote {RESAVED.relative_to(ROOT)} ({RESAVED.stat().st_size} bytes)")


def check(path):
    """Loads `path` with the reference library and compares it with the fixture's tensors."""
    with safe_open(path, framework="np") as f:
        metadata = f.metadata() or {}
        loaded = {name: f.get_tensor(name) for name in f.keys()}
    print(f"{path}: metadata {metadata}")
    ok = True
    expected = fixture_tensors()
    for name, value in loaded.items():
        print(f"  {name}: {value.dtype} {list(value.shape)} {value.tolist()}")
    if set(loaded) != set(expected):
        print(f"FAIL: tensors {sorted(loaded)}, expected {sorted(expected)}")
        ok = False
    for name in set(loaded) & set(expected):
        want, got = expected[name], loaded[name]
        if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
            print(f"FAIL: {name} differs from the fixture: {got!r}, expected {want!r}")
            ok = False
    raw = pathlib.Path(path).read_bytes()
    header, data = split(raw)
    if "hcgrad_checksum" in metadata:
        legacy = metadata["hcgrad_checksum"].startswith("fnv1a64:")
        actual = legacy_checksum(header, data) if legacy else hcgrad_checksum(metadata, tensors_of(header, data))
        print(f"  checksum {metadata['hcgrad_checksum']} (recomputed here: {actual})")
        ok = ok and actual == metadata["hcgrad_checksum"]
    (n,) = struct.unpack("<Q", raw[:8])
    if n % 8:
        print(f"FAIL: header size {n} is not a multiple of 8")
        ok = False
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


def write_corpus(directory):
    """Small seeds for the fuzzer: valid files and near misses that reach each check in the reader."""
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    fixture = FIXTURE.read_bytes()
    # The destinations fuzz_safetensors copies into: weight f32 [2,3], bias f32 [3], step i64 [].
    model = {"weight": np.arange(6, dtype=np.float32).reshape(2, 3), "bias": np.ones(3, dtype=np.float32),
             "step": np.array(7, dtype=np.int64)}
    f32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    seeds = {
        "reference.safetensors": fixture,
        "model_checksum.safetensors": with_checksum(model),
        "mixed_checksum.safetensors": with_checksum({"m": np.array([True, False]), "d": np.array([2.5]),
                                                     "e": np.zeros((2, 0), dtype=np.int64)}),
        "legacy_checksum.safetensors": legacy_file(model),
        "metadata_only.safetensors": encode({"__metadata__": {"a": "b"}}, b""),
        "truncated.safetensors": fixture[: len(fixture) // 2],
        "f16.safetensors": encode({"h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4),
        "overlap.safetensors": encode({"a": f32, "b": {**f32, "data_offsets": [4, 12]}}, b"\0" * 12),
        "float_offset.safetensors": encode({"a": {**f32, "data_offsets": [0, 8.0]}}, b"\0" * 8),
        "bad_bool.safetensors": encode({"m": {"dtype": "BOOL", "shape": [2], "data_offsets": [0, 2]}}, b"\x01\x02"),
    }
    # The same valid files as "{header}\0data", which fuzz_safetensors frames itself (see there why).
    for name in ("reference", "model_checksum", "mixed_checksum"):
        header, data = split(seeds[name + ".safetensors"])
        seeds[name + ".split"] = json.dumps(header, separators=(",", ":")).encode() + b"\0" + data
    for name, raw in seeds.items():
        (out / name).write_bytes(raw)
    print(f"wrote {len(seeds)} seeds to {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", metavar="FILE", help="load FILE with the reference library and compare")
    parser.add_argument("--corpus", metavar="DIR", help="write fuzzer seeds to DIR")
    args = parser.parse_args()
    if args.check:
        return check(args.check)
    if args.corpus:
        write_corpus(args.corpus)
        return 0
    write_fixture()
    return 0


if __name__ == "__main__":
    sys.exit(main())
