//! `Runners` outside loom: what the loom models cannot show (a panic in the
//! caller's queue check, a timeout too far off to count).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use compute_bridge::Runners;

#[test]
fn a_doze_that_unwinds_leaves_no_mark_behind() {
    let runners = Runners::new(2);
    assert!(
        runners.after_push(|| false),
        "the first job starts a runner"
    );
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        runners.doze(Duration::from_secs(600), || panic!("the caller's queue"))
    }));
    assert!(unwound.is_err());
    assert!(!runners.dozing(), "the doze mark is cleared");
    assert!(
        runners.after_push(|| false),
        "not idle either: a queued job with fewer than the most runners starts one"
    );
}

#[test]
fn a_timeout_too_far_off_to_count_is_none() {
    let runners = Runners::new(2);
    assert!(runners.after_push(|| false));
    assert!(
        runners.doze(Duration::MAX, || false),
        "a job is waiting: no sleep, and no overflow"
    );
    assert!(!runners.dozing());
}
