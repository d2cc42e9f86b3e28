//! One loom model per race the channel must handle (races 1 to 8 of the
//! list in `docs/bridge.md`, "The races, and the guard each model checks"),
//! three for the run queue's runner count (`Runners`): race 9, a runner
//! retiring as a job is pushed (a runner started by a push, and one claimed
//! with its job in hand), and race 10, a runner dozing as a job is pushed;
//! and one for the pool's ledger: race 11, a job admitted while the pool
//! closes.
//!
//! A lost wakeup makes the polling thread park forever, which loom reports as
//! a deadlock; a value or waker dropped twice or never shows up in the
//! `Tracked` and `CountingWaker` counts; an unsynchronised access to a
//! cell is reported by loom's `UnsafeCell` itself.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p loom-tests --release`
#![cfg(loom)]

// ORDERING: the atomics in this file are test bookkeeping (counters and
// flags). Each is read only after the threads or tasks that write it have been
// joined or awaited, or is polled until it reaches a value; the orderings used
// (SeqCst unless a comment says otherwise) are stronger than that needs.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use compute_bridge::{channel, Closed, Receiver, RecvError, Runners, Spin};
use loom::sync::atomic::{
    AtomicUsize,
    Ordering::{AcqRel, Acquire, Release, SeqCst},
};
use loom::sync::Arc;
use loom::thread;
use loom_tests::{quiet_deliberate_panics, CountingWaker, Tracked};

fn poll_once<T>(rx: &mut Receiver<T>, waker: &Waker) -> Poll<Result<T, RecvError>> {
    Pin::new(rx).poll(&mut Context::from_waker(waker))
}

/// Polls with `waker` (which must unpark this thread) until ready, parking
/// between polls. A wakeup the channel loses parks this thread forever.
fn block_on<T>(rx: &mut Receiver<T>, waker: &Waker) -> Result<T, RecvError> {
    loop {
        match poll_once(rx, waker) {
            Poll::Ready(result) => return result,
            Poll::Pending => thread::park(),
        }
    }
}

fn drop_counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Race 1: the send races the receiver's first poll (waker registration).
#[test]
fn race1_send_vs_first_poll() {
    loom::model(|| {
        let drops = drop_counter();
        let (tx, mut rx) = channel();
        let sender = {
            let drops = drops.clone();
            thread::spawn(move || {
                assert!(tx.send(Tracked::new(7, &drops)).is_ok());
            })
        };
        let (waker, counts) = CountingWaker::new().unparking(thread::current()).build();
        let value = block_on(&mut rx, &waker).expect("the value arrives");
        assert_eq!(value.value, 7);
        sender.join().unwrap();
        drop((value, rx, waker));
        assert_eq!(drops.load(SeqCst), 1, "value dropped exactly once");
        counts.assert_all_dropped();
    });
}

/// Race 2: a re-poll with a *different* waker races the send; the newest
/// waker must be the one woken. The first waker does not unpark the polling
/// thread, so waking only the stale one deadlocks the model.
#[test]
fn race2_new_waker_vs_send() {
    loom::model(|| {
        let (tx, mut rx) = channel::<usize>();
        let (stale, stale_counts) = CountingWaker::new().build();
        assert!(poll_once(&mut rx, &stale).is_pending());

        let sender = thread::spawn(move || assert!(tx.send(42).is_ok()));
        let (fresh, fresh_counts) = CountingWaker::new().unparking(thread::current()).build();
        let second_poll_pending = match poll_once(&mut rx, &fresh) {
            Poll::Ready(v) => {
                assert_eq!(v, Ok(42));
                false
            }
            Poll::Pending => {
                assert_eq!(block_on(&mut rx, &fresh), Ok(42));
                true
            }
        };
        sender.join().unwrap();
        if second_poll_pending {
            assert!(fresh_counts.wakes() >= 1, "the newest waker was woken");
        }
        drop((rx, stale, fresh));
        stale_counts.assert_all_dropped();
        fresh_counts.assert_all_dropped();
    });
}

