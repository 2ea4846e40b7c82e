#!/usr/bin/env python3
"""Loss curves of a `dsv3 train` run as an SVG image (no plotting library).

  scripts/plot-curves.py OUT/train_log.jsonl IMAGE.svg [--every N]

Draws the training loss (mean over every N steps, default 50), the MTP
training loss, and the validation loss and MTP validation loss of each
evaluation, against tokens seen.
"""
import json
import sys

W, H, L, R, T, B = 720, 420, 60, 20, 30, 50  # size and margins in pixels
COLORS = {'train': '#1f77b4', 'train mtp': '#9ecae1', 'validation': '#d62728', 'validation mtp': '#ff9896'}


def load(path, every):
    steps, evals = [], []
    for line in open(path):
        rec = json.loads(line)
        (evals if 'val_loss' in rec else steps).append(rec)
    if not steps:
        sys.exit(f'{path}: no training steps')
    tokens_per_step = steps[0]['tokens'] / steps[0]['step']
    curves = {'train': [], 'train mtp': [], 'validation': [], 'validation mtp': []}
    for i in range(0, len(steps) - every + 1, every):
        chunk = steps[i:i + every]
        x = chunk[-1]['tokens']
        curves['train'].append((x, sum(s['loss'] for s in chunk) / every))
        if chunk[0]['mtp']:
            curves['train mtp'].append((x, sum(s['mtp'][0] for s in chunk) / every))
    for e in evals:
        x = e['step'] * tokens_per_step
        curves['validation'].append((x, e['val_loss']))
        if e['val_mtp']:
            curves['validation mtp'].append((x, e['val_mtp'][0]))
    return {k: v for k, v in curves.items() if v}


def svg(curves):
    xs = [x for c in curves.values() for x, _ in c]
    ys = [y for c in curves.values() for _, y in c]
    x1, y0, y1 = max(xs), int(min(ys)), int(max(ys)) + 1
    px = lambda x: L + (W - L - R) * x / x1
    py = lambda y: T + (H - T - B) * (y1 - y) / (y1 - y0)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>']
    for y in range(y0, y1 + 1):
        out.append(f'<line x1="{L}" x2="{W - R}" y1="{py(y):.1f}" y2="{py(y):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 8}" y="{py(y) + 4:.1f}" text-anchor="end">{y}</text>')
    for i in range(6):
        x = x1 * i / 5
        out.append(f'<text x="{px(x):.1f}" y="{H - B + 18}" text-anchor="middle">{x / 1e6:.1f}M</text>')
    out.append(f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">tokens seen</text>')
    out.append(f'<text x="16" y="{(T + H - B) / 2}" transform="rotate(-90 16 {(T + H - B) / 2})" '
               f'text-anchor="middle">cross-entropy (nats)</text>')
    for n, (name, pts) in enumerate(curves.items()):
        path = ' '.join(f'{px(x):.1f},{py(y):.1f}' for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{COLORS[name]}" stroke-width="2" points="{path}"/>')
        out.append(f'<text x="{W - R - 150}" y="{T + 16 + 16 * n}" fill="{COLORS[name]}">{name}</text>')
    out.append('</svg>')
    return '\n'.join(out) + '\n'


def main():
    args = sys.argv[1:]
    every = 50
    if '--every' in args:
        i = args.index('--every')
        every = int(args[i + 1])
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__.split('\n\n')[1])
    open(args[1], 'w').write(svg(load(args[0], every)))


if __name__ == '__main__':
    main()
