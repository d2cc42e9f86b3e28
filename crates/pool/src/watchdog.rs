//! The blocked-job detector's watchdog: one thread per pool, holding only a
//! `Weak` to its engine, that looks at every busy compute thread each
//! `blocked_check_interval` (see `detector.rs` for what it decides and why).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::detector::{clock, SiteStats, CPU_DIVISOR, WARN_EVERY};
use crate::engine::Engine;

/// The watchdog's memory of one slot's current job.
#[derive(Clone, Copy, Default)]
struct Seen {
    /// The job (its `started_ns`); 0: none.
    started_ns: u64,
    /// Where its observation window began: wall ns, CPU ns.
    wall_ns: u64,
    cpu_ns: u64,
    /// Time spent runnable but waiting for a CPU, ns (0 if unknown).
    delay_ns: u64,
    blocked: bool,
}

/// Starts the pool's watchdog thread, if the detector is on.
pub(crate) fn start_watchdog(engine: &Arc<Engine>) {
    let Some(interval) = engine.config.blocked_check_interval else {
        return;
    };
    if !engine.detector.on {
        return;
    }
    let weak: Weak<Engine> = Arc::downgrade(engine);
    let name = format!("{}-watchdog", engine.config.thread_name_prefix);
    // No thread: no detector; the pool works all the same.
    let _ = std::thread::Builder::new()
        .name(name)
        .stack_size(256 << 10)
        .spawn(move || watch(weak, interval));
}

/// The watchdog's loop: exits once the engine is gone.
fn watch(engine: Weak<Engine>, interval: Duration) {
    let mut seen: Vec<Seen> = Vec::new();
    let mut starved = false;
    loop {
        std::thread::sleep(interval);
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if seen.len() != engine.detector.slots.len() {
            seen = vec![Seen::default(); engine.detector.slots.len()];
        }
        // A panic here (say from a tracing subscriber) must not end the
        // process or the watchdog: contained, and the next tick goes on.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&engine, &mut seen, &mut starved)
        }));
        if checked.is_err() {
            engine.metrics.record_escaped_panic();
        }
    }
}

/// One look at every slot. See the module docs.
fn check(engine: &Engine, seen: &mut [Seen], starved: &mut bool) {
    let detector = &engine.detector;
    let now = engine.nanos_since_epoch(Instant::now());
    let mut blocked_threads = 0;
    for (slot, seen) in detector.slots.iter().zip(seen.iter_mut()) {
        // ORDERING: Acquire: pairs with `register`'s Release store.
        if !slot.registered.load(Ordering::Acquire) {
            continue;
        }
        // ORDERING: Acquire: pairs with `Slot::enter`'s Release store, so
        // `site` below is this job's.
        let started = slot.started_ns.load(Ordering::Acquire);
        if started == 0 {
            *seen = Seen::default();
            continue;
        }
        // ORDERING: Relaxed: ordered by the Acquire load above.
        let site = slot.site.load(Ordering::Relaxed);
        // ORDERING: Relaxed: ordered by the Acquire load of `registered`.
        let Some(cpu) = clock::read(slot.clock.load(Ordering::Relaxed)) else {
            continue;
        };
        // ORDERING: Relaxed: as above.
        let delay = clock::run_delay(slot.tid.load(Ordering::Relaxed)).unwrap_or(0);
        if seen.started_ns != started {
            *seen = Seen {
                started_ns: started,
                wall_ns: now,
                cpu_ns: cpu,
                delay_ns: delay,
                blocked: false,
            };
            continue;
        }
        if seen.blocked {
            blocked_threads += 1;
            continue;
        }
        let age = now.saturating_sub(started - 1);
        let window = now.saturating_sub(seen.wall_ns);
        if age < detector.threshold_ns || window < detector.threshold_ns {
            continue;
        }
        let used = cpu.saturating_sub(seen.cpu_ns);
        // A thread that waited for a CPU wanted one: on a loaded machine a
        // computing job may get little CPU, but it is not blocked.
        let wanted = used.saturating_add(delay.saturating_sub(seen.delay_ns));
        // ORDERING: Relaxed: as above.
        let tid = slot.tid.load(Ordering::Relaxed);
        // A runnable thread's wait for a CPU is only accounted once it gets
        // one: one runnable now is not blocked (a later look decides).
        if wanted.saturating_mul(CPU_DIVISOR) < window
            && !site.is_null()
            && !clock::is_runnable(tid)
        {
            seen.blocked = true;
            blocked_threads += 1;
            engine.metrics.record_blocked();
            // SAFETY: `site` was published with this job (Acquire above),
            // and every `SiteStats` lives as long as the engine we hold.
            let site = unsafe { &*site };
            // ORDERING: Relaxed: an independent tally.
            site.blocked.fetch_add(1, Ordering::Relaxed);
            warn_blocked(
                engine,
                site,
                now,
                age,
                cpu.saturating_sub(seen.cpu_ns),
                window,
            );
        } else {
            // It computes: watch a fresh window, in case it blocks later.
            seen.wall_ns = now;
            seen.cpu_ns = cpu;
            seen.delay_ns = delay;
        }
    }
    let waiting =
        engine.queue.waiting(crate::Priority::High) + engine.queue.waiting(crate::Priority::Low);
    let now_starved = blocked_threads == detector.slots.len() && waiting > 0;
    if now_starved && !*starved {
        engine.metrics.record_starved();
        #[cfg(feature = "tracing")]
        tracing::error!(
            pool = %engine.config.thread_name_prefix,
            threads = detector.slots.len(),
            waiting,
            "compute pool starved: every compute thread is in a blocked job while jobs wait"
        );
    }
    if !now_starved && *starved {
        #[cfg(feature = "tracing")]
        tracing::info!(
            pool = %engine.config.thread_name_prefix,
            "compute pool no longer starved: a compute thread is free"
        );
    }
    if now_starved != *starved {
        engine.metrics.set_starved(now_starved);
        *starved = now_starved;
    }
}

/// The warning for a blocked job of `site`, unless one was given within
/// [`WARN_EVERY`].
#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
fn warn_blocked(engine: &Engine, site: &SiteStats, now: u64, age: u64, cpu: u64, window: u64) {
    // ORDERING: Relaxed: written by this (the watchdog) thread only.
    let last = site.warned_ns.load(Ordering::Relaxed);
    let every = u64::try_from(WARN_EVERY.as_nanos()).unwrap_or(u64::MAX);
    if last != 0 && now.saturating_sub(last - 1) < every {
        return;
    }
    // ORDERING: Relaxed: as above.
    site.warned_ns.store(now + 1, Ordering::Relaxed);
    #[cfg(feature = "tracing")]
    tracing::warn!(
        pool = %engine.config.thread_name_prefix,
        site = %format_args!("{}:{}", site.location.file(), site.location.line()),
        wall_ms = age / 1_000_000,
        window_ms = window / 1_000_000,
        cpu_ms = cpu / 1_000_000,
        "a compute job holds its thread without using CPU (blocked on a lock, channel, sleep or I/O?)"
    );
}