/// Race 3: the receiver is dropped while the send is in flight. The value is
/// dropped exactly once, on one side, and the memory stays valid for both.
#[test]
fn race3_receiver_drop_vs_send() {
    for polled_first in [false, true] {
        loom::model(move || {
            let drops = drop_counter();
            let (tx, mut rx) = channel();
            let (waker, counts) = CountingWaker::new().build();
            if polled_first {
                assert!(poll_once(&mut rx, &waker).is_pending());
            }
            let sender = {
                let drops = drops.clone();
                thread::spawn(move || {
                    // A refused value comes back and is dropped here.
                    let _ = tx.send(Tracked::new(1, &drops));
                })
            };
            drop(rx);
            sender.join().unwrap();
            assert_eq!(drops.load(SeqCst), 1, "value dropped exactly once");
            drop(waker);
            counts.assert_all_dropped();
        });
    }
}

/// Race 4: the sender is dropped without sending; the receiver resolves to
/// an error (and is woken if it was waiting) instead of hanging.
#[test]
fn race4_sender_dropped_without_send() {
    loom::model(|| {
        let (tx, mut rx) = channel::<usize>();
        let sender = thread::spawn(move || drop(tx));
        let (waker, counts) = CountingWaker::new().unparking(thread::current()).build();
        assert_eq!(block_on(&mut rx, &waker), Err(RecvError));
        sender.join().unwrap();
        drop((rx, waker));
        counts.assert_all_dropped();
    });
}

/// Race 5: the receiver is dropped before the job starts. The job sees it and
/// skips; exactly one side accounts for the job; the value (only made if the
/// job ran) is dropped exactly once.
#[test]
fn race5_cancellation_before_start() {
    loom::model(|| {
        let drops = drop_counter();
        let ran = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = channel();
        let job = {
            let (drops, ran) = (drops.clone(), ran.clone());
            thread::spawn(move || {
                if tx.try_start() {
                    ran.fetch_add(1, SeqCst);
                    let _ = tx.send(Tracked::new(5, &drops));
                }
            })
        };
        let closed = rx.close();
        job.join().unwrap();
        let ran = ran.load(SeqCst);
        match closed {
            Closed::BeforeStart => assert_eq!(ran, 0, "a job cancelled before start never runs"),
            Closed::WhileRunning | Closed::AfterCompletion => assert_eq!(ran, 1),
        }
        assert_eq!(
            drops.load(SeqCst),
            ran,
            "value dropped exactly once if made"
        );
    });
}

/// Race 6: a blocking wait (with and without a spin) races the send: the
/// unpark must come after the value is published, and must not be lost.
#[test]
fn race6_blocking_wait_vs_send() {
    for spin in [Spin::OFF, Spin::iterations(1)] {
        loom::model(move || {
            let drops = drop_counter();
            let (tx, rx) = channel();
            let sender = {
                let drops = drops.clone();
                thread::spawn(move || assert!(tx.send(Tracked::new(9, &drops)).is_ok()))
            };
            let value = rx.recv_blocking_with(spin).expect("the value arrives");
            assert_eq!(value.value, 9);
            sender.join().unwrap();
            drop(value);
            assert_eq!(drops.load(SeqCst), 1);
        });
    }
}

