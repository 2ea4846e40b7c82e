#!/usr/bin/env python3
"""Load test for `dsv3 serve` (loopback only, bounded in requests and time).

Starts the server on a model, warms it up, measures its idle resident memory,
then for each N in --clients runs N concurrent streaming clients, each sending
--requests requests one after another (distinct prompts, fixed length, greedy,
ignore_eos so every request generates exactly --max-tokens). Reports, per N:
aggregate generated tokens/s over the phase, p50/p99 time to first token,
p50/p99 inter-token latency (gaps between streamed chunks), failures; and the
server's resident memory (anonymous, i.e. without the page cache of the
mapped weights) at idle and after the load (after a short idle period).

  tests/server/load_test.py --model DIR [--clients 1,4,16] [--requests 2]
      [--max-tokens 64] [--prompt-len 32] [--threads 2] [--json out.json] [--check]

--check exits non-zero on any failed request, on memory that did not return
to within 10% (+16 MiB) of idle, or when --min-speedup is given and the
largest N's throughput is not that many times N=1's.

--attack runs the hostile mix instead, all at once against one server: a
slowloris of --slowloris sockets (one header line every --slowloris-interval
s, closed sockets replaced), --streams streaming generations, and --big
concurrent ~3 MB chat requests (refused: 400 on a model without a chat
format, or 503 past --max-request-memory), while /health is polled every
100 ms. It reports the largest /health latency, the streams that completed,
and resident memory (VmRSS) at idle, at peak and 5 s after the load; with
--check it fails unless /health always answered within 1 s, every stream
completed, and memory 5 s after the load is within 1.5x of idle. The
slowloris and the polling last --attack-seconds (past the server's
--header-timeout, so slow sockets are cut and replaced meanwhile).
"""
import argparse
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attack  # noqa: E402
import harness  # noqa: E402


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def one_request(server, prompt, max_tokens, deadline):
    """Streams one completion; returns (ok, tokens, ttft, chunk gaps, why)."""
    t0 = time.monotonic()
    try:
        status, events, times = server.stream(
            "/v1/completions", {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True,
                                "stream": True, "stream_options": {"include_usage": True}},
            timeout=max(5.0, deadline - t0))
    except Exception as e:  # connection errors count as failures
        return False, 0, None, [], repr(e)
    if status != 200:
        return False, 0, None, [], "HTTP %d %s" % (status, events)
    if not events or events[-1] != "[DONE]":
        return False, 0, None, [], "stream did not end with [DONE]"
    text_times = [t for e, t in zip(events, times) if isinstance(e, dict) and e.get("choices")
                  and e["choices"][0].get("text")]
    usage = events[-2].get("usage") if len(events) > 1 and isinstance(events[-2], dict) else None
    tokens = usage["completion_tokens"] if usage else 0
    if tokens != max_tokens or not text_times:
        return False, tokens, None, [], "expected %d tokens, got %d" % (max_tokens, tokens)
    gaps = [b - a for a, b in zip(text_times, text_times[1:])]
    return True, tokens, text_times[0] - t0, gaps, ""


