#!/usr/bin/env python3
"""Writes broken copies of a w4a16 checkpoint (dsv3 convert --to w4a16) for
the loader's error tests. Usage: packed_int_bad.py IN_DIR OUT_ROOT
  OUT_ROOT/no_scale:    one weight_scale tensor left out
  OUT_ROOT/tiny_scale:  one scale too small for float16 (1e-30)
  OUT_ROOT/bad_group:   quantization_config group_size 100
"""
import json
import os
import shutil
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return header, data


def write(path, tensors):
    """tensors: list of (name, dtype, shape, bytes)."""
    header, at = {}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(raw)]}
        at += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(t[3] for t in tensors))


def main():
    src, root = sys.argv[1], sys.argv[2]
    header, data = read(os.path.join(src, "model.safetensors"))
    tensors = [(k, v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
               for k, v in sorted(header.items(), key=lambda kv: kv[1].get("data_offsets", [0])[0])
               if k != "__metadata__"]
    victim = "model.layers.0.self_attn.o_proj.weight_scale"
    config = json.load(open(os.path.join(src, "config.json")))
    variants = {
        "no_scale": ([t for t in tensors if t[0] != victim], config),
        "tiny_scale": ([(n, d, s, struct.pack("<H", 0x0DF2) + r[2:] if n == victim else r) for n, d, s, r in tensors],
                       config),
        "bad_group": (tensors, json.loads(json.dumps(config))),
    }
    variants["bad_group"][1]["quantization_config"]["config_groups"]["group_0"]["weights"]["group_size"] = 100
    for name, (ts, cfg) in variants.items():
        out = os.path.join(root, name)
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        write(os.path.join(out, "model.safetensors"), ts)
        json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
