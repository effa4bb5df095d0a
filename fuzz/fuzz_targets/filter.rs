//! The `filter` target: see `candybar_core::fuzzing::filter` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| candybar_core::fuzzing::filter(data));
