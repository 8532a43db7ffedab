//! The parsers never crash: a bounded run of the robustness property over
//! mutated seeds (the golden inputs, and the Istio corpus where it is
//! present). Parse, decode, validate, build the snapshot and compile: no
//! panic, no hang, every rejection located, every compiled set consistent.
//!
//! `BOWLINE_FUZZ_CASES` sets how many inputs to try (default 1,500) and
//! `BOWLINE_FUZZ_SEED` the first seed; longer runs belong to the cargo-fuzz
//! target in `pilot/core/fuzz` (see its README).

#[path = "fuzzing/mutate.rs"]
mod mutate;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use arbitrary::Unstructured;

/// Only guards against a hang: one input that takes longer is a bug.
const HANG: Duration = Duration::from_secs(60);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bytes that drive case `n`: reproducible from the seed alone.
fn case_bytes(seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let len = rng.usize(16..512);
    (0..len).map(|_| rng.u8(..)).collect()
}

#[test]
fn mutated_configs_never_crash_the_pipeline() {
    let seeds = mutate::seeds();
    let compat = mutate::compat_dir();
    if compat.is_dir() {
        println!(
            "robustness: seeds include the Istio corpus at {}",
            compat.display()
        );
    } else {
        println!(
            "robustness: Istio corpus not found at {} (set BOWLINE_COMPAT_DIR); seeding from the golden inputs only",
            compat.display()
        );
    }
    assert!(!seeds.is_empty(), "no seed inputs");
    let cases = env_u64("BOWLINE_FUZZ_CASES", 1_500);
    let first = env_u64("BOWLINE_FUZZ_SEED", 0);

    // The cases run on a worker so that a hang is reported, with its input,
    // rather than stalling the suite.
    let (tx, rx) = mpsc::channel::<(u64, String, Option<String>)>();
    let worker = std::thread::spawn(move || {
        for seed in first..first + cases {
            let bytes = case_bytes(seed);
            let mut u = Unstructured::new(&bytes);
            let Ok(text) = mutate::input(&seeds, &mut u) else {
                continue;
            };
            // Announce the input before running it, so a hang can name it.
            if tx.send((seed, text.clone(), None)).is_err() {
                return;
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| mutate::check(&text)));
            let failure = outcome.err().map(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".to_string())
            });
            if let Some(failure) = failure {
                let _ = tx.send((seed, text, Some(failure)));
                return;
            }
        }
    });

    let mut tried = 0u64;
    let mut current: Option<(u64, String)> = None;
    loop {
        match rx.recv_timeout(HANG) {
            Ok((seed, text, None)) => {
                tried += 1;
                current = Some((seed, text));
            }
            Ok((seed, text, Some(failure))) => {
                let saved = save(seed, &text);
                panic!(
                    "case {seed} breaks the pipeline: {failure}\ninput saved at {saved} (rerun with BOWLINE_FUZZ_SEED={seed} BOWLINE_FUZZ_CASES=1)"
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let (seed, text) = current.unwrap_or_default();
                let saved = save(seed, &text);
                panic!("case {seed} did not finish within {HANG:?}; input saved at {saved}");
            }
        }
    }
    worker.join().expect("the worker reports its panics");
    println!("robustness: {tried} mutated inputs, from seed {first}, went through the pipeline");
    assert!(
        tried > cases / 2,
        "only {tried} of {cases} cases produced an input"
    );
}

fn save(seed: u64, text: &str) -> String {
    let dir = std::env::temp_dir().join("bowline-robustness");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("case-{seed}.yaml"));
    let _ = std::fs::write(&path, text);
    path.display().to_string()
}
