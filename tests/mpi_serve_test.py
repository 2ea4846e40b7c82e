"""`dsv3 serve` under mpirun (issue 14): rank 0 serves HTTP and schedules, the
other ranks replay its steps (runtime/step_broadcast.h); by default each rank
runs attention for its own slots only (runtime/data_parallel.h).

Usage: mpi_serve_test.py same NP BTL [SERVE ARGS...] | kill NP BTL

same: greedy completions (one request at a time, and 16 concurrent streams
through 4 slots, so prompts and decodes share batches) and seeded sampled
ones are identical to a one-process server's and to `dsv3 run`; SIGTERM to
rank 0 drains and every rank exits 0. SERVE ARGS (e.g. --spec mtp) go to
both servers.
kill: rank 1 is SIGKILLed while 16 streams run; every stream that had not
finished ends with an error event (none hangs), a request sent after the kill
gets an HTTP error or finds the server gone, and the job exits non-zero
within 10 s.

Environment: DSV3_BIN, DSV3_GOLDEN (see server/harness.py), DSV3_MPI_RUN
(tests/mpi_run.sh), DSV3_TEST_OUT.
"""
import concurrent.futures
import os
import signal
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "server"))
import harness  # noqa: E402

MODEL = os.path.join(harness.GOLDEN, "v3_tiny_bf16")
MPI_RUN = os.environ.get("DSV3_MPI_RUN", os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi_run.sh"))
REAL_BIN = os.path.abspath(harness.BIN)
ARGS = ["--parallel", "4", "--max-queue", "32", "-q"]
PROMPTS = [[0, 15, 27], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [300], [42, 42, 42, 7]]


def mpi_wrapper(np, btl):
    """A script that runs dsv3 under mpirun: harness.Server runs it as its binary."""
    os.makedirs(harness.OUT, exist_ok=True)
    path = os.path.join(harness.OUT, "dsv3_np%s_%s_%d.sh" % (np, btl, os.getpid()))
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexec "%s" %s %s "%s" "$@"\n' % (MPI_RUN, np, btl, REAL_BIN))
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path


def start(np=None, btl=None):
    harness.BIN = mpi_wrapper(np, btl) if np else REAL_BIN
    return harness.Server(MODEL, *ARGS)


def rank_pids(mpirun_pid):
    """{rank: pid} of mpirun's children."""
    out = {}
    for line in subprocess.run(["pgrep", "-P", str(mpirun_pid)], capture_output=True, text=True).stdout.split():
        try:
            env = open("/proc/%s/environ" % line, "rb").read().split(b"\0")
        except OSError:
            continue
        for kv in env:
            if kv.startswith(b"OMPI_COMM_WORLD_RANK="):
                out[int(kv.split(b"=")[1])] = int(line)
    return out


def complete(s, prompt, **extra):
    body = {"prompt": prompt, "max_tokens": 24, "temperature": 0, **extra}
    status, r, _ = s.post("/v1/completions", body, timeout=240)
    assert status == 200, (status, r)
    return r["choices"][0]["text"]


def stream_text(s, prompt, max_tokens=24):
    status, events, _ = s.stream("/v1/completions", {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                                                     "stream": True}, timeout=240)
    assert status == 200, (status, events)
    assert events and events[-1] == "[DONE]", events[-3:]
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert not errors, errors
    return "".join(e["choices"][0]["text"] for e in events if isinstance(e, dict) and e.get("choices"))


def many_prompts():
    return [[(7 * i + j) % 384 for j in range(1 + i % 9)] for i in range(16)]


def answers(s):
    """Greedy and seeded answers, one at a time, then 16 concurrent streams."""
    out = {"greedy": [complete(s, p) for p in PROMPTS],
           "sampled": [complete(s, p, temperature=1.0, top_p=0.9, seed=5 + i) for i, p in enumerate(PROMPTS)]}
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        out["streams"] = list(pool.map(lambda p: stream_text(s, p), many_prompts()))
    # Cache edits the followers must replay: a prompt read again from a cached
    # prefix (another slot's rows copied, or the slot's own truncated), and n=2
    # choices whose second copies the first's prompt rows.
    long_prompt = [(5 * j + 3) % 384 for j in range(40)]
    reused = []
    for _ in range(2):
        status, r, _ = s.post("/v1/completions", {"prompt": long_prompt, "max_tokens": 16, "temperature": 0},
                              timeout=240)
        assert status == 200, (status, r)
        reused.append((r["choices"][0]["text"], r["usage"]["prompt_tokens_details"]["cached_tokens"]))
    assert reused[1][1] > 0, "the second request reused no cached prefix: %s" % reused
    status, r, _ = s.post("/v1/completions", {"prompt": long_prompt[:30], "max_tokens": 16, "n": 2,
                                              "temperature": 1.0, "seed": 3}, timeout=240)
    assert status == 200, (status, r)
    out["cached"] = reused + [[c["text"] for c in r["choices"]]]
    return out


def run_ids(prompt):
    ids = ",".join(map(str, prompt))
    r = subprocess.run([REAL_BIN, "-t", "1", "run", "-q", "-m", MODEL, "--prompt-ids", ids, "-n", "24",
                        "--temperature", "0"], capture_output=True, text=True, check=True)
    return r.stdout.strip()


def stop_rank0(s, timeout=90):
    """SIGTERM to rank 0 (a graceful drain); returns mpirun's exit status."""
    pids = rank_pids(s.proc.pid)
    os.kill(pids[0], signal.SIGTERM)
    try:
        return s.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        s.proc.kill()
        raise AssertionError("the job did not end within %s s of SIGTERM to rank 0" % timeout)


def test_same(np, btl):
    one = start()
    ref = answers(one)
    assert one.stop() == 0
    for p, text in zip(PROMPTS, ref["greedy"]):
        assert text.strip() == run_ids(p), (p, text, run_ids(p))
    s = start(np, btl)
    data_parallel = "replicated" not in ARGS
    want = "attention: data-parallel over %s ranks" % np
    assert (want in s.banner) == data_parallel, s.banner
    try:
        got = answers(s)
    except BaseException:  # what the ranks said, for the log
        sys.stderr.write("".join(s.stderr_lines))
        raise
    rc = stop_rank0(s)
    assert rc == 0, "exit status %d\n%s" % (rc, "".join(s.stderr_lines))
    for kind in ("greedy", "sampled", "streams", "cached"):
        assert got[kind] == ref[kind], (kind, got[kind], ref[kind])
    print("ok: %d ranks over %s%s, %s attention: %d greedy, %d seeded and %d concurrent streamed completions, a prompt read "
          "from a cached prefix and n=2 choices identical to one process (greedy ones to dsv3 run); rank 0's "
          "SIGTERM ended every rank with status 0"
          % (np, btl, " (%s)" % " ".join(ARGS[5:]) if ARGS[5:] else "",
             "data-parallel" if data_parallel else "replicated", len(PROMPTS), len(PROMPTS), len(ref["streams"])))


def test_kill(np, btl):
    s = start(np, btl)
    try:
        check_kill(s, np, btl)
    except BaseException:  # what the ranks said, for the log of a rare failure
        sys.stderr.write("".join(s.stderr_lines))
        raise


def check_kill(s, np, btl):
    victim = rank_pids(s.proc.pid)[1]
    killed = []

    def on_event(e):
        if not killed and isinstance(e, dict) and e.get("choices"):
            killed.append(time.monotonic())
            os.kill(victim, signal.SIGKILL)

    def one(p):
        try:
            return s.stream("/v1/completions", {"prompt": p, "max_tokens": 200, "temperature": 0, "stream": True},
                            timeout=30, on_event=on_event)
        except (OSError, harness.http.client.HTTPException) as e:  # refused or reset after the server exited
            return None, repr(e), []

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, many_prompts()))
    assert killed, "no stream produced a token"
    ended_ok = errors = gone = 0
    for status, events, _ in results:
        if status is None:
            gone += 1
        elif status != 200:
            assert status >= 500 and "error" in events, (status, events)
            errors += 1
        elif any(isinstance(e, dict) and "error" in e for e in events):
            errors += 1
        else:  # finished before the failure was seen: all 200 tokens and a finish reason
            assert events[-1] == "[DONE]" and events[-2]["choices"][0]["finish_reason"] == "length", events[-3:]
            ended_ok += 1
    assert errors > 0, "no stream ended with an error: %s\n%s" % ([r[0] for r in results], "".join(s.stderr_lines))
    try:
        status, body, _ = s.post("/v1/completions", {"prompt": [1, 2], "max_tokens": 4}, timeout=10)
        assert status >= 500 and "error" in body, (status, body)
        after = "HTTP %d" % status
    except OSError:
        after = "connection refused (server gone)"
    try:
        rc = s.proc.wait(max(0.1, 10 - (time.monotonic() - killed[0])))
    except subprocess.TimeoutExpired:
        s.proc.kill()
        raise AssertionError("the job still runs 10 s after rank 1 was killed\n" + "".join(s.stderr_lines))
    took = time.monotonic() - killed[0]
    assert rc != 0, "the job exited 0 after rank 1 was killed"
    if os.environ.get("VERBOSE"):
        print("".join(s.stderr_lines))
    print("ok: %d ranks over %s: rank 1 killed; %d streams ended with an error event, %d had finished, %d found the "
          "server gone; a new request: %s; the job exited %d after %.1f s" % (np, btl, errors, ended_ok, gone, after,
                                                                            rc, took))


if __name__ == "__main__":
    mode, np, btl = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ARGS += sys.argv[4:]
    {"same": test_same, "kill": test_kill}[mode](np, btl)
