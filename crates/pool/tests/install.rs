//! `install`: parallel iterators inside the job use this pool.

mod support;

use compute_pool::{ComputeConfig, ComputePool};
use rayon::prelude::*;
use support::within;

fn named_pool(threads: usize, prefix: &str) -> ComputePool {
    ComputePool::new(ComputeConfig {
        num_threads: Some(threads),
        thread_name_prefix: prefix.into(),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn par_iter_inside_runs_on_this_pool() {
    let pool = named_pool(3, "inst");
    let data: Vec<u64> = (0..100_000).collect();
    let (sum, threads, names) = within(pool.install(move || {
        let sum: u64 = data.par_iter().map(|x| x * 2).sum();
        let names: Vec<String> = (0..64)
            .into_par_iter()
            .map(|_| std::thread::current().name().unwrap_or("?").to_owned())
            .collect();
        (sum, rayon::current_num_threads(), names)
    }))
    .await
    .unwrap();
    assert_eq!(sum, (0..100_000u64).map(|x| x * 2).sum());
    assert_eq!(threads, 3);
    assert!(names.iter().all(|n| n.starts_with("inst-")), "{names:?}");
}

#[tokio::test]
async fn par_chunks_transform_keeps_order() {
    let pool = named_pool(2, "chunks");
    let data: Vec<u32> = (0..10_000).collect();
    let chunks = within(pool.install(move || {
        data.par_chunks(100)
            .map(|c| c.iter().map(|&x| u64::from(x)).sum::<u64>())
            .collect::<Vec<_>>()
    }))
    .await
    .unwrap();
    assert_eq!(chunks.len(), 100);
    for (i, s) in chunks.iter().enumerate() {
        let lo = i as u64 * 100;
        assert_eq!(*s, (lo..lo + 100).sum::<u64>());
    }
}

#[tokio::test]
async fn install_panics_are_reported() {
    let pool = named_pool(2, "p");
    let err = within(pool.install(|| {
        (0..100).into_par_iter().for_each(|i| {
            if i == 42 {
                panic!("bad item {i}");
            }
        })
    }))
    .await
    .unwrap_err();
    assert!(err.is_panic());
    assert!(err.to_string().contains("bad item 42"), "{err}");
    // The pool still works.
    assert_eq!(within(pool.install(|| 5)).await.unwrap(), 5);
}
