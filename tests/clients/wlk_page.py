"""Drives WhisperLiveKit's own web page (from its PyPI package) in headless Chromium against a
speech server, with a WAV file as the microphone.

    python wlk_page.py WS_URL AUDIO.wav SECONDS [SCREENSHOT.png]

Serves the package's page on a local port, opens it in Chromium (fake microphone playing
AUDIO.wav on a loop), points the page at WS_URL, presses its record button, lets it listen for
SECONDS, presses it again, waits for the page to finish, and prints one JSON object: the text
the page shows, its status line, the texts and status lines it showed along the way (and a
screenshot of the page when asked).
"""

import base64
import contextlib
import functools
import http.server
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from websockets.sync.client import connect


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_page():
    """The whisperlivekit package directory over HTTP: the page is /web/live_transcription.html."""
    root = importlib.util.find_spec("whisperlivekit").submodule_search_locations[0]

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


class Page:
    def __init__(self, ws_url):
        self.ws = connect(ws_url, max_size=None)
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=30))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r.get("result", {}).get("value")


@contextlib.contextmanager
def chromium_page(audio, url):
    """Headless Chromium with AUDIO (a WAV, looped) as its microphone, showing URL: a Page."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("chromium is not installed (apt-get install chromium; .ci/install-deps does)")
    debug_port = free_port()
    profile = tempfile.mkdtemp(prefix="wlk-chromium-")
    browser = subprocess.Popen(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={debug_port}",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={os.path.abspath(audio)}",
            "--autoplay-policy=no-user-gesture-required",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        version = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/version") as r:
                    version = json.load(r)
                break
            except OSError:
                time.sleep(0.1)
        if version is None:
            sys.exit("chromium's DevTools never answered")
        req = urllib.request.Request(f"http://127.0.0.1:{debug_port}/json/new?{url}", method="PUT")
        with urllib.request.urlopen(req) as r:
            target = json.load(r)
        page = Page(target["webSocketDebuggerUrl"])
        page.call("Runtime.enable")
        for _ in range(100):
            if page.js("document.readyState") == "complete":
                break
            time.sleep(0.1)
        yield page
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
        shutil.rmtree(profile, ignore_errors=True)


def main():
    ws_url, audio, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    screenshot = sys.argv[4] if len(sys.argv) > 4 else None
    page_port = serve_page()
    url = f"http://127.0.0.1:{page_port}/web/live_transcription.html"
    with chromium_page(audio, url) as page:
        for _ in range(100):
            if page.js("!!document.getElementById('recordButton')"):
                break
            time.sleep(0.1)
        # Point the page at the server, as a user types it into its settings — once its script
        # listens (the button exists before the script at the end of the page has run; a change
        # made earlier is overwritten by the page's default): until the page says it took it.
        for _ in range(200):
            page.js(
                "(() => { const i = document.getElementById('websocketInput');"
                f" i.value = {json.dumps(ws_url)}; i.dispatchEvent(new Event('change')); }})()"
            )
            if "WebSocket URL updated" in (page.js("document.getElementById('status').textContent") or ""):
                break
            time.sleep(0.1)
        else:
            sys.exit("the page never took the server's address")
        # Every status line the page shows, however briefly.
        page.js(
            "(() => { window.statuses = []; const s = document.getElementById('status');"
            " new MutationObserver(() => { const t = s.textContent.trim();"
            " if (t && !window.statuses.includes(t)) window.statuses.push(t); })"
            ".observe(s, {childList: true, characterData: true, subtree: true}); })()"
        )
        page.js("document.getElementById('recordButton').click()")
        seen = []
        text = lambda: page.js("document.getElementById('linesTranscript').innerText") or ""
        status = lambda: page.js("document.getElementById('status').textContent") or ""
        end = time.time() + seconds
        while time.time() < end:
            t = text().strip()
            if t and (not seen or seen[-1] != t):
                seen.append(t)
            time.sleep(0.2)
        page.js("document.getElementById('recordButton').click()")
        final_status = ""
        for _ in range(150):
            final_status = status()
            if "Finished processing" in final_status:
                break
            time.sleep(0.2)
        if screenshot:
            page.call("Emulation.setDeviceMetricsOverride", width=1100, height=700, deviceScaleFactor=1, mobile=False)
            shot = page.call("Page.captureScreenshot", format="png")
            with open(screenshot, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        statuses = page.js("window.statuses")
        print(
            json.dumps({"text": text().strip(), "status": final_status, "seen": seen, "statuses": statuses})
        )


if __name__ == "__main__":
    main()
