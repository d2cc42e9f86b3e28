//! Rayon's global pool is never created: after every method has been used,
//! `build_global` still succeeds. (Its own test binary, so nothing else in
//! the process touched the global pool.)

mod support;

use std::time::Duration;

use rayon::prelude::*;
use support::{pool, within};

#[tokio::test]
async fn every_method_leaves_the_global_pool_alone() {
    let pool = pool(2);
    within(pool.execute(|| (0..100).into_par_iter().sum::<i32>()))
        .await
        .unwrap();
    within(pool.install(|| (0..100).into_par_iter().sum::<i32>()))
        .await
        .unwrap();
    within(pool.execute_cancellable(|t| t.is_cancelled()))
        .await
        .unwrap();
    within(pool.execute_scoped(|s| s.spawn(|_| {})))
        .await
        .unwrap();
    within(pool.execute_scoped_fifo(|s| s.spawn_fifo(|_| {})))
        .await
        .unwrap();
    within(pool.join(|| rayon::join(|| 1, || 2), || 3))
        .await
        .unwrap();
    within(pool.par_map((0..1000).collect(), |x: i32| x + 1))
        .await
        .unwrap();
    within(pool.parallel_batch((0..1000).collect(), 7, |c: &[i32]| c.to_vec()))
        .await
        .unwrap();
    pool.execute_sync(|| (0..100).into_par_iter().sum::<i32>())
        .unwrap();
    within(pool.try_execute(|| 1).unwrap()).await.unwrap();
    let _ = within(pool.execute(|| -> () { panic!("x") })).await;
    drop(pool.execute(|| ()));
    let _ = pool.metrics().to_string();
    let p = pool.clone();
    within(pool.execute(move || p.execute_sync(|| 1).unwrap()))
        .await
        .unwrap();
    let _ = compute_pool::current();
    assert!(within(pool.shutdown(Duration::from_secs(10))).await);
    drop(pool);

    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global()
        .expect("the global pool was never initialised by compute-pool");
}
