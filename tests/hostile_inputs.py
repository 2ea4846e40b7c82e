"""Crafts the hostile inputs of issue 20's CLI regression tests.

  hostile_inputs.py configs OUT GOLDEN   config.json variants + deep chat file
  hostile_inputs.py gguf IN OUT KEY U32  IN with the u32 metadata KEY set

Each config directory under OUT holds a config.json that once made dsv3
abort on std::bad_alloc, use gigabytes, or give NaN logits; deep/ is a real
checkpoint (weights symlinked) whose config.json carries a value nested
100,000 deep, and deep_chat.json is a messages file nested as deep in a tool
call's arguments and a tool's parameters.
"""
import json
import os
import struct
import sys

DEPTH = 100000


def write_configs(out, golden):
    base = json.load(open(os.path.join(golden, "v3_tiny_bf16", "config.json")))
    variants = {
        "layers": {"num_hidden_layers": 2 ** 40},
        "experts": {"n_routed_experts": 2 ** 31},
        "experts_1m": {"n_routed_experts": 1048576},
        "layers_1m": {"num_hidden_layers": 1048576},
        "nextn": {"num_nextn_predict_layers": 2 ** 40},
        "eps": {"rms_norm_eps": 1e300},
    }
    nested = "[" * DEPTH + "]" * DEPTH
    texts = {name: json.dumps(dict(base, **fields)) for name, fields in variants.items()}
    texts["deep"] = json.dumps(base)[:-1] + ', "extra": ' + nested + "}"
    for name, text in texts.items():
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "config.json"), "w").write(text)
        weights = os.path.join(d, "model.safetensors")  # real weights: the config alone is at fault
        if not os.path.lexists(weights):
            os.symlink(os.path.join(golden, "v3_tiny_bf16", "model.safetensors"), weights)
    chat = ('[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": '
            '[{"type": "function", "function": {"name": "f", "arguments": ' + nested + '}}]}]')
    open(os.path.join(out, "deep_chat.json"), "w").write(chat)


def patch_gguf(src, dst, key, value):
    data = bytearray(open(src, "rb").read())
    name = key.encode()
    at = data.find(struct.pack("<Q", len(name)) + name)
    if at < 0:
        sys.exit("no metadata key " + key)
    at += 8 + len(name)
    if struct.unpack_from("<I", data, at)[0] != 4:
        sys.exit(key + " is not a u32")
    struct.pack_into("<I", data, at + 4, value)
    open(dst, "wb").write(data)


if __name__ == "__main__":
    if sys.argv[1] == "configs":
        write_configs(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "gguf":
        patch_gguf(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5], 0))
    else:
        sys.exit(__doc__)
