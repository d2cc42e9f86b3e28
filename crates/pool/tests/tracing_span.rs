//! With the `tracing` feature, the span active at submission is entered
//! while the job runs on the compute thread.
#![cfg(feature = "tracing")]

mod support;

use std::sync::{Arc, Mutex};

use support::{pool, within};
use tracing::span;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Records (span name, thread name) for every span entered.
#[derive(Clone, Default)]
struct Entered(Arc<Mutex<Vec<(String, String)>>>);

impl<S> Layer<S> for Entered
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        let name = ctx
            .span(id)
            .map(|s| s.name().to_owned())
            .unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("?").to_owned();
        self.0.lock().unwrap().push((name, thread));
    }
}

#[tokio::test]
async fn the_submitters_span_is_entered_on_the_compute_thread() {
    let entered = Entered::default();
    let subscriber = tracing_subscriber::registry().with(entered.clone());
    // Global, so the compute threads see the same subscriber.
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let pool = pool(1);

    let request = tracing::info_span!("handle_request", id = 7);
    let inner_name = {
        let _guard = request.enter();
        pool.execute(|| {
            tracing::Span::current()
                .metadata()
                .map(|m| m.name().to_owned())
        })
    };
    let seen = within(inner_name).await.unwrap();
    assert_eq!(seen.as_deref(), Some("handle_request"));

    // execute_sync and a job submitted with no span.
    let sync_seen = {
        let _guard = tracing::info_span!("sync_call").entered();
        pool.execute_sync(|| tracing::Span::current().metadata().map(|m| m.name()))
            .unwrap()
    };
    assert_eq!(sync_seen, Some("sync_call"));
    let none = within(pool.execute(|| tracing::Span::current().is_none()))
        .await
        .unwrap();
    assert!(none, "no span leaks from one job to the next");

    let log = entered.0.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|(span, thread)| span == "handle_request" && thread == "compute-0"),
        "{log:?}"
    );
}
