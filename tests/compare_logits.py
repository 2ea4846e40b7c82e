#!/usr/bin/env python3
"""Compares the F32 tensors of two safetensors files (pure Python: no numpy in CI).

Usage: compare_logits.py REF GOT MAX_REL
For every tensor of REF (GOT must have the same names and shapes) prints the
largest |got - ref| and that divided by the largest |ref|, and the fraction of
rows (last axis) whose argmax differs. Exits 1 when a tensor's relative
difference exceeds MAX_REL or an argmax changes; prints "within bound" else.
"""
import array
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        a = array.array("f")
        a.frombytes(data[t["data_offsets"][0]:t["data_offsets"][1]])
        out[name] = (t["shape"], a)
    return out


def main():
    ref, got, bound = read(sys.argv[1]), read(sys.argv[2]), float(sys.argv[3])
    ok = True
    for name, (shape, r) in ref.items():
        if name not in got or got[name][0] != shape:
            print("%s: missing or shaped differently in %s" % (name, sys.argv[2]))
            return 1
        g = got[name][1]
        diff = max(abs(x - y) for x, y in zip(r, g))
        scale = max(abs(x) for x in r) or 1.0
        width = shape[-1]
        rows = len(r) // width
        flips = 0
        for i in range(rows):
            rr, gg = r[i * width:(i + 1) * width], g[i * width:(i + 1) * width]
            if max(range(width), key=rr.__getitem__) != max(range(width), key=gg.__getitem__):
                flips += 1
        print("%s %s: max |diff| %.3g, relative %.3g (bound %.3g), argmax changed in %d of %d rows"
              % (name, shape, diff, diff / scale, bound, flips, rows))
        ok = ok and diff / scale <= bound and flips == 0
    print("within bound" if ok else "OUT OF BOUND")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
