//! The OpenAI-compatible speech-to-text API: `POST /v1/audio/transcriptions` (a multipart form:
//! `file`, `model`, `language`, `prompt`, `response_format` (`json`, `text`, `verbose_json`,
//! `srt`, `vtt`), `timestamp_granularities[]` (`word`, `segment`), `temperature`) and `GET /v1/models`, so
//! scripts written for OpenAI's audio API (its official clients among them) work against
//! candybar by changing the base URL. The token is the API key; errors come in OpenAI's shape.

use std::sync::atomic::Ordering;

use axum::extract::multipart::MultipartError;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use candybar_core::asr::audio::SAMPLE_RATE_HZ;
use candybar_core::asr::subtitles::{Cue, srt, vtt};
use candybar_core::asr::vad::SpeechTracker;
use serde_json::json;

use super::{Shared, authorized, decode_with, loaded, publish_transcript, session_id};
use crate::engine::{DecodeOptions, Transcript, check_language, language_name};
use crate::media::{MediaError, decode_audio};

/// OpenAI's limit on an upload: 25 MB.
pub const MAX_UPLOAD_BYTES: usize = 25 * 1024 * 1024;

/// Uploads taken at once (read, waiting for a decoder or decoding); more are told to retry.
pub const MAX_UPLOADS: usize = 2;

/// The name OpenAI's clients ask for; it means the loaded model.
const OPENAI_MODEL: &str = "whisper-1";

pub(super) fn routes() -> Router<Shared> {
    Router::new()
        .route(
            "/v1/audio/transcriptions",
            // The form's other fields and its boundaries ride on top of the file.
            post(transcriptions).layer(DefaultBodyLimit::max(MAX_UPLOAD_BYTES + 64 * 1024)),
        )
        .route("/v1/models", get(models))
        .route("/v1/models/{id}", get(model))
}

/// An error as OpenAI's API answers it: `{"error": {message, type, param, code}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
    code: Option<&'static str>,
}

impl ApiError {
    fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message:
                "missing or wrong API key: send the server's token as Authorization: Bearer <token>"
                    .into(),
            param: None,
            code: Some("invalid_api_key"),
        }
    }

    fn bad(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: Some(param),
            code: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.status {
            StatusCode::UNAUTHORIZED => "authentication_error",
            s if s.is_server_error() => "server_error",
            _ => "invalid_request_error",
        };
        (
            self.status,
            Json(json!({ "error": {
                "message": self.message,
                "type": kind,
                "param": self.param,
                "code": self.code,
            }})),
        )
            .into_response()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    Text,
    VerboseJson,
    Srt,
    Vtt,
}

impl Format {
    fn parse(s: &str) -> Result<Self, ApiError> {
        Ok(match s {
            "json" => Self::Json,
            "text" => Self::Text,
            "verbose_json" => Self::VerboseJson,
            "srt" => Self::Srt,
            "vtt" => Self::Vtt,
            other => {
                return Err(ApiError::bad(
                    "response_format",
                    format!(
                        "response_format '{}' is not supported: use json, text, verbose_json, srt or vtt",
                        clipped(other)
                    ),
                ));
            }
        })
    }
}

/// The form's fields, read as they come.
#[derive(Default)]
struct Form {
    file: Option<(Vec<u8>, Option<String>)>,
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
    response_format: Option<String>,
    granularities: Vec<String>,
}

/// A client's value as shown back in an error: its first 80 characters.
fn clipped(value: &str) -> String {
    value.chars().take(80).collect()
}

fn multipart_error(e: &MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!(
                "the upload is over {} MB: split the audio, or compress it (e.g. to MP3 or Ogg)",
                MAX_UPLOAD_BYTES / (1024 * 1024)
            ),
            param: Some("file"),
            code: None,
        }
    } else {
        ApiError::bad(
            "file",
            format!(
                "unreadable multipart form ({}): send multipart/form-data with a `file` field",
                e.body_text()
            ),
        )
    }
}

async fn read_form(mut multipart: Multipart) -> Result<Form, ApiError> {
    let mut form = Form::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "file" {
            let extension = field
                .file_name()
                .and_then(|n| std::path::Path::new(n).extension())
                .map(|e| e.to_string_lossy().to_ascii_lowercase());
            let bytes = field.bytes().await.map_err(|e| multipart_error(&e))?;
            form.file = Some((bytes.to_vec(), extension));
            continue;
        }
        let text = field.text().await.map_err(|e| multipart_error(&e))?;
        match name.as_str() {
            "model" => form.model = Some(text),
            "language" => form.language = Some(text).filter(|l| !l.is_empty()),
            "prompt" => form.prompt = Some(text).filter(|p| !p.is_empty()),
            "response_format" => form.response_format = Some(text),
            "timestamp_granularities[]" | "timestamp_granularities" => {
                form.granularities.push(text);
            }
            // temperature, stream, chunking_strategy, include[]: decoding here is greedy and
            // deterministic, and the answer comes whole.
            _ => {}
        }
    }
    Ok(form)
}

