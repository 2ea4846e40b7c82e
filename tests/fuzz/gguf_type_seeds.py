#!/usr/bin/env python3
"""Seeds for fuzz_gguf with a tensor of every block type dsv3 reads.

The kept corpus grew from F32/F16/BF16/Q8_0 files; these give the fuzzer a
start on the others (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_NL, IQ4_XS):
one small GGUF v3 file per type (two rows of one block each, random bytes,
so scales and quants take arbitrary values) and one with all of them, a
type dsv3 does not read (Q8_K) and a tensor whose row is not a whole number
of blocks. Files are named by their SHA-1, as libFuzzer names corpus files.
Usage: tests/fuzz/gguf_type_seeds.py [OUT_DIR] (default tests/fuzz/corpus/gguf)
"""
import hashlib
import os
import random
import struct
import sys

# ggml type id: (name, values per block, bytes per block)
TYPES = {2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20), 6: ("q5_0", 32, 22), 7: ("q5_1", 32, 24),
         8: ("q8_0", 32, 34), 10: ("q2_k", 256, 84), 11: ("q3_k", 256, 110), 12: ("q4_k", 256, 144),
         13: ("q5_k", 256, 176), 14: ("q6_k", 256, 210), 20: ("iq4_nl", 32, 18), 23: ("iq4_xs", 256, 136)}
ALIGN = 32


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(tensors, rng):
    """tensors: [(name, ggml type, ne list, nbytes)] -> file bytes."""
    kv = gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string("deepseek2")
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 1) + kv
    offset, data = 0, b""
    for name, ty, ne, nbytes in tensors:
        head += gguf_string(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
        head += struct.pack("<IQ", ty, offset)
        blob = bytes(rng.getrandbits(8) for _ in range(nbytes))
        pad = (-len(blob)) % ALIGN
        data += blob + b"\0" * pad
        offset += nbytes + pad
    head += b"\0" * ((-len(head)) % ALIGN)
    return head + data


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus", "gguf")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(17)
    files = []
    for ty, (name, elems, size) in TYPES.items():
        files.append(gguf([(f"blk.0.ffn_down_exps.{name}", ty, [elems, 2], 2 * size)], rng))
    every = [(f"t.{name}", ty, [elems, 1], size) for ty, (name, elems, size) in TYPES.items()]
    files.append(gguf(every + [("t.q8_k", 15, [256, 1], 292)], rng))
    files.append(gguf([("t.q4_k_short_row", 12, [128, 1], 72)], rng))  # 128 is not a multiple of 256
    for f in files:
        path = os.path.join(out, hashlib.sha1(f).hexdigest())
        with open(path, "wb") as fh:
            fh.write(f)
        print(path, len(f))


if __name__ == "__main__":
    main()
