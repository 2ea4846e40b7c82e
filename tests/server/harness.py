"""Starts a real `dsv3 serve` on a loopback port and talks HTTP to it with the
standard library only (the end-to-end server tests and the load test share it).

Environment: DSV3_BIN (the dsv3 binary), DSV3_GOLDEN (tests/golden),
DSV3_TEST_OUT (a directory for artefacts such as screenshots).
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

BIN = os.environ.get("DSV3_BIN", "build/dsv3")
GOLDEN = os.environ.get("DSV3_GOLDEN", "tests/golden")
OUT = os.environ.get("DSV3_TEST_OUT", "/tmp/dsv3_server_tests")
# One worker thread: the golden models are tiny, and OpenMP barriers on a
# loaded shared machine cost far more than they save.
THREADS = os.environ.get("DSV3_TEST_THREADS", "1")


class Server:
    """One `dsv3 serve` process on 127.0.0.1 with an ephemeral port."""

    def __init__(self, model, *args, env=None, start_timeout=120):
        self.model = model
        cmd = [BIN, "-t", THREADS, "serve", "-m", model, "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.stderr_lines = []
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        deadline = time.time() + start_timeout
        line = self.proc.stdout.readline()
        m = re.search(r"listening on http://[^:]+:(\d+)", line or "")
        if not m:
            self.proc.kill()
            self.proc.wait()
            self._stderr_thread.join(timeout=5)
            raise RuntimeError("server did not start: %r\n%s" % (line, "".join(self.stderr_lines)))
        self.port = int(m.group(1))
        self.banner = line
        while time.time() < deadline:
            try:
                if self.get("/health")[0] in (200, 401):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server never became healthy")

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
        self.proc.stderr.close()

    # --- HTTP helpers ------------------------------------------------------
    def conn(self, timeout=60):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=60):
        """Returns (status, parsed JSON or text, headers)."""
        c = self.conn(timeout)
        data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        c.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        raw = r.read()
        c.close()
        ctype = r.getheader("Content-Type", "")
        parsed = json.loads(raw) if "json" in ctype else raw.decode("utf-8", "replace")
        return r.status, parsed, dict(r.getheaders())

    def get(self, path, headers=None):
        return self.request("GET", path, None, headers)

    def post(self, path, body, headers=None, timeout=60):
        return self.request("POST", path, body, headers, timeout)

    def stream(self, path, body, headers=None, timeout=60, on_event=None):
        """POSTs a streaming request. Returns (status, events, times): events are
        parsed `data:` payloads ("[DONE]" kept as a string), times their arrival
        (time.monotonic()). A non-200 answer returns its JSON body as events."""
        c = self.conn(timeout)
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        if r.status != 200:
            body = json.loads(r.read())
            c.close()
            return r.status, body, []
        assert r.getheader("Content-Type", "").startswith("text/event-stream"), r.getheaders()
        events, times = [], []
        while True:
            line = r.readline()
            if not line:
                break
            line = line.decode("utf-8").rstrip("\n")
            if not line.startswith("data: "):
                continue
            data = line[len("data: "):]
            events.append(data if data == "[DONE]" else json.loads(data))
            times.append(time.monotonic())
            if on_event and on_event(events[-1]) is False:
                break
        c.close()
        return 200, events, times

    def metrics(self):
        """GET /metrics parsed into {name{labels}: value}."""
        status, text, _ = self.get("/metrics")
        assert status == 200
        out = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)', line)
            assert m, "not Prometheus text: %r" % line
            out[m.group(1)] = float(m.group(2))
        return out

    def rss(self, field="RssAnon"):
        """Resident memory in bytes from /proc/PID/status: RssAnon (heap, stacks,
        the KV cache) by default; VmRSS also counts the mapped weights' pages."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def wait_idle(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.metrics()
            if m["dsv3_requests_running"] == 0 and m["dsv3_requests_waiting"] == 0:
                return m
            time.sleep(0.05)
        raise AssertionError("server still busy after %s s: %s" % (timeout, self.metrics()))

    def healthy(self):
        status, body, _ = self.get("/health")
        return status == 200 and body["status"] == "ok"

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals the server and returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise AssertionError("server did not stop within %s s after %s" % (timeout, sig))
        self._stderr_thread.join(timeout=5)
        self.proc.stdout.close()
        return rc


class ServerTest(unittest.TestCase):
    """A test class whose tests share one server, `cls.s` (set in setUpClass);
    the server must exit 0 when the class is done with it."""

    @classmethod
    def tearDownClass(cls):
        rc = cls.s.stop()
        assert rc == 0, "exit status %d\n%s" % (rc, "".join(cls.s.stderr_lines))


