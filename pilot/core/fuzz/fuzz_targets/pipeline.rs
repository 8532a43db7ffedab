//! libFuzzer drives the same mutator and property as the bounded run in
//! `pilot/core/tests/robustness.rs`: a seed (golden input or Istio corpus file)
//! mutated by the fuzzer's bytes goes through the whole pipeline.

#![no_main]

#[path = "../../tests/fuzzing/mutate.rs"]
mod mutate;

use std::sync::OnceLock;

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

static SEEDS: OnceLock<Vec<(String, String)>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let seeds = SEEDS.get_or_init(mutate::seeds);
    let mut u = Unstructured::new(data);
    if let Ok(text) = mutate::input(seeds, &mut u) {
        mutate::check(&text);
    }
});
