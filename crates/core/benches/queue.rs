//! Choosing the next job to launch with 100,000 jobs queued (issue 5: <= 50 us), against the
//! plainest ordered structure in the same run: `BTreeSet::first` on the same keys. Also the
//! cost of adding and removing a job, and the next job when the first 1,000 do not fit.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use cryowarden_core::jobs::{QueueIndex, QueuedJob};
use rand::{Rng, SeedableRng};

const JOBS: i64 = 100_000;
const RUNS: usize = 100_000;

fn main() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut index = QueueIndex::new();
    let mut plain = BTreeSet::new();
    for job in 0..JOBS {
        let j = QueuedJob {
            priority: rng.random_range(0..=100),
            seq: job,
            job,
            lane: job % 4,
        };
        index.push(j);
        if j.lane == 0 {
            plain.insert((Reverse(j.priority), j.seq, j.job));
        }
    }
    println!("\n== {JOBS} jobs queued on 4 lanes ({RUNS} runs each, p50 / p99)");
    let (mut ours, mut base) = (Vec::with_capacity(RUNS), Vec::with_capacity(RUNS));
    for _ in 0..RUNS {
        let t = Instant::now();
        black_box(index.next(black_box(0), |_| true));
        ours.push(t.elapsed());
        let t = Instant::now();
        black_box(plain.first());
        base.push(t.elapsed());
    }
    let (o50, b50) = (pct(&mut ours, 50), pct(&mut base, 50));
    println!(
        "QueueIndex::next (first fits):       p50 {}  p99 {}",
        ns(o50),
        ns(pct(&mut ours, 99))
    );
    println!(
        "BTreeSet::first (baseline):          p50 {}  p99 {}",
        ns(b50),
        ns(pct(&mut base, 99))
    );
    println!(
        "ratio: {:.1}  (target: next <= 50 us)",
        o50.as_secs_f64() / b50.as_secs_f64().max(1e-9)
    );

    let blocked: BTreeSet<i64> = index.in_order(0).take(1000).map(|j| j.job).collect();
    let mut skip = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        black_box(index.next(0, |j| !blocked.contains(&j.job)));
        skip.push(t.elapsed());
    }
    println!(
        "next when the first 1,000 do not fit: p50 {}  p99 {}",
        ns(pct(&mut skip, 50)),
        ns(pct(&mut skip, 99))
    );

    let mut churn = Vec::with_capacity(RUNS);
    for i in 0..RUNS as i64 {
        let j = QueuedJob {
            priority: i % 101,
            seq: JOBS + i,
            job: JOBS + i,
            lane: i % 4,
        };
        let t = Instant::now();
        index.push(j);
        index.remove(j.job);
        churn.push(t.elapsed());
    }
    println!(
        "push + remove:                        p50 {}  p99 {}",
        ns(pct(&mut churn, 50)),
        ns(pct(&mut churn, 99))
    );
}

fn pct(v: &mut [Duration], p: usize) -> Duration {
    v.sort();
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn ns(d: Duration) -> String {
    format!("{:>8.0} ns", d.as_secs_f64() * 1e9)
}
