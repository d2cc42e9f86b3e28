//! The blocked-job detector: a job that holds a compute thread without
//! using CPU is counted while it runs, its call site warned about, and a
//! pool whose every thread is so held while jobs wait is reported starved
//! until a thread frees up.

mod support;

use std::time::Duration;

use compute_pool::{ComputeConfig, ComputePool};
use support::watchdog;

/// A pool whose detector looks every 5 ms and calls 20 ms without CPU
/// blocked.
fn watched(threads: usize) -> ComputePool {
    ComputePool::new(watched_config(threads)).expect("a valid config")
}

/// The config of [`watched`].
fn watched_config(threads: usize) -> ComputeConfig {
    ComputeConfig {
        num_threads: Some(threads),
        blocked_check_interval: Some(Duration::from_millis(5)),
        blocked_threshold: Duration::from_millis(20),
        ..Default::default()
    }
}

#[test]
fn availability_is_decided_at_compile_time() {
    assert_eq!(
        ComputePool::blocked_detector_available(),
        cfg!(target_os = "linux")
    );
}

#[test]
fn per_call_site_statistics_count_the_jobs_of_each_site() {
    watchdog(|| {
        let pool = watched(2);
        let first = line!() + 2;
        for _ in 0..3 {
            futures::executor::block_on(pool.execute(|| 1)).unwrap();
        }
        let second = line!() + 1;
        pool.execute_sync(|| 2).unwrap();
        let sites = pool.call_sites();
        let of = |line| {
            sites
                .iter()
                .find(|s| s.line == line)
                .unwrap_or_else(|| panic!("no site at line {line}: {sites:?}"))
                .clone()
        };
        assert_eq!(of(first).jobs, 3);
        assert_eq!(of(first).file, file!());
        assert_eq!(of(second).jobs, 1);
        assert_eq!(sites.iter().map(|s| s.jobs).sum::<u64>(), 4);
    });
}

#[test]
fn the_detector_is_off_with_none() {
    watchdog(|| {
        let pool = ComputePool::new(ComputeConfig {
            num_threads: Some(1),
            blocked_check_interval: None,
            blocked_threshold: Duration::from_millis(1),
            ..Default::default()
        })
        .unwrap();
        pool.execute_sync(|| std::thread::sleep(Duration::from_millis(100)))
            .unwrap();
        assert_eq!(pool.metrics().blocked_tasks(), 0);
        assert!(!pool.is_starved());
    });
}

