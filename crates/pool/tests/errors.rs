//! `ComputeError`: what each variant says, and that it travels with `?`.

mod support;

use std::error::Error;
use std::time::Duration;

use compute_pool::{ArgumentError, ComputeError, ComputePool};
use support::{pool, within};

fn assert_error_traits<E: Error + Send + Sync + 'static>() {}

#[test]
fn is_send_sync_static_error() {
    assert_error_traits::<ComputeError>();
    assert_error_traits::<compute_pool::ConfigError>();
}

async fn uses_question_mark(pool: &ComputePool) -> Result<u32, Box<dyn Error + Send + Sync>> {
    let a = pool.execute(|| 20).await?;
    let b = pool.execute(|| 22).await?;
    Ok(a + b)
}

async fn fails_with_question_mark(pool: &ComputePool) -> Result<u32, Box<dyn Error + Send + Sync>> {
    let v = pool.execute(|| -> u32 { panic!("inner failure") }).await?;
    Ok(v)
}

#[tokio::test]
async fn question_mark_into_a_boxed_error() {
    let pool = pool(1);
    assert_eq!(within(uses_question_mark(&pool)).await.unwrap(), 42);
    let err = within(fails_with_question_mark(&pool)).await.unwrap_err();
    assert!(err.to_string().contains("inner failure"), "{err}");
    let err = err.downcast::<ComputeError>().unwrap();
    assert!(err.is_panic());
}

#[test]
fn display_says_what_happened() {
    let cases = [
        (ComputeError::Cancelled, "cancelled"),
        (ComputeError::Shutdown, "shut down"),
        (ComputeError::Saturated, "max_in_flight"),
        (ComputeError::Lost, "without reporting"),
        (
            ComputeError::InvalidArgument(Box::new(ArgumentError {
                name: "batch_size",
                value: "0".into(),
                reason: "must be at least 1",
            })),
            "batch_size = 0: must be at least 1",
        ),
    ];
    for (err, needle) in cases {
        assert!(err.to_string().contains(needle), "{err}");
        assert!(!err.is_panic());
        assert!(err.into_panic().is_none());
    }
}

#[tokio::test]
async fn predicates_match_the_variants() {
    let pool = pool(1);
    let mut h = pool.execute(|| 1);
    h.cancel();
    let cancelled = within(h).await.unwrap_err();
    assert!(cancelled.is_cancelled() && !cancelled.is_shutdown() && !cancelled.is_panic());
    let panicked = within(pool.execute(|| -> () { panic!("p") }))
        .await
        .unwrap_err();
    assert!(panicked.is_panic() && !panicked.is_cancelled());
    assert!(format!("{panicked:?}").contains("Panicked"));
    pool.shutdown_blocking(Duration::from_secs(5));
    let shut = within(pool.execute(|| 1)).await.unwrap_err();
    assert!(shut.is_shutdown() && !shut.is_cancelled());
}

#[test]
fn resume_unwind_of_a_non_panic_panics_with_its_message() {
    let caught = std::panic::catch_unwind(|| ComputeError::Saturated.resume_unwind()).unwrap_err();
    let msg = caught.downcast_ref::<String>().unwrap();
    assert!(msg.contains("saturated"), "{msg}");
}

#[test]
fn pool_and_handle_traits() {
    fn pool_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    fn handle_traits<T: Send + Unpin + std::fmt::Debug + 'static>() {}
    pool_traits::<ComputePool>();
    handle_traits::<compute_pool::TaskHandle<Vec<u8>>>();
    // Unpin even for a result that is not.
    handle_traits::<compute_pool::TaskHandle<std::marker::PhantomPinned>>();
}
