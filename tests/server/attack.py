"""Hostile and measuring clients for the server hardening tests and the load
test's --attack mode: a slowloris (sockets that send one header line every few
seconds and never finish), a /health poller that records every latency, bursts
of large requests, and a resident-memory sampler. Loopback only; every loop is
bounded by a count and a duration.
"""
import http.client
import multiprocessing
import socket
import threading
import time


def vm_rss(pid):
    """Resident memory (VmRSS, bytes) of a process."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssSampler:
    """Samples VmRSS of `pid` every `interval` seconds in a thread; .peak is the largest."""

    def __init__(self, pid, interval=0.02):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, vm_rss(self.pid))
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class HealthPoller:
    """GET /health on a fresh connection every `interval` s (as a load balancer
    would); records each latency and every failure (non-200, error, timeout).
    Polls from a child process, so the test's other client threads (one
    interpreter lock) do not add to the latencies it measures."""

    def __init__(self, port, interval=0.1, timeout=5.0, max_polls=3000, source="127.0.0.200"):
        self.port, self.interval, self.timeout, self.max_polls = port, interval, timeout, max_polls
        # Its own address, as a load balancer has: sharing the attacker's, its
        # connection is one of that address's over the per-address cap, and
        # the gate rightly evicts the longest waiting of them (a reset poll,
        # seen in a fresh-clone CI run).
        self.source = source
        self.latencies, self.failures = [], []
        ctx = multiprocessing.get_context("fork")
        self._stop, self._results = ctx.Event(), ctx.Queue()
        self._process = ctx.Process(target=self._child, daemon=True)

    def _child(self):
        self._run()
        self._results.put((self.latencies, self.failures))

    def _run(self):
        for _ in range(self.max_polls):
            if self._stop.is_set():
                return
            t0 = time.monotonic()
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout,
                                               source_address=(self.source, 0))
                c.request("GET", "/health")
                r = c.getresponse()
                r.read()
                c.close()
                if r.status != 200:
                    self.failures.append("HTTP %d" % r.status)
            except Exception as e:  # a refused or dropped poll is what this measures
                self.failures.append(repr(e))
            self.latencies.append(time.monotonic() - t0)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t0)))

    @property
    def max_latency(self):
        return max(self.latencies) if self.latencies else float("inf")

    def __enter__(self):
        self._process.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.latencies, self.failures = self._results.get(timeout=60)
        self._process.join()


class Slowloris:
    """`sockets` connections from `source` (any 127.x.y.z address) that each send a
    request line and then one more header line every `interval` s, never ending
    the head. With `reconnect`, a socket the server closed is replaced (as an
    attacker would), at most `max_connects` times in all. Records how long the
    server let each socket live. Runs in a child process, so its work does not
    delay the measuring threads of the test (one interpreter lock)."""

    def __init__(self, port, sockets, interval, duration, source="127.0.0.1", reconnect=False, max_connects=5000):
        self.port, self.n, self.interval, self.duration = port, sockets, interval, duration
        self.source, self.reconnect, self.max_connects = source, reconnect, max_connects
        self.connects, self.lifetimes, self.open_at_end, self.connect_errors = 0, [], 0, 0
        ctx = multiprocessing.get_context("fork")
        self._stop, self._results = ctx.Event(), ctx.Queue()
        self._process = ctx.Process(target=self._child, daemon=True)
        self._done = False

    def _child(self):
        self._run()
        self._results.put((self.connects, self.lifetimes, self.open_at_end, self.connect_errors))

    def wait(self):
        """Waits for the attack to run its course and collects its figures."""
        if not self._done:
            self.connects, self.lifetimes, self.open_at_end, self.connect_errors = self._results.get(
                timeout=self.duration + 60)
            self._process.join()
            self._done = True

    def _open(self):
        if self.connects >= self.max_connects:
            return None
        self.connects += 1
        s = socket.socket()
        try:
            s.bind((self.source, 0))
            s.settimeout(2)
            s.connect(("127.0.0.1", self.port))
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n")
            s.setblocking(False)
            return [s, time.monotonic(), 0]
        except OSError:
            self.connect_errors += 1
            s.close()
            return None

    def _alive(self, entry):
        s = entry[0]
        try:
            if s.recv(4096) == b"":
                return False  # the server closed it (or answered and closed)
        except BlockingIOError:
            pass
        except OSError:
            return False
        try:
            entry[2] += 1
            s.send(b"X-Slow-%d: %d\r\n" % (entry[2], entry[2]))
            return True
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False

    def _run(self):
        socks = [e for e in (self._open() for _ in range(self.n)) if e]
        end = time.monotonic() + self.duration
        while time.monotonic() < end and not self._stop.is_set():
            self._stop.wait(min(self.interval, max(0.0, end - time.monotonic())))
            kept = []
            for e in socks:
                if self._alive(e):
                    kept.append(e)
                else:
                    self.lifetimes.append(time.monotonic() - e[1])
                    e[0].close()
            while self.reconnect and len(kept) < self.n and not self._stop.is_set():
                e = self._open()
                if not e:
                    break
                kept.append(e)
            socks = kept
        self.open_at_end = len(socks)
        for e in socks:
            e[0].close()

    def __enter__(self):
        self._process.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.wait()


def big_chat_body(messages=100_000):
    """A ~3.4 MB chat request of `messages` short user messages."""
    return (b'{"max_tokens": 1, "messages": [' + b",".join([b'{"role": "user", "content": "hi"}'] * messages)
            + b"]}")


def post_raw(port, path, body, timeout=60):
    """POSTs `body` on a fresh connection; returns (status, headers dict, body bytes),
    or (None, {}, repr(error))."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        c.request("POST", path, body, {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, dict(r.getheaders()), data
    except Exception as e:  # noqa: BLE001 - reported to the caller
        return None, {}, repr(e)


def burst(port, path, body, n, timeout=60):
    """`n` concurrent POSTs of `body`; returns their (status, headers, body) results."""
    results, lock = [], threading.Lock()
    barrier = threading.Barrier(n)

    def one():
        barrier.wait()
        r = post_raw(port, path, body, timeout)
        with lock:
            results.append(r)
    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
