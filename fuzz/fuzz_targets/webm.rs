//! The `webm` target: see `candybar_core::fuzzing::webm` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| candybar_core::fuzzing::webm(data));
