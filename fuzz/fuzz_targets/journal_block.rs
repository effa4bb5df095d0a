//! The `journal_block` target: see `candybar_journal::fuzzing::block` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| candybar_journal::fuzzing::block(data));
