"""Records a WAV through headless Chromium's MediaRecorder, as a browser page records a
microphone: `audio/webm` (Opus), a chunk every 100 ms — the bytes WhisperLiveKit's page sends.

    python record_webm.py AUDIO.wav OUT.webm SECONDS

Writes the chunks, concatenated, to OUT.webm (a live recording: the Segment and every Cluster
without a size) and prints the chunk sizes as JSON. Regenerates tests/fixtures/speech/*.webm.
"""

import base64
import http.server
import json
import sys
import tempfile
import threading

from wlk_page import chromium_page

PAGE = b"""<!doctype html><title>record</title><script>
async function record(ms) {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const rec = new MediaRecorder(stream, {mimeType: "audio/webm"});
  const chunks = [];
  rec.ondataavailable = (e) => { if (e.data.size > 0) chunks.push(e.data); };
  const stopped = new Promise((r) => (rec.onstop = r));
  rec.start(100);
  await new Promise((r) => setTimeout(r, ms));
  rec.stop();
  await stopped;
  const out = [];
  for (const c of chunks) {
    const b = new Uint8Array(await c.arrayBuffer());
    let s = "";
    for (const x of b) s += String.fromCharCode(x);
    out.push(btoa(s));
  }
  return out;
}
</script>"""


def main():
    audio, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    root = tempfile.mkdtemp(prefix="record-webm-")
    with open(f"{root}/index.html", "wb") as f:
        f.write(PAGE)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=root, **k)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    with chromium_page(audio, url) as page:
        chunks = [base64.b64decode(c) for c in page.js(f"record({int(seconds * 1000)})")]
    with open(out, "wb") as f:
        for c in chunks:
            f.write(c)
    print(json.dumps([len(c) for c in chunks]))


if __name__ == "__main__":
    main()