def chat_model():
    """A chat-capable tiny model: the golden v3_tiny_bf16 weights plus a
    byte-level BPE tokenizer (vocabulary 384, DeepSeek-V3 special tokens, the
    dsv3 chat template) trained by `dsv3 train-tokenizer` on the tokenizer's
    stress file. Built once per output directory."""
    out = os.path.join(OUT, "tiny_chat")
    if os.path.exists(os.path.join(out, "tokenizer_config.json")):
        return out
    os.makedirs(out, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    stress = os.path.join(here, "..", "tokenizer", "stress.txt")
    tmp = out + ".tok.%d" % os.getpid()
    subprocess.run([BIN, "train-tokenizer", "-q", "--vocab-size", "384", "--out", tmp, stress], check=True)
    golden = os.path.join(GOLDEN, "v3_tiny_bf16")
    for name in ("config.json", "model.safetensors"):
        try:  # tests running in parallel may race here
            os.symlink(os.path.abspath(os.path.join(golden, name)), os.path.join(out, name))
        except FileExistsError:
            pass
    for name in ("tokenizer.json", "tokenizer_config.json"):  # config last: it marks the model complete
        os.replace(os.path.join(tmp, name), os.path.join(out, name))
    os.rmdir(tmp)
    return out


def chat_parts(events):
    """(content, reasoning_content, tool_calls) of streamed chat chunks."""
    content, reasoning, calls = "", "", []
    for e in events:
        if not isinstance(e, dict):
            continue
        for c in e.get("choices", []):
            d = c.get("delta", {})
            content += d.get("content") or ""
            reasoning += d.get("reasoning_content") or ""
            calls += [{"id": t["id"], "type": t["type"], "function": t["function"]} for t in d.get("tool_calls", [])]
    return content, reasoning, calls


def completion_text(events):
    """Concatenated text of streamed completion chunks."""
    return "".join(c["text"] for e in events if isinstance(e, dict) for c in e.get("choices", []))


def raw_socket(port, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s


def sanitized():
    """True when the dsv3 binary is built with AddressSanitizer: its allocator
    keeps freed memory in quarantine (resident-memory checks do not apply) and
    it reserves terabytes of shadow address space (no RLIMIT_AS runs)."""
    try:
        return "libasan" in subprocess.run(["ldd", BIN], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False


def run_cli(*args):
    """Runs the dsv3 binary; returns stdout (raises on failure)."""
    return subprocess.run([BIN, "-t", THREADS, *args], check=True, capture_output=True, text=True).stdout


def long_chat_model():
    """The harness's tiny chat model with a 4096-token context, so a tool prompt
    describing a deeply nested schema fits (the golden config says 256)."""
    src, out = chat_model(), os.path.join(OUT, "tiny_chat_4k")
    os.makedirs(out, exist_ok=True)
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        if not os.path.exists(os.path.join(out, name)):
            try:  # tests running in parallel may race here
                os.symlink(os.path.realpath(os.path.join(src, name)), os.path.join(out, name))
            except FileExistsError:
                pass
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    config["max_position_embeddings"] = 4096
    tmp = os.path.join(out, "config.json.%d" % os.getpid())
    with open(tmp, "w") as f:
        json.dump(config, f)
    os.replace(tmp, os.path.join(out, "config.json"))
    return out


NODE_DIR = os.environ.get("DSV3_NODE_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node"))


def run_node_test(script, start_servers, packages=("openai",), extra_args=(), timeout=240):
    """Runs the node test `script` (in this directory) with the base URLs of the
    servers `start_servers()` returns (then `extra_args`), then stops them. Returns the exit
    status: 77 (ctest: skipped) without node or one of `packages` in
    tests/node (scripts/setup-node.sh installs them); 1 if a server did not
    exit cleanly."""
    import shutil
    node = shutil.which("node")
    if not node:
        print("SKIPPED: node is not installed")
        return 77
    missing = [p for p in packages if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", p))]
    if missing:
        print("SKIPPED: %s missing from %s/node_modules: run scripts/setup-node.sh" % (", ".join(missing), NODE_DIR))
        return 77
    servers, rc = [], 1
    try:
        servers = start_servers()
        args = ["http://127.0.0.1:%d/v1" % s.port for s in servers] + list(extra_args)
        run = subprocess.run([node, os.path.join(os.path.dirname(os.path.abspath(__file__)), script), *args],
                             timeout=timeout, env={**os.environ, "DSV3_NODE_DIR": NODE_DIR})
        rc = run.returncode
    finally:
        for s in servers:
            status = s.stop()
            if status != 0:
                print("server exit status %d\n%s" % (status, "".join(s.stderr_lines)))
                rc = 1
    return rc
