#!/usr/bin/env python3
"""Writes a safetensors file with tensor 'tokens' I32 [B, T] (ids (7*b + 3*t) % V),
the input of a long `dsv3 logits` run for the MPI kill test. Usage: B T V OUT."""
import json
import struct
import sys

b, t, v, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
data = struct.pack("<%di" % (b * t), *[(7 * i + 3 * j) % v for i in range(b) for j in range(t)])
header = json.dumps({"tokens": {"dtype": "I32", "shape": [b, t], "data_offsets": [0, len(data)]}}).encode()
header += b" " * (-len(header) % 8)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + data)
