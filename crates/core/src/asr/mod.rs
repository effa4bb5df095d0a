//! Speech to text without the engine: the `/asr` protocol shared by the server and the client,
//! the streaming policy (LocalAgreement-2), voice activity, word error rate, PCM conversion,
//! WhisperLiveKit's protocol and the WebM its browser page records.

pub mod audio;
pub mod hallucination;
pub mod protocol;
pub mod resample;
pub mod streaming;
pub mod subtitles;
pub mod vad;
pub mod webm;
pub mod wer;
pub mod wlk;
