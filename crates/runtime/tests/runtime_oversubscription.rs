//! A config that oversubscribes the machine logs a `tracing` warning saying
//! by how much; one that fits logs none.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use compute_runtime::{Runtime, RuntimeConfig};

/// A `tracing` subscriber writing into a buffer, and the buffer.
fn capture() -> (impl tracing::Subscriber + Send + Sync, Arc<Mutex<Vec<u8>>>) {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let writer = Buffer(Arc::clone(&buffer));
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .finish();
    (subscriber, buffer)
}

fn text(buffer: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
}

#[test]
fn guide_batch_example_on_four_cores() {
    let config = RuntimeConfig::from_toml_str(
        "[runtime]\nnum_worker_threads = 4\ncompute_threads = 12\ncompute_stack_size = \"8MB\"\n",
    )
    .unwrap();
    let plan = config.thread_plan_for(4);
    assert_eq!(plan.budget(), 6);
    assert_eq!(plan.oversubscription(), Some(10));
    let (subscriber, buffer) = capture();
    let warned = tracing::subscriber::with_default(subscriber, || plan.warn_if_oversubscribed());
    assert!(warned);
    let log = text(&buffer);
    assert!(log.contains("WARN"), "{log}");
    assert!(
        log.contains("oversubscribes the machine by 10 threads"),
        "{log}"
    );
    assert!(
        log.contains("4 tokio workers + 12 compute threads = 16 threads"),
        "{log}"
    );
    assert!(log.contains("more than the 6 recommended"), "{log}");
}

#[test]
fn fitting_plan_is_quiet() {
    let plan = RuntimeConfig::default().thread_plan_for(8);
    let (subscriber, buffer) = capture();
    let warned = tracing::subscriber::with_default(subscriber, || plan.warn_if_oversubscribed());
    assert!(!warned);
    assert_eq!(text(&buffer), "");
}

/// On whatever machine runs this: one thread over the budget warns "by 1
/// thread" from `Runtime::new`; the defaults do not warn.
#[test]
fn runtime_new_warns_by_how_much() {
    compute_test_support::watchdog_for(Duration::from_secs(30), || {
        let budget = RuntimeConfig::default().thread_plan().budget();
        let over = RuntimeConfig {
            num_worker_threads: Some(budget),
            compute_threads: Some(1),
            ..Default::default()
        };
        let (subscriber, buffer) = capture();
        tracing::subscriber::with_default(subscriber, || {
            let runtime = Runtime::new(over).unwrap();
            drop(runtime);
        });
        let log = text(&buffer);
        assert!(
            log.contains("oversubscribes the machine by 1 thread:"),
            "{log}"
        );
        assert!(log.contains("excess=1"), "{log}");

        let (subscriber, buffer) = capture();
        tracing::subscriber::with_default(subscriber, || {
            drop(Runtime::new(RuntimeConfig::default()).unwrap());
        });
        assert!(
            !text(&buffer).contains("oversubscribes"),
            "{}",
            text(&buffer)
        );
    });
}