#[test]
fn a_zero_interval_or_threshold_is_refused() {
    for config in [
        ComputeConfig {
            blocked_check_interval: Some(Duration::ZERO),
            ..Default::default()
        },
        ComputeConfig {
            blocked_threshold: Duration::ZERO,
            ..Default::default()
        },
    ] {
        assert!(ComputePool::new(config).is_err());
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::{Duration, Instant};

    use compute_pool::{ComputeConfig, ComputePool};

    use super::{watched, watched_config};
    use crate::support::{wait_until, watchdog};

    #[test]
    fn a_sleeping_job_is_flagged_while_it_sleeps() {
        watchdog(|| {
            let pool = watched(2);
            let done = Arc::new(AtomicBool::new(false));
            let job = pool.execute({
                let done = Arc::clone(&done);
                move || {
                    while !done.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            });
            wait_until("the sleeping job is flagged", || {
                pool.metrics().blocked_tasks() == 1
            });
            done.store(true, Ordering::Relaxed);
            futures::executor::block_on(job).unwrap();
            assert_eq!(pool.metrics().blocked_tasks(), 1, "counted once");
        });
    }

    #[test]
    fn a_job_blocked_on_a_channel_is_flagged_before_release_and_its_site_counted() {
        watchdog(|| {
            let pool = watched(2);
            let (release, wait) = mpsc::channel::<()>();
            let line = line!() + 1;
            let job = pool.execute(move || wait.recv().unwrap());
            wait_until("the blocked job is flagged", || {
                pool.metrics().blocked_tasks() == 1
            });
            let site = pool
                .call_sites()
                .into_iter()
                .find(|s| s.line == line)
                .expect("the site is known");
            assert_eq!(site.blocked, 1);
            assert_eq!(site.jobs, 0, "still running");
            release.send(()).unwrap();
            futures::executor::block_on(job).unwrap();
        });
    }

    #[test]
    fn a_spinning_job_is_not_flagged() {
        watchdog(|| {
            let pool = watched(1);
            let job = pool.execute(|| {
                let until = Instant::now() + Duration::from_millis(300);
                let mut n = 0u64;
                while Instant::now() < until {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
                n
            });
            futures::executor::block_on(job).unwrap();
            // On a machine so loaded that the spinner gets under a tenth of
            // a CPU for a whole window it would be (rightly) flagged; the
            // tests' own load does not come close.
            assert_eq!(pool.metrics().blocked_tasks(), 0);
        });
    }

    #[test]
    fn starvation_is_reported_while_every_thread_is_blocked_and_clears() {
        for threads in [1, 2] {
            watchdog(move || {
                let pool = watched(threads);
                let (release, wait) = mpsc::channel::<()>();
                let wait = Arc::new(Mutex::new(wait));
                let (started_tx, started) = mpsc::channel::<()>();
                let blockers: Vec<_> = (0..threads)
                    .map(|_| {
                        let wait = Arc::clone(&wait);
                        let started_tx = started_tx.clone();
                        pool.execute(move || {
                            started_tx.send(()).unwrap();
                            // Each takes the lock only to receive its release.
                            let _ = wait.lock().unwrap().recv();
                        })
                    })
                    .collect();
                for _ in 0..threads {
                    started.recv_timeout(support_limit()).unwrap();
                }
                let waiting = pool.execute(|| 7);
                wait_until("the pool is reported starved", || pool.is_starved());
                assert_eq!(pool.metrics().starved_events(), 1);
                release.send(()).unwrap();
                wait_until("the starvation clears", || !pool.is_starved());
                for _ in 1..threads {
                    release.send(()).unwrap();
                }
                for blocker in blockers {
                    futures::executor::block_on(blocker).unwrap();
                }
                assert_eq!(futures::executor::block_on(waiting).unwrap(), 7);
                std::thread::sleep(Duration::from_millis(50));
                assert_eq!(pool.metrics().starved_events(), 1, "no new event");
                assert!(!pool.is_starved());
            });
        }
    }

    #[test]
    fn the_watchdog_thread_exits_when_the_pool_is_dropped() {
        watchdog(|| {
            let watchdogs = || {
                std::fs::read_dir("/proc/self/task")
                    .unwrap()
                    .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                    .filter(|name| name.trim() == "wdx-watchdog")
                    .count()
            };
            let pool = ComputePool::new(ComputeConfig {
                thread_name_prefix: "wdx".into(),
                ..watched_config(1)
            })
            .unwrap();
            pool.execute_sync(|| ()).unwrap();
            wait_until("the watchdog runs", || watchdogs() == 1);
            drop(pool);
            wait_until("the watchdog exits", || watchdogs() == 0);
        });
    }

    fn support_limit() -> Duration {
        crate::support::LIMIT
    }

    /// Every event's level and fields, from every thread (the warnings come
    /// from the watchdog thread, so the subscriber is global).
    #[cfg(feature = "tracing")]
    fn events() -> &'static Mutex<Vec<String>> {
        use tracing_subscriber::layer::{Context, SubscriberExt};
        use tracing_subscriber::Layer;

        struct Record;
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.push_str(&format!(" {}={:?}", field.name(), value));
            }
        }
        impl<S: tracing::Subscriber> Layer<S> for Record {
            fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
                let mut fields = Fields(format!("{}", event.metadata().level()));
                event.record(&mut fields);
                EVENTS
                    .get_or_init(Default::default)
                    .lock()
                    .unwrap()
                    .push(fields.0);
            }
        }
        static EVENTS: std::sync::OnceLock<Mutex<Vec<String>>> = std::sync::OnceLock::new();
        static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        INSTALLED.get_or_init(|| {
            let subscriber = tracing_subscriber::registry().with(Record);
            tracing::subscriber::set_global_default(subscriber).unwrap();
        });
        EVENTS.get_or_init(Default::default)
    }

    #[cfg(feature = "tracing")]
    #[test]
    fn the_warning_names_the_submitting_line_and_starvation_is_an_error() {
        watchdog(|| {
            let events = events();
            let pool = ComputePool::new(ComputeConfig {
                thread_name_prefix: "warned".into(),
                ..watched_config(1)
            })
            .unwrap();
            let (release, wait) = mpsc::channel::<()>();
            let line = line!() + 1;
            let job = pool.execute(move || wait.recv().unwrap());
            let waiting = pool.execute(|| ());
            let site = format!("{}:{line}", file!());
            wait_until("the warning names the site", || {
                events
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|e| e.starts_with("WARN") && e.contains(&site))
            });
            wait_until("the starvation is an error", || {
                events
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|e| e.starts_with("ERROR") && e.contains("pool=warned"))
            });
            let warning = events
                .lock()
                .unwrap()
                .iter()
                .find(|e| e.contains(&site))
                .cloned()
                .unwrap();
            assert!(
                warning.contains("wall_ms") && warning.contains("cpu_ms"),
                "{warning}"
            );
            release.send(()).unwrap();
            futures::executor::block_on(job).unwrap();
            futures::executor::block_on(waiting).unwrap();
        });
    }
}
