//! The `decode` target: see `candybar_core::fuzzing::decode` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| candybar_core::fuzzing::decode(data));