/// Race 7: spurious wakes and repeated polls. A repeated poll with the same
/// waker neither clones it again nor loses it; a spurious unpark of a blocked
/// thread makes it re-check, not return early; no waker leaks or is dropped twice.
#[test]
fn race7_spurious_wakes_and_waker_counts() {
    loom::model(|| {
        let (tx, mut rx) = channel::<usize>();
        let (waker, counts) = CountingWaker::new().unparking(thread::current()).build();
        let first = poll_once(&mut rx, &waker);
        assert!(first.is_pending());
        let sender = thread::spawn(move || assert!(tx.send(3).is_ok()));
        // A spurious re-poll with an equivalent waker (a clone) racing the send.
        let same = waker.clone();
        let result = match poll_once(&mut rx, &same) {
            Poll::Ready(v) => v,
            Poll::Pending => block_on(&mut rx, &waker),
        };
        assert_eq!(result, Ok(3));
        sender.join().unwrap();
        // One clone stored by the first poll, one made above: no more.
        assert_eq!(counts.clones(), 2, "a repeated poll must not clone again");
        drop((rx, waker, same));
        counts.assert_all_dropped();
    });

    // A blocked thread unparked spuriously by a third party keeps waiting.
    loom::model(|| {
        let (tx, rx) = channel::<usize>();
        let waiter = thread::spawn(move || rx.recv_blocking_with(Spin::OFF));
        let noise = {
            let target = waiter.thread().clone();
            thread::spawn(move || target.unpark())
        };
        assert!(tx.send(11).is_ok());
        assert_eq!(waiter.join().unwrap(), Ok(11));
        noise.join().unwrap();
    });
}

/// Race 8: a waker whose `clone` or `wake` panics must not corrupt the slot:
/// the value still arrives exactly once and no waker leaks.
#[test]
fn race8_panicking_waker() {
    quiet_deliberate_panics();
    // `clone` panics during registration, racing the send.
    loom::model(|| {
        let drops = drop_counter();
        let (tx, mut rx) = channel();
        let sender = {
            let drops = drops.clone();
            thread::spawn(move || assert!(tx.send(Tracked::new(2, &drops)).is_ok()))
        };
        let (bad, bad_counts) = CountingWaker::new().panicking_on_clone().build();
        let polled = catch_unwind(AssertUnwindSafe(|| poll_once(&mut rx, &bad).is_ready()));
        let value = match polled {
            Ok(true) => None, // the value was already there: taken without a clone
            Ok(false) => unreachable!("a pending poll must have cloned the waker"),
            Err(_) => {
                let (good, good_counts) = CountingWaker::new().unparking(thread::current()).build();
                let value = block_on(&mut rx, &good).expect("the value arrives");
                drop(good);
                Some((value, good_counts))
            }
        };
        sender.join().unwrap();
        if let Some((value, good_counts)) = value {
            assert_eq!(value.value, 2);
            drop(value);
            drop(rx);
            good_counts.assert_all_dropped();
        } else {
            drop(rx);
        }
        drop(bad);
        assert_eq!(drops.load(SeqCst), 1);
        bad_counts.assert_all_dropped();
    });

    // `wake` panics inside `send`: the panic reaches the sender, the value is
    // in place, and the receiver gets it on its next poll.
    loom::model(|| {
        let drops = drop_counter();
        let (tx, mut rx) = channel();
        let (bad, bad_counts) = CountingWaker::new().panicking_on_wake().build();
        assert!(poll_once(&mut rx, &bad).is_pending());
        let sender = {
            let drops = drops.clone();
            thread::spawn(move || {
                let sent = catch_unwind(AssertUnwindSafe(|| tx.send(Tracked::new(4, &drops))));
                assert!(sent.is_err(), "the waker's panic reaches the sender");
            })
        };
        sender.join().unwrap();
        assert_eq!(bad_counts.wakes(), 1);
        match poll_once(&mut rx, &bad) {
            Poll::Ready(Ok(value)) => assert_eq!(value.value, 4),
            other => panic!("expected the value, got {other:?}"),
        }
        drop((rx, bad));
        assert_eq!(drops.load(SeqCst), 1);
        bad_counts.assert_all_dropped();
    });
}

/// A queue of interchangeable jobs with acquire/release hand-off and no
/// stronger ordering of its own, so the model leans on `Runners`' fences
/// alone (a real queue may order more; this one must not hide a bug).
struct CountQueue {
    pushed: AtomicUsize,
    popped: AtomicUsize,
}

