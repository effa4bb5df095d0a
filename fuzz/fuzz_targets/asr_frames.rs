//! The `asr_frames` target: see `candybar_core::fuzzing::asr_frames` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| candybar_core::fuzzing::asr_frames(data));
