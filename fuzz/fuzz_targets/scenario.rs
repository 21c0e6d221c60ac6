//! cargo-fuzz target `scenario` (issue 5, family 7): hands each input to
//! `check_scenario` in `tests/fuzz_checks/`, which `tests/fuzz_corpus.rs` also replays.
#![no_main]

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_scenario(data));
