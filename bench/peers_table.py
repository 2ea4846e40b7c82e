"""Prints bench/peers.sh's table: per thread count, one row per engine and
weights per round (prefill tok/s, decode batch 1 tok/s, decode batch 16
aggregate tok/s where measured), then dsv3's ratio to the best peer figure of
the same round (also with each engine's decode divided by the read bandwidth
sampled right after its run) and the batch-16 figure against its byte ceiling
(bytes read per token at batch 1 / at batch 16, times batch 1's rate).

With PAIRS > 0, each thread count's table is followed by the decode-only
pairs (dsv3 --int8-fp8 against ik IK_FLAGS on the Q8_0 file, batch 1), each
run between two read-bandwidth samples, and the median ratio of the pairs
whose three samples lie within 10% of each other (one bandwidth state).

Usage: peers_table.py OUT PROMPT TYPES THREADS ROUNDS IK_FLAGS [PAIRS] (as peers.sh passes them)."""
import json
import os
import statistics
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def dsv3_row(d):
    """(pp, tg1, tg16, ceiling16) from `dsv3 bench --json`."""
    dec = {str(x["batch"]): x for x in d.get("decode", [])}
    tg1 = d["decode_tokens_per_s"].get("1")
    tg16 = d["decode_tokens_per_s"].get("16")
    ceiling = None
    if "1" in dec and "16" in dec and tg1:
        b1 = dec["1"]["weight_bytes_per_token"] + dec["1"]["kv_bytes_per_token"]
        b16 = dec["16"]["weight_bytes_per_token"] + dec["16"]["kv_bytes_per_token"]
        ceiling = tg1 * b1 / b16
    return d["prefill_tokens_per_s"], tg1, tg16, ceiling


def roofline_b1(d):
    """dsv3's batch-1 decode as a fraction of its roofline (its own bandwidth sample / bytes per token)."""
    for x in (d or {}).get("decode", []):
        if x["batch"] == 1:
            return x.get("fraction_of_roofline")
    return None


def best_ts(e):
    """The best of llama-bench's repetitions, as `dsv3 bench` reports its best (the mean where
    a llama-bench writes no samples)."""
    return max(e.get("samples_ts") or [e["avg_ts"]])


def peer_row(d, prompt):
    """(pp, tg1) from `llama-bench -o json`: the pp test has n_gen 0, the tg test n_prompt 0."""
    pp = tg = None
    for e in d:
        if e.get("n_prompt") == prompt and e.get("n_gen", 0) == 0:
            pp = best_ts(e)
        elif e.get("n_prompt", 0) == 0 and e.get("n_gen", 0) > 0:
            tg = best_ts(e)
    return pp, tg, None, None


def fmt(x, digits=1):
    return "-" if x is None else "%.*f" % (digits, x)


def main():
    out, prompt, types, threads, rounds, ik_flags = sys.argv[1:7]
    prompt, rounds = int(prompt), int(rounds)
    pairs = int(sys.argv[7]) if len(sys.argv) > 7 else 0
    for thr in threads.split():
        bw = [load(os.path.join(out, "membw.t%s.%s.json" % (thr, w))) for w in ("before", "after")]
        bws = ", ".join("%.1f" % b["membw_gb_per_s"] for b in bw if b)
        print("\n## -t %s (read bandwidth before, after: %s GB/s)\n" % (thr, bws))
        print("| round | engine | weights | pp%d tok/s | decode b1 tok/s | decode b16 aggregate | b16 / byte ceiling |"
              % prompt)
        print("|---|---|---|---|---|---|---|")
        ratios = []
        every = {}  # label -> its rows of all rounds
        for r in range(1, rounds + 1):
            rows = {}
            for label in ["dsv3-fp8", "dsv3-fp8int8"] + ["%s-%s%s" % (e, t, s) for t in types.split()
                                         for e, s in (("dsv3", ""), ("dsv3", "-repack"), ("ik", ""),
                                                      ("ik", "-tuned"), ("llama", ""))]:
                d = load(os.path.join(out, "%s.t%s.r%d.json" % (label, thr, r)))
                if d is None:
                    continue
                rows[label] = dsv3_row(d) if label.startswith("dsv3") else peer_row(d, prompt)
                every.setdefault(label, []).append(rows[label])
                engine, _, weights = label.partition("-")
                if weights.endswith("-repack"):
                    weights, engine = weights[:-7], engine + " --repack"
                if weights.endswith("-tuned"):
                    weights, engine = weights[:-6], engine + " " + ik_flags
                if weights == "fp8int8":
                    weights, engine = "fp8", engine + " --int8-fp8"
                pp, tg1, tg16, ceil = rows[label]
                frac = "-" if tg16 is None or not ceil else "%.2f" % (tg16 / ceil)
                print("| %d | %s | %s | %s | %s | %s | %s |" % (r, engine, weights.upper(), fmt(pp), fmt(tg1),
                                                              fmt(tg16), frac))
            for t in types.split():
                mine_labels, peer_labels = compared(t)
                peers = [rows[k] for k in peer_labels if k in rows]
                for mine in mine_labels:
                    if mine not in rows or not peers:
                        continue
                    best_pp = max((p[0] for p in peers if p[0]), default=None)
                    best_tg = max((p[1] for p in peers if p[1]), default=None)
                    m = rows[mine]
                    mine_json = load(os.path.join(out, "%s.t%s.r%d.json" % (mine, thr, r)))
                    roof = roofline_b1(mine_json)
                    ratios.append("round %d, %s vs best peer on %s: prefill %s, decode b1 %s%s%s" % (
                        r, mine, t.upper(), fmt(m[0] / best_pp if m[0] and best_pp else None, 2) + "x",
                        fmt(m[1] / best_tg if m[1] and best_tg else None, 2) + "x",
                        "" if roof is None else " (%.0f%% of its roofline)" % (100 * roof),
                        equal_bandwidth(out, thr, r, t, mine_json, rows, peer_labels)))
        print()
        for line in ratios + best_of_rounds(every, types):
            print("- " + line)
        if pairs > 0:
            pair_table(out, thr, pairs, ik_flags)


