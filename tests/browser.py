"""A headless Chromium for the tests: load a page and evaluate JavaScript in it over the DevTools protocol
(``--remote-debugging-pipe``: JSON messages ending in NUL on fds 3 (to Chromium) and 4 (from it); no
websocket library needed). ``make test`` installs Debian's ``chromium`` where apt-get is allowed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time


def chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


class Page:
    """``Page(path)`` loads ``file://path`` in a fresh headless Chromium; ``evaluate(js)`` returns the value;
    ``errors``: the console errors and uncaught exceptions, and every failed resource load, seen so far."""

    def __init__(self, path: str, timeout: float = 60.0):
        binary = chromium()
        if binary is None:
            raise RuntimeError("chromium is not installed: `make test` installs it (apt-get install chromium)")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()

        self._profile = tempfile.mkdtemp(prefix="lrjax-chromium-")
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                f"--user-data-dir={self._profile}", "about:blank"]
        # bash puts the pipes on fds 3 and 4 (dash takes one-digit fds only; no preexec_fn: no Python between
        # fork and exec)
        self._proc = subprocess.Popen(["bash", "-c", f'exec "$@" 3<&{to_r} 4>&{from_w}', "bash", *args],
                                      pass_fds=(to_r, from_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._buf, self._id, self.errors, self._deadline = b"", 0, [], time.monotonic() + timeout
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self._call(f"{domain}.enable", session=True)
        self._call("Page.navigate", {"url": f"file://{os.path.abspath(path)}"}, session=True)
        self._wait("Page.loadEventFired")

    def _send(self, method, params=None, session=False) -> int:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self._session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        return self._id

    def _next(self) -> dict:
        while b"\0" not in self._buf:
            if time.monotonic() > self._deadline:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg = json.loads(raw)
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            self.errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            self.errors.append(str(params.get("args")))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(params["entry"].get("text", ""))
        elif method == "Network.loadingFailed":
            self.errors.append(f"failed to load: {params.get('errorText')}")
        return msg

    def _call(self, method, params=None, session=False) -> dict:
        i = self._send(method, params, session)
        while True:
            msg = self._next()
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def _wait(self, event: str) -> None:
        while self._next().get("method") != event:
            pass

    def evaluate(self, expression: str):
        """The value of a JavaScript expression (a promise is awaited), JSON-serialisable."""
        out = self._call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True},
                         session=True)
        if "exceptionDetails" in out:
            raise RuntimeError(f"evaluate: {out['exceptionDetails'].get('text')}")
        return out["result"].get("value")

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait()
        os.close(self._to_w)
        os.close(self._from_r)
        shutil.rmtree(self._profile, ignore_errors=True)