/// Names the loaded model answers to: `whisper-1`, its file name (`ggml-tiny.en`) and its short
/// name (`tiny.en`).
fn answers_to(loaded_name: &str, asked: &str) -> bool {
    asked == OPENAI_MODEL
        || asked == loaded_name
        || loaded_name.strip_prefix("ggml-") == Some(asked)
}

async fn transcriptions(
    State(state): State<Shared>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    match transcribe(&state, &headers, multipart).await {
        Ok(r) => {
            state.uploads.fetch_add(1, Ordering::Relaxed);
            r
        }
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED {
                state.rejected.fetch_add(1, Ordering::Relaxed);
            } else {
                state.uploads_refused.fetch_add(1, Ordering::Relaxed);
            }
            e.into_response()
        }
    }
}

async fn transcribe(
    state: &Shared,
    headers: &HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    if !authorized(state, headers, None) {
        return Err(ApiError::unauthorized());
    }
    let Ok(_slot) = state.upload_slots.try_acquire() else {
        return Err(ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!("{MAX_UPLOADS} uploads are being transcribed; retry when one is done"),
            param: None,
            code: Some("rate_limit_exceeded"),
        });
    };
    let multipart = multipart.map_err(|e| {
        ApiError::bad(
            "file",
            format!(
                "{}: send multipart/form-data with a `file` field",
                e.body_text()
            ),
        )
    })?;
    let form = read_form(multipart).await?;
    let Some(l) = loaded(state) else {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the model is still loading (see /health); try again shortly".into(),
            param: None,
            code: None,
        });
    };
    let asked = check_form(
        &form,
        &l.name,
        l.multilingual,
        state.cfg.language.as_deref(),
    )?;
    let Some((bytes, extension)) = form.file else {
        return Err(ApiError::bad(
            "file",
            "the form needs a `file` field with the audio",
        ));
    };
    let samples = tokio::task::spawn_blocking(move || decode_audio(bytes, extension.as_deref()))
        .await
        .map_err(|e| ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("the audio decoder crashed: {e}"),
            param: None,
            code: None,
        })?
        .map_err(|e: MediaError| ApiError::bad("file", e.to_string()))?;
    let opts = DecodeOptions {
        prompt: form.prompt,
        word_times: asked.words,
        language: asked.language,
        ..DecodeOptions::default()
    };
    // Audio with no frame over the voice threshold is not decoded: Whisper invents words for
    // silence.
    let mut vad = SpeechTracker::new(state.cfg.vad_threshold_rms, 0);
    vad.push(&samples);
    let t = if vad.heard_speech() {
        decode_with(state, samples, opts)
            .await
            .map_err(|e| ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("transcription failed: {e}"),
                param: None,
                code: None,
            })?
    } else {
        silent(&samples, opts.language.as_deref())
    };
    publish_transcript(state, &t, "openai-api", &session_id("upload"));
    Ok(render(&t, asked.format, asked.words, asked.segments))
}

/// The transcript of audio without speech: no words, in the language asked for.
fn silent(samples: &[f32], language: Option<&str>) -> Transcript {
    Transcript {
        text: String::new(),
        confidence: 0.0,
        segments: Vec::new(),
        words: Vec::new(),
        audio_ms: samples.len() as u64 * 1000 / u64::from(SAMPLE_RATE_HZ),
        decode_ms: 0,
        language: language
            .filter(|l| *l != "auto")
            .and_then(|l| l.split(',').next())
            .unwrap_or("en")
            .to_owned(),
        dropped_segments: 0,
    }
}

/// What a valid form asks for.
struct Asked {
    format: Format,
    words: bool,
    segments: bool,
    language: Option<String>,
}

