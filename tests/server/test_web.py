"""The chat page at / in headless Chromium (Debian's chromium + chromedriver,
driven over the W3C WebDriver protocol with the standard library): type a
prompt, press Enter, watch the answer arrive as a stream of chunks, check it
equals the API's greedy answer, and save a screenshot in the test output."""
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

from harness import GOLDEN, OUT, Server, chat_model

MODEL = os.path.join(GOLDEN, "v3_tiny_bf16")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriver:
    """The few WebDriver commands the test needs."""

    def __init__(self, profile_dir):
        exe = shutil.which("chromedriver")
        if not exe or not shutil.which("chromium"):
            raise RuntimeError("chromium and chromedriver are needed (scripts/setup.sh installs them)")
        self.port = free_port()
        self.proc = subprocess.Popen([exe, "--port=%d" % self.port], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.call("GET", "/status")["ready"]:
                    break
            except OSError:
                time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-extensions", "--user-data-dir=" + profile_dir, "--window-size=900,700"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": shutil.which("chromium"), "args": args}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def call(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request(method, path, json.dumps(body) if body is not None else None,
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        out = json.loads(r.read() or b"{}")
        c.close()
        if r.status != 200:
            raise RuntimeError("webdriver %s %s: %s" % (method, path, out))
        return out.get("value")

    def s(self, method, path, body=None):
        return self.call(method, "/session/%s%s" % (self.session, path), body)

    def element(self, css):
        return self.s("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]

    def type(self, css, text, clear=False):
        e = self.element(css)
        if clear:
            self.s("POST", "/element/%s/clear" % e, {})
        self.s("POST", "/element/%s/value" % e, {"text": text})

    def js(self, script):
        return self.s("POST", "/execute/sync", {"script": script, "args": []})

    def wait_for(self, script, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            value = self.js(script)
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError("timed out waiting for: " + script)

    def screenshot(self, path):
        with open(path, "wb") as f:
            f.write(base64.b64decode(self.s("GET", "/screenshot")))

    def quit(self):
        try:
            self.s("DELETE", "")
        finally:
            self.proc.terminate()
            self.proc.wait(10)


LAST_ANSWER = """
    const a = document.querySelectorAll('.msg.assistant');
    const m = a[a.length - 1];
    return m && m.dataset.done === '1' &&
           {text: m.querySelector('.content').textContent, chunks: Number(m.dataset.chunks),
            reasoning: m.querySelector('.reasoning').textContent,
            error: (m.querySelector('.error') || {}).textContent || '',
            user: document.querySelector('.msg.user').textContent};"""


class WebPage(unittest.TestCase):
    def test_chat_type_a_message_and_see_a_streamed_answer(self):
        os.makedirs(OUT, exist_ok=True)
        server = Server(chat_model(), "-q", "--name", "tiny-chat")
        profile = tempfile.mkdtemp(prefix="dsv3-chromium-")
        driver = None
        try:
            message, n = "Hello there! How are you?", 40
            st, expected, _ = server.post("/v1/chat/completions", {
                "messages": [{"role": "user", "content": message}], "max_tokens": n, "temperature": 0})
            self.assertEqual(st, 200)
            want = expected["choices"][0]["message"]
            driver = WebDriver(profile)
            driver.s("POST", "/url", {"url": "http://127.0.0.1:%d/" % server.port})
            driver.wait_for("return document.getElementById('mode').textContent === 'tiny-chat — chat'")
            driver.type("#temperature", "0", clear=True)
            driver.type("#max_tokens", str(n), clear=True)
            driver.type("#input", message + "\ue007")  # Enter sends
            result = driver.wait_for(LAST_ANSWER)
            shot = os.path.join(OUT, "web_chat.png")
            driver.screenshot(shot)
            self.assertEqual(result["error"], "")
            self.assertEqual(result["user"], message)
            self.assertEqual(result["text"], (want["content"] or "") + "".join(
                "\n[tool call] %s(%s)" % (c["function"]["name"], c["function"]["arguments"])
                for c in want.get("tool_calls", [])))
            self.assertEqual(result["reasoning"], want.get("reasoning_content", ""))
            # Arrived as a stream, not in one piece; the server coalesces tokens that
            # pile up while a client reads, so a loaded machine sends fewer chunks.
            self.assertGreaterEqual(result["chunks"], 2)
            self.assertGreater(os.path.getsize(shot), 1000)
            print("screenshot:", shot)
        finally:
            if driver:
                driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
            self.assertEqual(server.stop(), 0)

    def test_token_ids_type_a_prompt_and_see_a_streamed_answer(self):
        os.makedirs(OUT, exist_ok=True)
        server = Server(MODEL, "-q", "--name", "tiny-v3")
        profile = tempfile.mkdtemp(prefix="dsv3-chromium-")
        driver = None
        try:
            prompt, n = [0, 15, 27], 24
            st, expected, _ = server.post("/v1/completions", {"prompt": prompt, "max_tokens": n, "temperature": 0})
            self.assertEqual(st, 200)
            driver = WebDriver(profile)
            driver.s("POST", "/url", {"url": "http://127.0.0.1:%d/" % server.port})
            driver.wait_for("return document.getElementById('mode').textContent.includes('tiny-v3')")
            driver.type("#temperature", "0", clear=True)
            driver.type("#max_tokens", str(n), clear=True)
            driver.type("#input", " ".join(map(str, prompt)) + "\ue007")  # Enter sends
            result = driver.wait_for(LAST_ANSWER)
            driver.screenshot(os.path.join(OUT, "web_ids.png"))
            self.assertEqual(result["error"], "")
            self.assertEqual(result["user"], "0 15 27")
            self.assertEqual(result["text"], expected["choices"][0]["text"])
            # Arrived as a stream, not in one piece; the server coalesces tokens that
            # pile up while a client reads, so a loaded machine sends fewer chunks.
            self.assertGreaterEqual(result["chunks"], 2)
            self.assertTrue(os.path.getsize(os.path.join(OUT, "web_ids.png")) > 1000)
            print("screenshot:", os.path.join(OUT, "web_ids.png"))
        finally:
            if driver:
                driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
