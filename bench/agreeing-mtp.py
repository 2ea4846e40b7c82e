#!/usr/bin/env python3
"""Makes a random-weight FP8 checkpoint whose MTP layer agrees with its main
model, to measure speculative decoding's speed-up directly on a model as big
(and as bandwidth-bound) as bench-moe, where a random MTP layer accepts nothing.

Every main layer's attention output and FFN down projections (dense, shared
and routed experts) are scaled by CONTEXT_SCALE through their FP8 block
scales, so the main model is a bigram model (next token from the current
token's embedding) plus a context term of that size. The MTP layer's eh_proj
becomes [I 0] (it passes enorm(embedding of t_{i+1}) through), its own block
outputs are scaled by MTP_SCALE and shared_head.norm copies model.norm, so it
predicts the bigram part: CONTEXT_SCALE sets how often the two disagree. Byte
counts and expert routing per token are those of the source checkpoint's
structure (routing still reads each token's own residual stream).

  bench/agreeing-mtp.py SRC_DIR OUT_DIR CONTEXT_SCALE [MTP_SCALE]
"""
import json
import os
import shutil
import struct
import sys
from array import array


def header(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def patch_f32(f, base, info, fn):
    begin, end = info['data_offsets']
    f.seek(base + begin)
    a = array('f')
    a.frombytes(f.read(end - begin))
    fn(a)
    f.seek(base + begin)
    f.write(a.tobytes())


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    src, out, cs = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ms = float(sys.argv[4]) if len(sys.argv) == 5 else 0.0
    config = json.load(open(os.path.join(src, 'config.json')))
    L = config['num_hidden_layers']
    if config.get('num_nextn_predict_layers', 0) < 1:
        sys.exit(f'{src}: the config has no MTP layer (num_nextn_predict_layers)')
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(src):
        dst = os.path.join(out, name)
        print(f'copying {name}', file=sys.stderr)
        shutil.copyfile(os.path.join(src, name), dst)
    shards = sorted(n for n in os.listdir(out) if n.endswith('.safetensors'))
    heads = {s: header(os.path.join(out, s)) for s in shards}
    norm = None
    for s, (h, _) in heads.items():
        if 'model.norm.weight' in h:
            with open(os.path.join(out, s), 'rb') as f:
                b, e = h['model.norm.weight']['data_offsets']
                f.seek(heads[s][1] + b)
                norm = f.read(e - b)
    mtp = f'model.layers.{L}.'
    changed = 0
    for s, (h, base) in heads.items():
        with open(os.path.join(out, s), 'r+b') as f:
            for name, info in h.items():
                if name == '__metadata__':
                    continue
                outputs = name.endswith(('o_proj.weight_scale_inv', 'down_proj.weight_scale_inv'))
                if outputs and not name.startswith(mtp):
                    patch_f32(f, base, info, lambda a: a.__setitem__(slice(None), array('f', [x * cs for x in a])))
                elif outputs:
                    patch_f32(f, base, info, lambda a: a.__setitem__(slice(None), array('f', [x * ms for x in a])))
                elif name == mtp + 'eh_proj.weight_scale_inv':
                    patch_f32(f, base, info, lambda a: a.__setitem__(slice(None), array('f', [1.0] * len(a))))
                elif name == mtp + 'eh_proj.weight':
                    rows, cols = info['shape']
                    if info['dtype'] != 'F8_E4M3' or cols != 2 * rows:
                        sys.exit(f'{s}: {name} is not an FP8 [d, 2d] matrix')
                    data = bytearray(rows * cols)
                    for r in range(rows):
                        data[r * cols + r] = 0x38  # e4m3 1.0
                    f.seek(base + info['data_offsets'][0])
                    f.write(data)
                elif name == mtp + 'shared_head.norm.weight':
                    if len(norm) != info['data_offsets'][1] - info['data_offsets'][0]:
                        sys.exit(f'{s}: {name} and model.norm.weight differ in size')
                    f.seek(base + info['data_offsets'][0])
                    f.write(norm)
                else:
                    continue
                changed += 1
    print(f'{out}: {changed} tensors changed (context scale {cs}, MTP scale {ms})', file=sys.stderr)


if __name__ == '__main__':
    main()
