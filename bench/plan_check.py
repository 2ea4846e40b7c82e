#!/usr/bin/env python3
"""Checks `dsv3 plan` against measured expert-parallel decode (issue 14).

On one machine, alternately for ROUNDS rounds: `dsv3 bench` in one process
(all cores), then under `mpirun -np N` (one thread per rank) for each N. The
one-process run calibrates the planner's two costs: from its step times at
the smallest and largest batch, the effective bandwidth and FMA rate of the
node (step = bytes read / bandwidth + flops / FMA rate, the bytes and flops
per step from the plan). The plan for N ranks on this one node (those rates
split over the ranks, the shared-memory all-to-all fit of `bench --comm`
when given) is then compared with the measured N-rank rates: the ratio
measured / predicted per batch size.

Usage: bench/plan_check.py [--model DIR] [--ranks 2,4] [--batch 1,16]
                           [--prompt 16] [--decode 32] [--reps 2] [--rounds 2]
                           [--shm-gbs 10.8 --shm-us 1.0] [--dsv3 build/dsv3]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MPI_RUN = os.path.join(HERE, "..", "tests", "mpi_run.sh")


def bench(dsv3, model, ranks, threads, args):
    cmd = [dsv3, "-t", str(threads), "bench", "-m", model, "-p", str(args.prompt), "-n", str(args.decode),
           "-b", args.batch, "--reps", str(args.reps), "--json"]
    if ranks > 1:
        cmd = ["bash", MPI_RUN, str(ranks), args.btl] + cmd
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"plan_check: {' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    start = out.stdout.index("{")
    return json.loads(out.stdout[start:out.stdout.rindex("}") + 1])


def plan(dsv3, model, ranks, calib, args, tmp):
    membw, peak, efficiency, compute_efficiency = calib
    cluster = {"nodes": 1, "ranks_per_node": ranks, "cores_per_node": os.cpu_count(), "memory_per_node_gb": 24,
               "memory_bandwidth_gbs": membw, "link_bandwidth_gbits": 100, "link_latency_us": 5,
               "shm_bandwidth_gbs": args.shm_gbs, "shm_latency_us": args.shm_us, "efficiency": efficiency,
               "fma_peak_gflops": peak, "compute_efficiency": compute_efficiency}
    path = os.path.join(tmp, f"cluster{ranks}.json")
    with open(path, "w") as f:
        json.dump(cluster, f)
    out = subprocess.run([dsv3, "plan", "-m", model, "--cluster", path, "-b", args.batch, "--context",
                          str(args.prompt + args.decode // 2)], capture_output=True, text=True, check=True)
    rows = {}  # batch -> (tokens/s in all, GB read per rank, GFLOP per rank, exchange ms)
    for line in out.stdout.splitlines():
        m = re.match(r"\s+(\d+)\s+[\d.]+\s+([\d.]+) GB\s+([\d.]+) GFLOP\s+[\d.]+ ms\s+([\d.]+) ms\s+[\d.]+ ms"
                     r"\s+([\d.]+)\s+([\d.]+)", line)
        if m:
            rows[int(m.group(1))] = (float(m.group(6)), float(m.group(2)), float(m.group(3)), float(m.group(4)))
    return rows


def calibrate(one, batches, ideal):
    """Seconds per byte read and per flop from one process's step times at
    the smallest and largest batch: t = M a + F b, two equations in a and b
    (M, F per step from the plan). Returned as the effective bandwidth 1/a
    and FMA rate 1/b of the node (the planner's efficiencies then 1): the
    machine's bandwidth swings too much from run to run for a bandwidth
    measured beside the run to calibrate it."""
    lo, hi = batches[0], batches[-1]
    t = {b: b / one["decode_tokens_per_s"][str(b)] for b in (lo, hi)}
    m = {b: ideal[b][1] for b in (lo, hi)}  # GB per step
    f = {b: ideal[b][2] for b in (lo, hi)}  # GFLOP per step
    det = m[lo] * f[hi] - m[hi] * f[lo]
    a = (t[lo] * f[hi] - t[hi] * f[lo]) / det
    b = (m[lo] * t[hi] - m[hi] * t[lo]) / det
    if a <= 0 or b <= 0:  # no consistent split: bandwidth only
        return m[lo] / t[lo], 0.0, 1.0, 1.0
    return 1 / a, 1 / b, 1.0, 1.0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="/work/bench-models/bench-moe-fp8")
    p.add_argument("--ranks", default="2,4")
    p.add_argument("--batch", default="1,16")
    p.add_argument("--prompt", type=int, default=16)
    p.add_argument("--decode", type=int, default=32)
    p.add_argument("--reps", type=int, default=2, help="bench repetitions (the best is kept)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--btl", default="vader")
    p.add_argument("--shm-gbs", type=float, default=10.8)
    p.add_argument("--shm-us", type=float, default=1.0)
    p.add_argument("--dsv3", default=os.path.join(HERE, "..", "build", "dsv3"))
    args = p.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    ranks = [int(r) for r in args.ranks.split(",")]
    threads = os.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"| round | ranks | batch | measured tok/s | predicted tok/s | measured / predicted |")
        print(f"|---|---|---|---|---|---|")
        for rnd in range(1, args.rounds + 1):
            one = bench(args.dsv3, args.model, 1, threads, args)
            ideal = plan(args.dsv3, args.model, 1, (one["membw_gb_per_s"], one["fma_peak_gflop_per_s"], 1.0, 1.0),
                         args, tmp)
            calib = calibrate(one, batches, ideal)
            want = plan(args.dsv3, args.model, 1, calib, args, tmp)
            note = (f"fit: {calib[0]:.1f} GB/s, {calib[1]:.0f} GFLOP/s effective; measured beside it "
                    f"{one['membw_gb_per_s']:.1f} GB/s, FMA peak {one['fma_peak_gflop_per_s']:.0f} GFLOP/s")
            for b in batches:
                got = one["decode_tokens_per_s"][str(b)]
                print(f"| {rnd} | 1 x {threads} threads ({note}) | {b} | {got:.2f} | {want[b][0]:.2f} | "
                      f"{got / want[b][0]:.2f} |")
            for n in ranks:
                run = bench(args.dsv3, args.model, n, 1, args)
                want = plan(args.dsv3, args.model, n, calib, args, tmp)
                for b in batches:
                    got = run["decode_tokens_per_s"][str(b)]
                    print(f"| {rnd} | {n} x 1 thread | {b} | {got:.2f} | {want[b][0]:.2f} | {got / want[b][0]:.2f} |")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