def phase(server, n, requests, max_tokens, prompt_len, vocab, seed):
    results, lock = [], threading.Lock()
    deadline = time.monotonic() + 600

    def client(c):
        rng = random.Random(seed * 1000 + c)
        for _ in range(requests):
            prompt = [rng.randrange(vocab) for _ in range(prompt_len)]
            r = one_request(server, prompt, max_tokens, deadline)
            with lock:
                results.append(r)
    threads = [threading.Thread(target=client, args=(c,)) for c in range(n)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    ok = [r for r in results if r[0]]
    ttft = [r[2] for r in ok]
    gaps = [g for r in ok for g in r[3]]
    return {"clients": n, "requests": len(results), "failed": len(results) - len(ok),
            "failures": sorted({r[4] for r in results if not r[0]}),
            "tokens": sum(r[1] for r in ok), "seconds": wall, "tokens_per_s": sum(r[1] for r in ok) / wall,
            "ttft_p50_ms": 1e3 * percentile(ttft, 50), "ttft_p99_ms": 1e3 * percentile(ttft, 99),
            "itl_p50_ms": 1e3 * percentile(gaps, 50), "itl_p99_ms": 1e3 * percentile(gaps, 99)}


def attack_run(args, server, vocab):
    """The hostile mix (--attack); returns (report, problems)."""
    MiB, pid = 2**20, server.proc.pid
    phase(server, 2, 1, 4, args.prompt_len, vocab, seed=999)  # warm-up
    time.sleep(2.5)
    idle = attack.vm_rss(pid)
    body = attack.big_chat_body(args.big_messages)
    big, streams = [], {}
    t0 = time.monotonic()
    with attack.RssSampler(pid) as rss, attack.HealthPoller(server.port, interval=0.1) as health, \
            attack.Slowloris(server.port, args.slowloris, args.slowloris_interval, duration=120, reconnect=True,
                             max_connects=20 * args.slowloris) as loris:
        time.sleep(1.0)  # the slow sockets are open
        burst = threading.Thread(target=lambda: big.extend(
            attack.burst(server.port, "/v1/chat/completions", body, args.big)))
        burst.start()
        streams = phase(server, args.streams, 1, args.max_tokens, args.prompt_len, vocab, seed=7)
        burst.join()
        # Slowloris and polling go on past the server's --header-timeout, so
        # slow sockets are cut and replaced while /health is watched.
        time.sleep(max(1.0, args.attack_seconds - (time.monotonic() - t0)))
    load_s = time.monotonic() - t0
    time.sleep(5)
    after = attack.vm_rss(pid)
    statuses = sorted(r[0] for r in big)
    report = {"health_polls": len(health.latencies), "health_max_ms": 1e3 * health.max_latency,
              "health_p99_ms": 1e3 * percentile(health.latencies, 99), "health_failures": health.failures[:5],
              "streams": args.streams, "streams_failed": streams["failed"], "stream_failures": streams["failures"],
              "big_requests": {str(k): statuses.count(k) for k in sorted(set(statuses), key=str)},
              "big_request_bytes": len(body), "slowloris_sockets": args.slowloris,
              "slowloris_connects": loris.connects, "slowloris_max_lifetime_s": max(loris.lifetimes, default=0),
              "rss_idle_mib": idle / MiB, "rss_peak_mib": rss.peak / MiB, "rss_after_mib": after / MiB,
              "load_seconds": load_s}
    print("attack: %d slowloris sockets (%d connects, longest lived %.1f s), %d streams (%d failed), "
          "%d x %.1f MB requests %s" % (args.slowloris, loris.connects, report["slowloris_max_lifetime_s"],
                                        args.streams, streams["failed"], args.big, len(body) / 1e6,
                                        report["big_requests"]))
    print("/health: %d polls, max %.1f ms, p99 %.1f ms, %d failed" %
          (len(health.latencies), report["health_max_ms"], report["health_p99_ms"], len(health.failures)))
    print("VmRSS: idle %.1f MiB, peak %.1f MiB, 5 s after the load %.1f MiB (%.2fx idle)" %
          (idle / MiB, rss.peak / MiB, after / MiB, after / idle))
    problems = []
    if health.failures or health.max_latency >= 1.0:
        problems.append("/health: max %.0f ms, failures %s" % (report["health_max_ms"], health.failures[:3]))
    if streams["failed"]:
        problems.append("streams failed: %s" % streams["failures"])
    if not set(statuses) <= {400, 503} or len(statuses) != args.big:
        problems.append("big requests: %s" % report["big_requests"])
    if after > 1.5 * idle and not harness.sanitized():  # AddressSanitizer's quarantine keeps freed memory
        problems.append("memory 5 s after the load %.1f MiB > 1.5 x idle %.1f MiB" % (after / MiB, idle / MiB))
    return report, problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clients", default="1,4,16")
    ap.add_argument("--requests", type=int, default=2, help="requests per client, one after another")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--threads", default=None, help="server worker threads (dsv3 -t)")
    ap.add_argument("--server-args", default="", help="extra `dsv3 serve` flags")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--min-speedup", type=float, default=0.0)
    ap.add_argument("--attack", action="store_true", help="run the hostile mix (see above)")
    ap.add_argument("--slowloris", type=int, default=200)
    ap.add_argument("--slowloris-interval", type=float, default=3.0)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--big", type=int, default=30)
    ap.add_argument("--big-messages", type=int, default=90_000, help="messages per big request (~34 bytes each)")
    ap.add_argument("--attack-seconds", type=float, default=15.0, help="keep the slowloris and polling this long")
    args = ap.parse_args()
    if args.threads:
        harness.THREADS = args.threads
    clients = [args.streams] if args.attack else [int(x) for x in args.clients.split(",")]
    ctx = args.prompt_len + args.max_tokens
    server = harness.Server(args.model, "-q", "--parallel", str(max(clients)), "--ctx-size", str(ctx),
                            "--max-queue", str(4 * max(clients)), *args.server_args.split())
    try:
        vocab = 0
        with open(os.path.join(args.model, "config.json")) as f:
            vocab = json.load(f)["vocab_size"]
        if args.attack:
            report, problems = attack_run(args, server, vocab)
            rc = server.stop()
            if rc != 0:
                problems.append("server exit status %d" % rc)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(report, f, indent=1)
            if args.check and problems:
                print("FAIL: " + "; ".join(problems))
                return 1
            print("OK" if args.check else "")
            return 0
        phase(server, 2, 1, 4, args.prompt_len, vocab, seed=999)  # warm-up: buffers, threads, pages
        time.sleep(2.5)  # the server trims freed memory after ~1 s idle
        idle_rss, idle_total = server.rss(), server.rss("VmRSS")
        phases = []
        for i, n in enumerate(clients):
            p = phase(server, n, args.requests, args.max_tokens, args.prompt_len, vocab, seed=i)
            phases.append(p)
            print("N=%-3d %4d req  %3d failed  %8.1f tok/s  TTFT p50 %7.1f ms p99 %7.1f ms  "
                  "ITL p50 %6.1f ms p99 %6.1f ms  (%.1f s)" %
                  (n, p["requests"], p["failed"], p["tokens_per_s"], p["ttft_p50_ms"], p["ttft_p99_ms"],
                   p["itl_p50_ms"], p["itl_p99_ms"], p["seconds"]), flush=True)
            for why in p["failures"]:
                print("   failure:", why)
        server.wait_idle(60)
        time.sleep(2.5)
        after_rss, after_total = server.rss(), server.rss("VmRSS")
        peak = server.metrics()
        # Anonymous memory is what the server allocates; the total also counts
        # pages of the memory-mapped weights, which stay cached once touched.
        print("resident memory (anonymous): idle %.1f MiB, after load %.1f MiB; "
              "with mapped weights: %.1f -> %.1f MiB" % (idle_rss / 2**20, after_rss / 2**20,
                                                        idle_total / 2**20, after_total / 2**20))
        speedup = phases[-1]["tokens_per_s"] / phases[0]["tokens_per_s"] if phases[0]["tokens_per_s"] else 0
        print("throughput N=%d / N=%d: %.2fx" % (clients[-1], clients[0], speedup))
        report = {"model": args.model, "max_tokens": args.max_tokens, "prompt_len": args.prompt_len,
                  "phases": phases, "idle_rss": idle_rss, "after_rss": after_rss, "idle_vmrss": idle_total,
                  "after_vmrss": after_total, "speedup": speedup,
                  "forward_passes": peak["dsv3_forward_passes_total"], "batch_tokens": peak["dsv3_batch_tokens_total"]}
    finally:
        rc = server.stop() if server.proc.poll() is None else server.proc.returncode
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.check:
        problems = []
        if any(p["failed"] for p in phases):
            problems.append("failed requests")
        if after_rss > idle_rss * 1.10 + 16 * 2**20:
            problems.append("memory did not return to idle (%d -> %d bytes)" % (idle_rss, after_rss))
        if args.min_speedup and speedup < args.min_speedup:
            problems.append("speed-up %.2fx < %.2fx" % (speedup, args.min_speedup))
        if rc != 0:
            problems.append("server exit status %d" % rc)
        if problems:
            print("FAIL: " + "; ".join(problems))
            return 1
        print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
