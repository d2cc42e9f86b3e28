//! Calls into the pool from its own threads run inline and cannot deadlock.

mod support;

use rayon::prelude::*;
use support::{pool, within};

#[tokio::test]
async fn install_inside_a_job_of_a_one_thread_pool() {
    let pool = pool(1);
    let p = pool.clone();
    let out = within(pool.install(move || {
        let inner = p.install(|| (0..100u32).into_par_iter().sum::<u32>());
        assert!(inner.is_finished(), "ran inline: already resolved");
        futures::executor::block_on(inner).unwrap() + 1
    }))
    .await
    .unwrap();
    assert_eq!(out, 4951);
}

#[tokio::test]
async fn execute_sync_inside_a_job() {
    let pool = pool(1);
    let p = pool.clone();
    let out = within(pool.execute(move || {
        let data = [1u64, 2, 3];
        p.execute_sync(|| data.iter().sum::<u64>()).unwrap() * 10
    }))
    .await
    .unwrap();
    assert_eq!(out, 60);
}

#[tokio::test]
async fn every_async_method_nests() {
    let pool = pool(1);
    let p = pool.clone();
    let out = within(pool.execute(move || {
        use futures::executor::block_on as block;
        let a = block(p.execute(|| 1)).unwrap();
        let b = block(p.execute_scoped(|s| {
            s.spawn(|_| {});
            2
        }))
        .unwrap();
        let c = block(p.execute_scoped_fifo(|_| 3)).unwrap();
        let (d, e) = block(p.join(|| 4, || 5)).unwrap();
        let f: u32 = block(p.par_map(vec![6u32], |x| x)).unwrap()[0];
        let g = block(p.parallel_batch(vec![7u32], 1, |c: &[u32]| c.to_vec())).unwrap()[0];
        let h = block(p.execute_cancellable(|t| if t.is_cancelled() { 0 } else { 8 })).unwrap();
        let i = block(p.try_execute(|| 9).unwrap()).unwrap();
        a + b + c + d + e + f + g + h + i
    }))
    .await
    .unwrap();
    assert_eq!(out, 45);
    let m = pool.metrics();
    assert_eq!(
        m.tasks_completed(),
        9,
        "the outer job and eight nested calls"
    );
    assert_eq!(m.tasks_active(), 0);
}

#[tokio::test]
async fn nested_panics_are_contained_inline() {
    let pool = pool(1);
    let p = pool.clone();
    let out = within(pool.execute(move || {
        let err = p.execute_sync(|| -> u8 { panic!("nested") }).unwrap_err();
        err.is_panic()
    }))
    .await
    .unwrap();
    assert!(out);
    assert_eq!(pool.metrics().tasks_panicked(), 1);
}

#[tokio::test]
async fn deep_nesting_from_par_iter_workers() {
    let pool = pool(2);
    let p = pool.clone();
    let out = within(pool.install(move || {
        (0..16u64)
            .into_par_iter()
            .map(|i| p.execute_sync(|| i * i).unwrap())
            .sum::<u64>()
    }))
    .await
    .unwrap();
    assert_eq!(out, (0..16u64).map(|i| i * i).sum());
}

#[tokio::test]
async fn another_pool_from_inside_a_job_is_not_inline() {
    let outer = pool(1);
    let inner = pool(1);
    let i2 = inner.clone();
    let (on_inner, on_outer) = within(outer.execute(move || {
        let on_inner = i2.execute_sync({
            let i3 = i2.clone();
            move || i3.is_worker_thread()
        });
        (on_inner.unwrap(), i2.is_worker_thread())
    }))
    .await
    .unwrap();
    assert!(on_inner);
    assert!(!on_outer);
}