/// Checks the form's fields against the loaded model; the first problem is the answer.
fn check_form(
    form: &Form,
    loaded_name: &str,
    multilingual: bool,
    default_language: Option<&str>,
) -> Result<Asked, ApiError> {
    let Some(model) = form.model.as_deref() else {
        return Err(ApiError::bad(
            "model",
            format!("the form needs a `model` field: `{OPENAI_MODEL}` or `{loaded_name}`"),
        ));
    };
    if !answers_to(loaded_name, model) {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "model '{}' is not served here: this server runs `{}` (also answering to `{OPENAI_MODEL}`)",
                clipped(model),
                loaded_name
            ),
            param: Some("model"),
            code: Some("model_not_found"),
        });
    }
    let format = Format::parse(form.response_format.as_deref().unwrap_or("json"))?;
    let mut words = false;
    for g in &form.granularities {
        match g.as_str() {
            "word" => words = true,
            "segment" => {}
            other => {
                return Err(ApiError::bad(
                    "timestamp_granularities",
                    format!(
                        "timestamp granularity '{}' is not one of word, segment",
                        clipped(other)
                    ),
                ));
            }
        }
    }
    if !form.granularities.is_empty() && format != Format::VerboseJson {
        return Err(ApiError::bad(
            "timestamp_granularities",
            "timestamp_granularities needs response_format=verbose_json",
        ));
    }
    let language = form
        .language
        .as_deref()
        .or(default_language)
        .map(|code| check_language(code, multilingual).map_err(|m| ApiError::bad("language", m)))
        .transpose()?;
    let segments =
        form.granularities.is_empty() || form.granularities.iter().any(|g| g == "segment");
    Ok(Asked {
        format,
        words,
        segments,
        language,
    })
}

/// The transcript in the asked format; `verbose_json` carries the segments and words asked for
/// (segments when nothing was asked).
fn render(t: &Transcript, format: Format, words: bool, segments: bool) -> Response {
    let secs = |ms: u64| ms as f64 / 1000.0;
    let cues = || -> Vec<Cue<'_>> {
        t.segments
            .iter()
            .map(|s| Cue {
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                text: &s.text,
            })
            .collect()
    };
    let text_reply = |body: String| {
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
    };
    let usage = json!({ "type": "duration", "seconds": t.audio_ms.div_ceil(1000) });
    match format {
        Format::Json => Json(json!({ "text": t.text, "usage": usage })).into_response(),
        Format::Text => text_reply(format!("{}\n", t.text)),
        Format::Srt => text_reply(srt(&cues())),
        Format::Vtt => text_reply(vtt(&cues())),
        Format::VerboseJson => {
            let mut body = json!({
                "task": "transcribe",
                "language": language_name(&t.language),
                "duration": secs(t.audio_ms),
                "text": t.text,
                "usage": usage,
            });
            if segments {
                body["segments"] = t
                    .segments
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        json!({
                            "id": i,
                            "seek": 0,
                            "start": secs(s.start_ms),
                            "end": secs(s.end_ms),
                            "text": format!(" {}", s.text),
                            "tokens": [],
                            "temperature": 0.0,
                            "avg_logprob": s.avg_logprob,
                            "compression_ratio": s.compression_ratio,
                            "no_speech_prob": s.no_speech_prob,
                        })
                    })
                    .collect();
            }
            if words {
                body["words"] = t
                    .words
                    .iter()
                    .map(|w| json!({ "word": w.text, "start": secs(w.start_ms), "end": secs(w.end_ms) }))
                    .collect();
            }
            Json(body).into_response()
        }
    }
}

/// The models this server answers to, as OpenAI lists models.
fn model_list(state: &Shared) -> Vec<serde_json::Value> {
    let created = (candybar_core::time::now_us() / 1_000_000)
        .saturating_sub(state.started.elapsed().as_secs() as i64);
    loaded(state)
        .map(|l| {
            [OPENAI_MODEL, l.name.as_str()]
                .iter()
                .map(|id| json!({ "id": id, "object": "model", "created": created, "owned_by": "candybar" }))
                .collect()
        })
        .unwrap_or_default()
}

async fn models(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if !authorized(&state, &headers, None) {
        return ApiError::unauthorized().into_response();
    }
    Json(json!({ "object": "list", "data": model_list(&state) })).into_response()
}

async fn model(
    State(state): State<Shared>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !authorized(&state, &headers, None) {
        return ApiError::unauthorized().into_response();
    }
    match model_list(&state)
        .into_iter()
        .find(|m| m["id"] == id.as_str())
    {
        Some(m) => Json(m).into_response(),
        None => ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("model '{}' is not served here", clipped(&id)),
            param: Some("model"),
            code: Some("model_not_found"),
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loaded_model_answers_to_its_names_and_whisper_1() {
        assert!(answers_to("ggml-tiny.en", "whisper-1"));
        assert!(answers_to("ggml-tiny.en", "ggml-tiny.en"));
        assert!(answers_to("ggml-tiny.en", "tiny.en"));
        assert!(!answers_to("ggml-tiny.en", "gpt-4o-transcribe"));
        assert!(!answers_to("ggml-tiny.en", "tiny"));
    }

    #[test]
    fn unknown_formats_are_refused_with_the_list() {
        assert_eq!(Format::parse("srt").ok(), Some(Format::Srt));
        let e = Format::parse("xml").expect_err("refused");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.param, Some("response_format"));
        assert!(e.message.contains("json, text, verbose_json, srt or vtt"));
    }
}
