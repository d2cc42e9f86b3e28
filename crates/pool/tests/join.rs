//! `join`: two closures in parallel on the pool.

mod support;

use support::{count_primes, pool, within};

#[tokio::test]
async fn both_sides_run_and_return() {
    let pool = pool(2);
    let (a, b) = within(pool.join(|| count_primes(5000), || "right".to_string()))
        .await
        .unwrap();
    assert_eq!(a, count_primes(5000));
    assert_eq!(b, "right");
}

#[tokio::test]
async fn both_sides_run_on_pool_threads() {
    let pool = pool(2);
    let (p1, p2) = (pool.clone(), pool.clone());
    let (a, b) = within(pool.join(move || p1.is_worker_thread(), move || p2.is_worker_thread()))
        .await
        .unwrap();
    assert!(a && b);
}

#[tokio::test]
async fn recursive_join_inside() {
    fn fib(n: u32) -> u64 {
        if n < 2 {
            return u64::from(n);
        }
        let (a, b) = rayon::join(|| fib(n - 1), || fib(n - 2));
        a + b
    }
    let pool = pool(2);
    let (a, b) = within(pool.join(|| fib(20), || fib(15))).await.unwrap();
    assert_eq!((a, b), (6765, 610));
}

#[tokio::test]
async fn a_panicking_side_gives_panicked() {
    let pool = pool(2);
    let err = within(pool.join(|| 1, || -> u8 { panic!("right side") }))
        .await
        .unwrap_err();
    assert!(err.is_panic());
    assert!(err.to_string().contains("right side"));
    assert_eq!(pool.metrics().tasks_active(), 0);
}
