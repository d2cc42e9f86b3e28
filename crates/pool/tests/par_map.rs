//! `par_map` and `parallel_batch`: parallel maps that keep order.

mod support;

use compute_pool::ComputeError;
use support::{count_primes, pool, within};

#[tokio::test]
async fn keeps_order() {
    let pool = pool(2);
    let items: Vec<u32> = (0..100_000).collect();
    let out = within(pool.par_map(items, |x| u64::from(x) * 3))
        .await
        .unwrap();
    assert_eq!(out.len(), 100_000);
    assert!(out.iter().enumerate().all(|(i, &v)| v == i as u64 * 3));
}

#[tokio::test]
async fn empty_input() {
    let pool = pool(1);
    let out: Vec<u8> = within(pool.par_map(Vec::<u8>::new(), |x| x)).await.unwrap();
    assert!(out.is_empty());
}

#[tokio::test]
async fn owned_items_and_real_work() {
    let pool = pool(2);
    let texts: Vec<String> = (0..200).map(|i| "ab ".repeat(i)).collect();
    let counts = within(pool.par_map(texts.clone(), |t| t.split_whitespace().count()))
        .await
        .unwrap();
    assert_eq!(counts, (0..200).collect::<Vec<usize>>());
    let primes = within(pool.par_map(vec![100u32, 1000, 10_000], count_primes))
        .await
        .unwrap();
    assert_eq!(primes, vec![25, 168, 1229]);
}

#[tokio::test]
async fn a_panicking_item_gives_panicked() {
    let pool = pool(2);
    let err = within(pool.par_map((0..1000).collect::<Vec<u32>>(), |x| {
        assert!(x != 777, "item 777");
        x
    }))
    .await
    .unwrap_err();
    assert!(err.is_panic());
    assert_eq!(pool.metrics().tasks_active(), 0);
}

#[tokio::test]
async fn parallel_batch_flattens_in_order() {
    let pool = pool(2);
    let items: Vec<u32> = (0..1003).collect();
    let out = within(pool.parallel_batch(items, 10, |chunk: &[u32]| {
        assert!(chunk.len() <= 10);
        chunk.iter().map(|x| x + 1).collect::<Vec<_>>()
    }))
    .await
    .unwrap();
    assert_eq!(out, (1..1004).collect::<Vec<u32>>());
}

#[tokio::test]
async fn parallel_batch_outputs_may_differ_in_length() {
    let pool = pool(2);
    let out =
        within(pool.parallel_batch((0..10u8).collect(), 3, |chunk: &[u8]| vec![chunk.len(); 1]))
            .await
            .unwrap();
    assert_eq!(out, vec![3, 3, 3, 1]);
    let out = within(pool.parallel_batch(vec![1, 2, 3], 100, |c: &[i32]| c.to_vec()))
        .await
        .unwrap();
    assert_eq!(out, vec![1, 2, 3]);
}

#[tokio::test]
async fn zero_batch_size_is_an_error_naming_the_argument() {
    let pool = pool(1);
    let err = within(pool.parallel_batch(vec![1, 2], 0, |c: &[i32]| c.to_vec()))
        .await
        .unwrap_err();
    match &err {
        ComputeError::InvalidArgument(arg) => {
            assert_eq!(arg.name, "batch_size");
            assert_eq!(arg.value, "0");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("batch_size = 0"), "{err}");
    assert_eq!(pool.metrics().tasks_total(), 0);
}
