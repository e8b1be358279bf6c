//! One whole height handled by n consensus cores in one process, for
//! n = 4, 16, 64, 100 (issue 12 item 4).
//!
//! Each iteration builds n fresh cores (outside the measurement: key
//! derivation is process start-up, not per-height work), then measures:
//! `StartHeight` on every core, the proposer's block template answered, its
//! proposal and every prevote and precommit encoded as the wire carries them
//! (`PeerMessage`), decoded by each receiving host and handed to its core, the
//! hosts' `ValidateBlock` answered "valid", until every core has emitted
//! `Decided`. Everything runs on one thread, so the time per height divided
//! by n is the CPU one validator spends on one height
//! ("CPU per validator-height"), printed as a table after the criterion lines.
//!
//! The time measured is the process's CPU time (criterion's custom timing),
//! so load from other processes does not inflate it.
//!
//! With `--features crypto-counters` and `HEIGHT_COUNTS_ONLY=1` the bench
//! instead runs one height per n and prints the cryptographic operations
//! per validator-height (the table in ARCHITECTURE.md).

#[path = "support/height_driver.rs"]
mod height_driver;

use criterion::{Criterion, criterion_group, criterion_main};
use height_driver::{Fixture, run_height};
use std::time::Duration;

const SIZES: [usize; 4] = [4, 16, 64, 100];

/// CPU time of this process, all threads (`CLOCK_PROCESS_CPUTIME_ID`), so
/// that load from other processes does not inflate the figures and work
/// blst hands to its thread pool is not missed. (It read
/// `/proc/self/task/*/schedstat` before, which a running thread updates only
/// at scheduler ticks: a 4-validator height, ~20 ms, came out in 4 ms steps.)
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusive out-parameter for the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn bench(c: &mut Criterion) {
    #[cfg(feature = "crypto-counters")]
    if std::env::var_os("HEIGHT_COUNTS_ONLY").is_some() {
        for n in SIZES {
            height_driver::print_counts(&Fixture::new(n));
        }
        return;
    }
    let mut g = c.benchmark_group("consensus_one_height_cpu");
    g.sample_size(10);
    g.warm_up_time(Duration::from_millis(200));
    g.measurement_time(Duration::from_secs(2));
    let mut summary = Vec::new();
    for n in SIZES {
        let f = Fixture::new(n);
        let mut samples: Vec<Duration> = Vec::new();
        g.bench_function(format!("n={n}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let mut net = f.cores();
                    let t0 = process_cpu();
                    let decided = run_height(&mut net);
                    let dt = process_cpu() - t0;
                    assert!(decided.is_some(), "n={n}: no common decision");
                    samples.push(dt);
                    total += dt;
                }
                total
            })
        });
        if !samples.is_empty() {
            samples.sort();
            summary.push((n, samples[samples.len() / 2]));
        }
    }
    g.finish();
    println!();
    println!("| n | ms CPU per height | ms CPU per validator-height |");
    println!("|---|---|---|");
    for (n, t) in summary {
        let ms = t.as_secs_f64() * 1e3;
        println!("| {n} | {ms:.1} | {:.2} |", ms / n as f64);
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
