"""Headless Chromium for tests: Debian's package (installed with apt-get when missing) and a
small DevTools-protocol driver (aiohttp's WebSocket client, an MLflow dependency) that opens
pages, waits for what they render, clicks and takes screenshots."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.debian import ensure

#: The flags every headless run uses (as root, without network side trips).
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserUnavailable(RuntimeError):
    """No Chromium here, and apt-get could not install it."""


def find_chromium() -> str:
    """Debian's ``chromium`` (:mod:`tests.debian` installs it when missing)."""
    why = ensure("chromium")
    if why:
        raise BrowserUnavailable(why)
    exe = shutil.which("chromium")
    if not exe:
        raise BrowserUnavailable("apt-get installed chromium but no `chromium` is on PATH")
    return exe


class Browser:
    """One headless Chromium page, driven through the DevTools protocol.

    ``profile`` must be a new empty folder (Chromium writes its profile and
    ``DevToolsActivePort`` there).
    """

    def __init__(self, exe: str, profile: Path, width: int = 1440, height: int = 900) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                exe,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.loop = asyncio.new_event_loop()
        self._id = 0
        try:
            port = self._port(profile / "DevToolsActivePort")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t["type"] == "page"]
            self._session, self._ws = self.loop.run_until_complete(
                self._connect(pages[0]["webSocketDebuggerUrl"])
            )
            self.send("Page.enable")
            self.send("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _port(self, file: Path, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserUnavailable(f"chromium exited with {self.proc.returncode}")
            if file.is_file() and file.read_text().strip():
                return int(file.read_text().split()[0])
            time.sleep(0.1)
        raise BrowserUnavailable(f"chromium wrote no {file} in {timeout:.0f}s")

    async def _connect(self, url: str) -> tuple[Any, Any]:
        import aiohttp

        session = aiohttp.ClientSession()
        ws = await session.ws_connect(url, max_msg_size=0)
        return session, ws

    async def _send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        await self._ws.send_json({"id": self._id, "method": method, "params": params})
        while True:
            msg = await self._ws.receive_json(timeout=60)
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its result."""
        return self.loop.run_until_complete(self._send(method, params))

    def eval(self, expression: str) -> Any:
        """A JavaScript expression's value in the page (awaited when it is a promise)."""
        out = self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expression[:80]}: {out['exceptionDetails']}")
        return out["result"].get("value")

    def goto(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def text(self) -> str:
        """The page's rendered text (``innerText``: what a reader sees, not hidden nodes)."""
        return self.eval("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, expression: str, timeout: float = 60, what: str = "") -> Any:
        """Poll a JavaScript expression until it is truthy; its value.

        Raises:
            TimeoutError: with the page's title and the start of its text.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = self.eval(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                title = self.eval("document.title")
                raise TimeoutError(
                    f"{what or expression} not seen in {timeout:.0f}s on {title!r}: "
                    f"{self.text()[:1500]!r}"
                )
            time.sleep(0.25)

    def wait_for_text(self, *needles: str, timeout: float = 60) -> str:
        """Wait until the rendered text holds every one of ``needles``; the text."""
        check = " && ".join(f"document.body.innerText.includes({json.dumps(n)})" for n in needles)
        self.wait_for(f"document.body && {check}", timeout, what=f"text {needles}")
        return self.text()

    def screenshot(self, path: Path) -> Path:
        """A PNG of the viewport."""
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        if getattr(self, "_ws", None) is not None:
            self.loop.run_until_complete(self._ws.close())
            self.loop.run_until_complete(self._session.close())
            self._ws = None
        self.loop.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
