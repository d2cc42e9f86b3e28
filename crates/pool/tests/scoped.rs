//! `execute_scoped` and `execute_scoped_fifo`: dynamic task spawning.

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use support::{count_primes, pool, within};

#[tokio::test]
async fn every_spawned_task_finishes_before_the_handle_resolves() {
    let pool = pool(2);
    let done = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(Mutex::new(vec![0usize; 32]));
    let (d, r) = (done.clone(), results.clone());
    within(pool.execute_scoped(move |scope| {
        for i in 0..32 {
            let (d, r) = (d.clone(), r.clone());
            scope.spawn(move |_| {
                let n = count_primes(1000 + i as u32 * 10);
                r.lock().unwrap()[i] = n;
                d.fetch_add(1, Ordering::SeqCst);
            });
        }
    }))
    .await
    .unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 32);
    let results = results.lock().unwrap();
    for (i, n) in results.iter().enumerate() {
        assert_eq!(*n, count_primes(1000 + i as u32 * 10));
    }
}

#[tokio::test]
async fn nested_spawns_and_return_value() {
    let pool = pool(2);
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let value = within(pool.execute_scoped(move |scope| {
        for _ in 0..4 {
            let c = c.clone();
            scope.spawn(move |s2| {
                for _ in 0..4 {
                    let c = c.clone();
                    s2.spawn(move |_| {
                        c.fetch_add(1, Ordering::SeqCst);
                    });
                }
            });
        }
        "body done"
    }))
    .await
    .unwrap();
    assert_eq!(value, "body done");
    assert_eq!(counter.load(Ordering::SeqCst), 16);
}

#[tokio::test]
async fn a_panicking_spawned_task_gives_panicked() {
    let pool = pool(2);
    let err = within(pool.execute_scoped(|scope| {
        scope.spawn(|_| panic!("inside scope.spawn"));
        scope.spawn(|_| {});
    }))
    .await
    .unwrap_err();
    assert!(err.is_panic());
    assert!(err.to_string().contains("inside scope.spawn"), "{err}");
    assert_eq!(pool.metrics().tasks_panicked(), 1);
    assert_eq!(pool.metrics().escaped_panics(), 0);
    assert_eq!(within(pool.execute(|| 1)).await.unwrap(), 1);
}

#[tokio::test]
async fn fifo_scope_starts_tasks_in_spawn_order() {
    let pool = pool(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let o = order.clone();
    within(pool.execute_scoped_fifo(move |scope| {
        for i in 0..10 {
            let o = o.clone();
            scope.spawn_fifo(move |_| o.lock().unwrap().push(i));
        }
    }))
    .await
    .unwrap();
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test]
async fn scope_borrowing_inside_install() {
    // The embedding pattern of `docs/guide.md` (pattern 3): tasks write
    // disjoint locals, read after the scope.
    let pool = pool(2);
    let out = within(pool.install(|| {
        let (mut text, mut context) = (None, None);
        rayon::scope(|s| {
            let (t, c) = (&mut text, &mut context);
            s.spawn(move |_| *t = Some(count_primes(2000)));
            s.spawn(move |_| *c = Some(count_primes(3000)));
        });
        text.unwrap() + context.unwrap()
    }))
    .await
    .unwrap();
    assert_eq!(out, count_primes(2000) + count_primes(3000));
}