impl CountQueue {
    fn new() -> Arc<CountQueue> {
        Arc::new(CountQueue {
            pushed: AtomicUsize::new(0),
            popped: AtomicUsize::new(0),
        })
    }

    fn push(&self) {
        // ORDERING: Release: publishes the job to the popper's Acquire.
        self.pushed.fetch_add(1, Release);
    }

    fn pop(&self) -> bool {
        // ORDERING: Acquire pairs with `push`'s Release.
        let mut popped = self.popped.load(Acquire);
        loop {
            // ORDERING: Acquire, as above.
            if popped >= self.pushed.load(Acquire) {
                return false;
            }
            // ORDERING: AcqRel: one popper per job.
            match self
                .popped
                .compare_exchange(popped, popped + 1, AcqRel, Acquire)
            {
                Ok(_) => return true,
                Err(now) => popped = now,
            }
        }
    }

    fn is_empty(&self) -> bool {
        // ORDERING: Acquire, as in `pop`.
        self.popped.load(Acquire) >= self.pushed.load(Acquire)
    }
}

/// A runner as the pool runs one: drain, look once more while idle, retire.
fn run_jobs(queue: &CountQueue, runners: &Runners, ran: &AtomicUsize) {
    loop {
        while queue.pop() {
            ran.fetch_add(1, SeqCst);
        }
        runners.idle();
        let more = !queue.is_empty();
        runners.busy();
        if more {
            continue;
        }
        if runners.retire(|| queue.is_empty()) {
            return;
        }
    }
}

/// The body of a model's runner: `run_jobs` or `run_jobs_dozing`.
type RunnerBody = fn(&CountQueue, &Runners, &AtomicUsize);

fn spawn_runner(
    body: RunnerBody,
    queue: &Arc<CountQueue>,
    runners: &Arc<Runners>,
    ran: &Arc<AtomicUsize>,
) -> thread::JoinHandle<()> {
    let (queue, runners, ran) = (queue.clone(), runners.clone(), ran.clone());
    thread::spawn(move || body(&queue, &runners, &ran))
}

/// A submitter: pushes a job and, if told to, starts a runner (and waits
/// for it, so the model joins every thread).
fn push_job(
    body: RunnerBody,
    queue: &Arc<CountQueue>,
    runners: &Arc<Runners>,
    ran: &Arc<AtomicUsize>,
) {
    queue.push();
    if runners.after_push(|| queue.is_empty()) {
        spawn_runner(body, queue, runners, ran).join().unwrap();
    }
}

/// With every thread of a race 9 model joined: both jobs ran, none is left,
/// no runner is still counted.
fn assert_both_jobs_ran(queue: &CountQueue, runners: &Runners, ran: &AtomicUsize) {
    assert_eq!(ran.load(SeqCst), 2, "a job was left in the queue");
    assert!(queue.is_empty());
    assert_eq!(runners.alive(), 0, "every runner retired");
}

/// A job is pushed while the only runner, started for a first job, runs
/// `body` to its end: whatever the interleaving, both jobs run and every
/// runner retires.
fn a_job_arrives_as_the_runner_finishes(body: RunnerBody) {
    let queue = CountQueue::new();
    let runners = Arc::new(Runners::new(1));
    let ran = Arc::new(AtomicUsize::new(0));

    queue.push();
    assert!(
        runners.after_push(|| queue.is_empty()),
        "the first job starts a runner"
    );
    let first = spawn_runner(body, &queue, &runners, &ran);
    let submitter = {
        let (queue, runners, ran) = (queue.clone(), runners.clone(), ran.clone());
        thread::spawn(move || push_job(body, &queue, &runners, &ran))
    };
    first.join().unwrap();
    submitter.join().unwrap();
    assert_both_jobs_ran(&queue, &runners, &ran);
}

