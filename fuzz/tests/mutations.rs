//! CI's brief fuzzing of every target without AFL++: each target's corpus,
//! mutated by a seeded generator (bit flips, byte changes, inserts,
//! deletions, truncations, splices with another seed, length-prefix
//! changes), must never panic.
//!
//! Not coverage-guided, so it finds less than `fuzz/run.sh`; it runs in
//! `cargo test --workspace` on every machine in seconds, and the seed makes
//! a failure reproducible. `FUZZ_SMOKE_EXECS` sets the executions per
//! target (default 3,000); `FUZZ_SMOKE_SEED` the seed (default fixed, so
//! CI is repeatable; set another to explore); `FUZZ_SMOKE_TARGETS` a
//! comma-separated list of the targets to run (default all).

use std::path::{Path, PathBuf};

/// xorshift64*: enough to pick mutations, and reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        (self.next() % n as u64) as usize
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("corpus file"))
        .collect()
}

/// One to four stacked mutations of `input`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = v.len();
        match rng.below(7) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)];
            }
            2 => {
                let i = rng.below(len + 1);
                v.insert(i, rng.next() as u8);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                v.drain(i..i + n);
            }
            4 => v.truncate(rng.below(len + 1)),
            5 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            // A protobuf length or a frame prefix made huge or zero.
            _ if len >= 4 => {
                let i = rng.below(len - 3);
                let value: u32 = [0, u32::MAX, 0x7fff_ffff, 1 << 22][rng.below(4)];
                v[i..i + 4].copy_from_slice(&value.to_be_bytes());
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v
}

/// Runs `execs` mutations of `seeds` through `target`; the first input
/// that panics, if any.
fn smoke(
    target: agora_fuzz::Target,
    seeds: &[Vec<u8>],
    execs: usize,
    seed: u64,
) -> Option<Vec<u8>> {
    let mut rng = Rng(seed | 1);
    for _ in 0..execs {
        let input = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let data = mutate(&mut rng, input, other);
        if std::panic::catch_unwind(|| target(&data)).is_err() {
            return Some(data);
        }
    }
    None
}

#[test]
fn mutated_corpus_never_panics_any_target() {
    let execs: usize = std::env::var("FUZZ_SMOKE_EXECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3_000);
    let seed: u64 = std::env::var("FUZZ_SMOKE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_a60a);
    let only = std::env::var("FUZZ_SMOKE_TARGETS").ok();
    let chosen = |name: &str| {
        only.as_ref()
            .is_none_or(|o| o.split(',').any(|t| t == name))
    };
    for (name, target) in agora_fuzz::TARGETS.iter().filter(|(n, _)| chosen(n)) {
        let seeds = corpus(name);
        assert!(!seeds.is_empty(), "no corpus for {name}");
        if let Some(data) = smoke(*target, &seeds, execs, seed ^ name.len() as u64) {
            panic!(
                "target {name} panicked (FUZZ_SMOKE_SEED={seed}) on {}",
                hex(&data)
            );
        }
    }
}

/// Negative control: a decoder with a planted bug (it panics on a
/// well-formed frame whose first byte was mutated to 0xff) is caught
/// within the default budget.
#[test]
fn the_smoke_run_catches_a_planted_panic() {
    fn planted(data: &[u8]) {
        assert!(!(data.len() > 4 && data[0] == 0xff), "planted bug");
    }
    let seeds = corpus("wire");
    assert!(smoke(planted, &seeds, 3_000, 0x5eed_a60a).is_some());
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}
