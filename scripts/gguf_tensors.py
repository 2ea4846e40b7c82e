#!/usr/bin/env python3
"""Per-tensor table of a GGUF file, and comparisons of two files by it.

Each tensor becomes one line `name<TAB>type<TAB>ne0,ne1,...<TAB>sha256 of
its data bytes`, sorted by name, so two files that hold the same tensors in
another order, with other metadata, compare equal. This is how dsv3's
`convert --to gguf --type q4_k_m` output is checked against llama.cpp's
llama-quantize (docs/quantization.md, "Mixes"); the tables under
tests/data/llama_quantize/ were printed by it from llama-quantize's files.

  gguf_tensors.py FILE                 print the table
  gguf_tensors.py --diff A B           compare two files (or tables), exit 1 if they differ
  gguf_tensors.py --check TABLE FILE   same, TABLE being a saved table
Only the standard library is used (no numpy, no gguf-py).
"""
import hashlib
import mmap
import struct
import sys

# ggml type id -> (name, elements per block, bytes per block)
TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210),
    20: ("IQ4_NL", 32, 18), 23: ("IQ4_XS", 256, 136), 30: ("BF16", 1, 2),
}
# GGUF metadata value type -> struct format of a scalar (strings and arrays apart)
SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def take(self, fmt):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values[0] if len(values) == 1 else values

    def string(self):
        n = self.take("Q")
        s = bytes(self.data[self.at:self.at + n]).decode("utf-8")
        self.at += n
        return s

    def value(self, vtype):
        if vtype == 8:
            return self.string()
        if vtype == 9:
            item_type, n = self.take("I"), self.take("Q")
            return [self.value(item_type) for _ in range(n)]
        return self.take(SCALARS[vtype])


def table(path):
    """[(name, type name, shape string, sha256)] of the file, sorted by name."""
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    r = Reader(data)
    if r.take("4s") != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    version, n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    if version not in (2, 3):
        sys.exit(f"{path}: GGUF version {version} is not 2 or 3")
    align = 32
    for _ in range(n_kv):
        key, vtype = r.string(), r.take("I")
        value = r.value(vtype)
        if key == "general.alignment":
            align = value
    infos = []
    for _ in range(n_tensors):
        name, n_dims = r.string(), r.take("I")
        ne = [r.take("Q") for _ in range(n_dims)]
        infos.append((name, ne, r.take("I"), r.take("Q")))
    base = (r.at + align - 1) // align * align
    rows = []
    for name, ne, type_id, offset in infos:
        if type_id not in TYPES:
            sys.exit(f"{path}: tensor {name} has ggml type {type_id}, unknown here")
        type_name, block, block_bytes = TYPES[type_id]
        count = 1
        for n in ne:
            count *= n
        start = base + offset
        blob = data[start:start + count // block * block_bytes]
        rows.append((name, type_name, ",".join(map(str, ne)), hashlib.sha256(blob).hexdigest()))
    return sorted(rows)


def load(path):
    """A table from a GGUF file or from a saved table (one tensor per line)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GGUF":
        return table(path)
    with open(path) as f:
        return sorted(tuple(line.split("\t")) for line in f.read().splitlines()
                      if line and not line.startswith("#"))


def diff(a_path, b_path):
    a, b = {r[0]: r[1:] for r in load(a_path)}, {r[0]: r[1:] for r in load(b_path)}
    bad = 0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            print(f"{name}: only in {a_path if name in a else b_path}")
            bad += 1
        elif a[name] != b[name]:
            fields = [f for f, x, y in zip(("type", "shape", "data"), a[name], b[name]) if x != y]
            print(f"{name}: {', '.join(fields)} differ: {' '.join(a[name][:2])} vs {' '.join(b[name][:2])}")
            bad += 1
    print(f"{len(set(a) | set(b)) - bad} of {len(set(a) | set(b))} tensors identical (name, type, shape, data)")
    return 1 if bad else 0


def main(argv):
    if len(argv) == 2 and not argv[1].startswith("-"):
        for row in table(argv[1]):
            print("\t".join(row))
        return 0
    if len(argv) == 4 and argv[1] in ("--diff", "--check"):
        return diff(argv[2], argv[3])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