/// Race 9: a job is pushed while the only runner drains, idles and
/// retires. Whatever the interleaving, some runner runs it: a stranded job
/// shows as `ran == 1` with every thread finished.
#[test]
fn race9_runner_retires_while_a_job_arrives() {
    loom::model(|| a_job_arrives_as_the_runner_finishes(run_jobs));
}

/// Race 9 with a claimed runner: the first runner is claimed and starts
/// with its job in hand (nothing queued); a second job either claims a
/// runner of its own (if the first already retired) or is pushed as the
/// first one retires. Either way both jobs run and every runner retires.
#[test]
fn race9_claimed_runner_retires_while_a_job_arrives() {
    loom::model(|| {
        let queue = CountQueue::new();
        let runners = Arc::new(Runners::new(1));
        let ran = Arc::new(AtomicUsize::new(0));

        let start_with_job =
            |queue: &Arc<CountQueue>, runners: &Arc<Runners>, ran: &Arc<AtomicUsize>| {
                let (queue, runners, ran) = (queue.clone(), runners.clone(), ran.clone());
                thread::spawn(move || {
                    ran.fetch_add(1, SeqCst);
                    run_jobs(&queue, &runners, &ran);
                })
            };
        assert!(runners.claim(), "no runner yet: claim one");
        let first = start_with_job(&queue, &runners, &ran);

        let submitter = {
            let (queue, runners, ran) = (queue.clone(), runners.clone(), ran.clone());
            thread::spawn(move || {
                if runners.claim() {
                    start_with_job(&queue, &runners, &ran).join().unwrap();
                } else {
                    push_job(run_jobs, &queue, &runners, &ran);
                }
            })
        };
        first.join().unwrap();
        submitter.join().unwrap();
        assert_both_jobs_ran(&queue, &runners, &ran);
    });
}

/// A runner that dozes once, if a job is still to come, before it retires.
fn run_jobs_dozing(queue: &CountQueue, runners: &Runners, ran: &AtomicUsize) {
    let mut dozed = false;
    loop {
        while queue.pop() {
            ran.fetch_add(1, SeqCst);
        }
        // Loom never times a wait out: dozing with no job to come would
        // hang the model, which is how a lost wake-up shows.
        if !dozed && ran.load(SeqCst) < 2 {
            dozed = true;
            if runners.doze(Duration::from_secs(3600), || queue.is_empty()) {
                continue;
            }
        }
        if runners.retire(|| queue.is_empty()) {
            return;
        }
    }
}

/// Race 10: the only runner dozes (asleep, still counted) as a job is
/// pushed. The submitter sees it idle and starts no runner, so it must wake
/// it: a lost wake-up leaves the runner asleep and the model deadlocks.
#[test]
fn race10_runner_dozes_while_a_job_arrives() {
    loom::model(|| a_job_arrives_as_the_runner_finishes(run_jobs_dozing));
}

/// Race 11, the pool's ledger: a job admitted while the pool closes. The
/// closer then reads the ledger (as shutdown does before it reports the pool
/// idle); if the submitter's admission succeeded, the closer must see it.
/// (`Ledger` is the pool's own, built on loom's atomics under `cfg(loom)`.)
#[test]
fn race11_a_job_admitted_while_the_pool_closes_is_seen_by_the_closer() {
    use compute_pool::ledger::{Ledger, Room};
    loom::model(|| {
        let ledger = Arc::new(Ledger::new(None, None));
        let submitter = {
            let ledger = ledger.clone();
            thread::spawn(move || ledger.admit(Room::Any).ok().map(|(ticket, _)| ticket))
        };
        ledger.close();
        let idle = ledger.active() == 0;
        if let Some(ticket) = submitter.join().unwrap() {
            assert!(
                !idle,
                "shutdown found the pool idle while a job was admitted"
            );
            ticket.cancel(&ledger);
        } else {
            assert_eq!(ledger.counts().refused + ledger.counts().cancelled, 1);
        }
        assert_eq!(ledger.active(), 0);
    });
}
