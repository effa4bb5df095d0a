"""Drives candybar's OpenAI-compatible endpoint with OpenAI's official Python client.

    python openai_client.py BASE_URL API_KEY MODE AUDIO [AUDIO2]

MODE `verbose`: AUDIO transcribed as verbose_json (AUDIO2, when given, is the language); prints
it. MODE `formats`: one transcription per response_format (and the model list); prints one JSON
object with what the client returned. MODE `errors`: the requests that must fail, each with the
status and message the client raised, then one good request; prints one JSON object.
"""

import io
import json
import sys
import wave

import openai
from openai import OpenAI


def formats(client, audio, resampled):
    out = {"models": sorted(m.id for m in client.models.list())}
    with open(audio, "rb") as f:
        out["json"] = client.audio.transcriptions.create(model="whisper-1", file=f).text
    for fmt in ("text", "srt", "vtt"):
        with open(audio, "rb") as f:
            out[fmt] = client.audio.transcriptions.create(
                model="whisper-1", file=f, response_format=fmt
            )
    with open(audio, "rb") as f:
        v = client.audio.transcriptions.create(
            model="whisper-1",
            file=f,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
            language="en",
        )
    out["verbose_json"] = {
        "language": v.language,
        "duration": v.duration,
        "text": v.text,
        "segments": [
            {"start": s.start, "end": s.end, "text": s.text, "no_speech_prob": s.no_speech_prob}
            for s in v.segments
        ],
        "words": [{"word": w.word, "start": w.start, "end": w.end} for w in v.words],
    }
    with open(resampled, "rb") as f:
        out["resampled"] = client.audio.transcriptions.create(
            model="ggml-tiny.en", file=("speech.wav", f, "audio/wav")
        ).text
    return out


def errors(base_url, key, audio):
    out = {}

    def attempt(name, make_client, **kwargs):
        try:
            make_client().audio.transcriptions.create(**kwargs)
            out[name] = {"status": 200}
        except openai.APIStatusError as e:
            out[name] = {"status": e.status_code, "message": str(e)}
        except openai.APIConnectionError as e:
            out[name] = {"status": 0, "message": str(e)}

    good = lambda: OpenAI(base_url=base_url, api_key=key, max_retries=0)
    wrong = lambda: OpenAI(base_url=base_url, api_key="not-the-key", max_retries=0)
    speech = open(audio, "rb").read()
    attempt("wrong_key", wrong, model="whisper-1", file=("a.wav", speech))
    attempt("bad_format", good, model="whisper-1", file=("a.wav", speech), response_format="xml")
    attempt("bad_language", good, model="whisper-1", file=("a.wav", speech), language="xx")
    attempt("german_on_english_model", good, model="whisper-1", file=("a.wav", speech), language="de")
    attempt("unknown_model", good, model="gpt-4o-transcribe", file=("a.wav", speech))
    attempt("garbage", good, model="whisper-1", file=("a.webm", b"\x1a\x45\xdf\xa3" + bytes(range(256)) * 40))
    attempt("binary_noise", good, model="whisper-1", file=("a.mp3", bytes((i * 7919) % 256 for i in range(100_000))))
    attempt("too_big", good, model="whisper-1", file=("big.wav", speech + bytes(26 * 1024 * 1024)))
    r = good().audio.transcriptions.create(model="whisper-1", file=("a.wav", speech))
    out["after"] = r.text
    quiet = io.BytesIO()
    with wave.open(quiet, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(2 * 16000 * 3))
    out["silence"] = good().audio.transcriptions.create(
        model="whisper-1", file=("quiet.wav", quiet.getvalue())
    ).text
    return out


def main():
    base_url, key, mode, audio = sys.argv[1:5]
    client = OpenAI(base_url=base_url, api_key=key, max_retries=0)
    if mode == "verbose":
        extra = {"language": sys.argv[5]} if len(sys.argv) > 5 else {}
        with open(audio, "rb") as f:
            v = client.audio.transcriptions.create(
                model="whisper-1", file=f, response_format="verbose_json", **extra
            )
        result = {"language": v.language, "text": v.text, "duration": v.duration}
    elif mode == "formats":
        result = formats(client, audio, sys.argv[5])
    else:
        result = errors(base_url, key, audio)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
