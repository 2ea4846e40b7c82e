#!/usr/bin/env python3
"""Unigram and bigram baselines for a `dsv3 prepare-data` directory.

Counts tokens of the training shards and scores the validation shards with
add-one (Laplace) smoothing over the whole vocabulary, the simple baselines
the bundled model's perplexity is compared with (models/brown-10m/README.md).
The scored ids are exactly those `dsv3 perplexity --tokens SHARD` reads, and
the same ones are predicted: every validation id after the first.

  scripts/ngram-baselines.py DATA_DIR
prints one line per model: `unigram perplexity=X tokens=N` and the same for
`bigram`. Pure Python (no numpy): a few seconds per million tokens.
"""
import array
import json
import math
import os
import sys
from collections import Counter


def read_ids(data_dir, split):
    meta = json.load(open(os.path.join(data_dir, 'data.json')))
    ids = array.array('I')
    for shard in meta[split]['shards']:
        with open(os.path.join(data_dir, shard), 'rb') as f:
            ids.frombytes(f.read())
    if sys.byteorder != 'little':
        ids.byteswap()
    return meta['vocab_size'], ids


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split('\n\n')[2])
    data_dir = sys.argv[1]
    vocab, train = read_ids(data_dir, 'train')
    _, val = read_ids(data_dir, 'validation')
    if len(train) < 2 or len(val) < 2:
        sys.exit(f'{data_dir}: the train and validation splits need at least two tokens each')
    unigram = Counter(train)
    bigram = Counter(zip(train, train[1:]))
    context = Counter(train[:-1])  # how often each id precedes another
    nll_uni = nll_bi = 0.0
    for prev, cur in zip(val, val[1:]):
        nll_uni -= math.log((unigram[cur] + 1) / (len(train) + vocab))
        nll_bi -= math.log((bigram[(prev, cur)] + 1) / (context[prev] + vocab))
    n = len(val) - 1
    print(f'unigram perplexity={math.exp(nll_uni / n):.4f} tokens={n}')
    print(f'bigram perplexity={math.exp(nll_bi / n):.4f} tokens={n}')


if __name__ == '__main__':
    main()