def pair_table(out, thr, pairs, ik_flags):
    """The decode-only pairs of one thread count (peers.sh's pair_runs): sample k = 2 (p - 1)
    precedes pair p's dsv3 run, k + 1 lies between its two runs, k + 2 follows ik's."""
    def bw(k):
        d = load(os.path.join(out, "membw-pair.t%s.s%d.json" % (thr, k)))
        return d["membw_gb_per_s"] if d else None

    print("\nDecode-only pairs, -t %s (batch 1; dsv3 --int8-fp8 on FP8, ik %s on Q8_0):\n" % (thr, ik_flags))
    print("| pair | dsv3 tok/s | ik tok/s | bandwidth before, between, after (GB/s) | one state | ratio |")
    print("|---|---|---|---|---|---|")
    same, every = [], []
    for p in range(1, pairs + 1):
        d, i = (load(os.path.join(out, "%s-pair.t%s.p%d.json" % (e, thr, p))) for e in ("dsv3", "ik"))
        mine = (d or {}).get("decode_tokens_per_s", {}).get("1")
        peer = peer_row(i, 0)[1] if i else None
        samples = [bw(2 * (p - 1) + j) for j in range(3)]
        one = None not in samples and max(samples) <= 1.1 * min(samples)
        ratio = mine / peer if mine and peer else None
        if ratio:
            every.append(ratio)
            if one:
                same.append(ratio)
        print("| %d | %s | %s | %s | %s | %s |" % (p, fmt(mine), fmt(peer), ", ".join(fmt(x) for x in samples),
                                                   "yes" if one else "no", fmt(ratio, 2)))
    print()
    for name, xs in (("pairs in one bandwidth state", same), ("all pairs", every)):
        if xs:
            print("- %s: %d of %d, dsv3 / ik median %.2fx (%.2f-%.2f)" % (
                name, len(xs), pairs, statistics.median(xs), min(xs), max(xs)))


def equal_bandwidth(out, thr, r, t, mine_json, rows, peer_labels):
    """dsv3's batch-1 decode against the best peer's with each divided by the read bandwidth
    sampled right after its own run, and the peer's fraction of its roofline (bytes per token
    of the file as dsv3 bench counts them on it): swings of the bandwidth between two runs no
    longer tilt it, swings within a run still can."""
    same_file = load(os.path.join(out, "dsv3-%s.t%s.r%d.json" % (t, thr, r)))
    best = None
    for k in peer_labels:
        bw = load(os.path.join(out, "membw-%s.t%s.r%d.json" % (k, thr, r)))
        if k in rows and rows[k][1] and bw:
            per_gb = rows[k][1] / bw["membw_gb_per_s"]
            if best is None or per_gb > best[0]:
                best = (per_gb, bw["membw_gb_per_s"], rows[k][1])
    mine_tg = (mine_json or {}).get("decode_tokens_per_s", {}).get("1")
    if best is None or not mine_tg or not mine_json.get("membw_gb_per_s"):
        return ""
    text = "; at equal bandwidth %.2fx" % (mine_tg / mine_json["membw_gb_per_s"] / best[0])
    for x in (same_file or {}).get("decode", []):
        if x["batch"] == 1:
            gb = best[2] * (x["weight_bytes_per_token"] + x["kv_bytes_per_token"]) / 1e9
            text += " (peer at %.0f%% of its roofline)" % (100 * gb / best[1])
    return text


def compared(t):
    """(dsv3's labels, the peers' labels) compared on GGUF type t: dsv3's FP8 rows against the
    peers' Q8_0 file (the same 8-bit weights), each GGUF row against the peers on that file."""
    fp8 = ("dsv3-fp8", "dsv3-fp8int8") if t == "q8_0" else ()
    return fp8 + ("dsv3-" + t, "dsv3-%s-repack" % t), ("ik-" + t, "ik-%s-tuned" % t, "llama-" + t)


def best_of_rounds(every, types):
    """Each engine's best figure over all rounds against the best peer's: the bandwidth under
    this machine moves by half within a minute, so one round can catch one engine at a low
    moment; over the rounds each engine has had the same chances."""
    def best(label, i):
        return max((row[i] for row in every.get(label, []) if row[i]), default=None)

    lines = []
    for t in types.split():
        mine_labels, peers = compared(t)
        best_pp = max((x for x in (best(k, 0) for k in peers) if x), default=None)
        best_tg = max((x for x in (best(k, 1) for k in peers) if x), default=None)
        for mine in mine_labels:
            if mine not in every or not best_pp or not best_tg:
                continue
            pp, tg = best(mine, 0), best(mine, 1)
            ceil = max((row[2] / row[3] for row in every[mine] if row[2] and row[3]), default=None)
            lines.append("best of the rounds, %s vs best peer on %s: prefill %sx, decode b1 %sx%s" % (
                mine, t.upper(), fmt(pp / best_pp if pp else None, 2), fmt(tg / best_tg if tg else None, 2),
                "" if ceil is None else ", b16 at %.2f of its byte ceiling" % ceil))
    return lines


if __name__ == "__main__":
    main()
