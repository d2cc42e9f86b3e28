//! The adaptors that submit on their caller's behalf record the caller's
//! line as each job's call site, as `execute` does: `execute_adaptive`
//! (whether it runs a call inline or on the pool) and the stream adaptors
//! (every job of a stream carries the line that made the stream).

mod support;

use compute_pool::adaptive::WARMUP_CALLS;
use compute_pool::{CallSiteStats, ComputePool, ComputeStreamExt};
use futures::stream::{self, StreamExt};
use support::{pool, within};

/// The pool's one call site; fails naming them all if there are others.
fn only_site(pool: &ComputePool) -> CallSiteStats {
    let sites = pool.call_sites();
    assert_eq!(sites.len(), 1, "one call site expected: {sites:?}");
    sites[0].clone()
}

#[tokio::test]
async fn execute_adaptive_records_the_callers_line() {
    let pool = pool(1);
    // The warm-up calls go to the pool; the later ones may run inline.
    let calls = WARMUP_CALLS * 4;
    let line = line!() + 2;
    for i in 0..calls {
        let future = pool.execute_adaptive(move || i);
        assert_eq!(within(future).await.unwrap(), i);
    }
    let site = only_site(&pool);
    assert_eq!((site.file, site.line), (file!(), line));
    assert_eq!(site.jobs, calls);
}

#[tokio::test]
async fn compute_map_jobs_carry_the_line_that_made_the_stream() {
    let pool = pool(2);
    let line = line!() + 1;
    let mapped = stream::iter(0..50u32).compute_map(&pool, 4, |i| i * 2);
    let out: Vec<u32> = within(mapped.map(Result::unwrap).collect()).await;
    assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    let site = only_site(&pool);
    assert_eq!((site.file, site.line), (file!(), line));
    // Small items may share a job: at least one, at most one per item.
    assert!((1..=50).contains(&site.jobs), "{site:?}");
}

#[tokio::test]
async fn compute_map_unordered_jobs_carry_the_line_that_made_the_stream() {
    let pool = pool(2);
    let line = line!() + 1;
    let mapped = stream::iter(0..50u32).compute_map_unordered(&pool, 4, |i| i * 2);
    let mut out: Vec<u32> = within(mapped.map(Result::unwrap).collect()).await;
    out.sort_unstable();
    assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    let site = only_site(&pool);
    assert_eq!((site.file, site.line), (file!(), line));
    assert!((1..=50).contains(&site.jobs), "{site:?}");
}

#[test]
fn execute_adaptive_does_nothing_until_polled() {
    let pool = pool(1);
    let future = pool.execute_adaptive(|| 7);
    drop(future);
    assert_eq!(pool.metrics().tasks_total(), 0);
    assert!(pool.call_sites().is_empty());
}
