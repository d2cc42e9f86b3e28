//! The default run: `/ping` alone on an idle server, then the same load
//! against a fresh server for each [`Row`], one after the other, and, when
//! the `pool` row is among them, the [lanes measurement](crate::lanes),
//! collected into a [`RunReport`].

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;

use compute_runtime::RuntimeConfig;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::lanes::{LaneRun, LanesReport};
use crate::load::{run_canary, run_load, run_mix, Corpus, LoadConfig, LoadError};
use crate::report::{format_ms, format_rate, ModeReport, RunReport, RunSettings};
use crate::rows::Row;
use crate::server::{DemoServer, Limits, ServerError, ServerOptions, DEFAULT_MAX_QUEUED};
use crate::workloads::Models;

/// What to compare.
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// Rows to run, in order.
    pub modes: Vec<Row>,
    /// The load sent to each.
    pub load: LoadConfig,
    /// The server runtime's threads.
    pub runtime: RuntimeConfig,
    /// The `[runtime]` TOML the configuration came from (for the report).
    pub runtime_toml: String,
    /// Request limits.
    pub limits: Limits,
    /// Address each server binds (a loopback address; port 0 picks one).
    pub listen: SocketAddr,
    /// Show a progress bar per mode (only drawn when stdout is a terminal).
    pub progress: bool,
    /// Also run the [lanes measurement](crate::lanes) (on a `pool` server
    /// with the `pool` row's threads, lanes on then off), with
    /// [`LoadConfig::clients`] clients flooding `/embed`.
    pub lanes: bool,
}

/// Why a comparison run stopped.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A server failed to start or stop.
    #[error("{mode} server: {source}")]
    Server {
        /// The row being measured (`idle` is measured as `pool`).
        mode: Row,
        /// What failed.
        source: ServerError,
    },
    /// The load run failed.
    #[error("{mode} load: {source}")]
    Load {
        /// The row being measured (`idle` is measured as `pool`).
        mode: Row,
        /// What failed.
        source: LoadError,
    },
    /// The client runtime could not be built.
    #[error("building the client runtime: {0}")]
    ClientRuntime(std::io::Error),
}

/// The longest the idle `/ping` baseline is measured.
pub const IDLE_MEASURE_MAX: std::time::Duration = std::time::Duration::from_secs(4);

/// Shuts `server` down and gives what the load run against it measured;
/// a failure of either (the load's first) is blamed on `row`.
fn stop_after<T>(
    server: DemoServer,
    row: Row,
    load: Result<T, LoadError>,
) -> Result<T, CompareError> {
    let shutdown = server.shutdown();
    let measured = load.map_err(|source| CompareError::Load { mode: row, source })?;
    shutdown.map_err(|source| CompareError::Server { mode: row, source })?;
    Ok(measured)
}

fn progress_bar(enabled: bool, name: &str) -> ProgressBar {
    if !enabled || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix:>15} [{bar:32}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(name.to_string());
    bar
}

/// Measures `/ping` alone on an idle `pool` server (the baseline), then runs
/// the load against each row in turn, each on a fresh server (its own
/// runtime and pool), and returns every row's figures.
///
/// The idle baseline uses the load's warm-up and at most
/// [`IDLE_MEASURE_MAX`] of its duration.
///
/// The clients run on a separate one-thread Tokio runtime so they measure
/// the server, not their own scheduling. Must be called from synchronous
/// code.
pub fn run_comparison(
    options: &CompareOptions,
    models: Arc<Models>,
) -> Result<RunReport, CompareError> {
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("load-client")
        .enable_all()
        .build()
        .map_err(CompareError::ClientRuntime)?;
    let corpus = Arc::new(Corpus::generate(0xC0FF_EE00, options.load.size));
    let mut modes = Vec::with_capacity(options.modes.len());
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    // The comparison measures where compute runs, not load shedding: each
    // closed-loop client has one request in flight (plus the canary's
    // connection), so the pool gets a queue with room for all of them
    // unless the configuration sets `max_queued` itself.
    // (The lanes measurement has TOKENIZE_CLIENTS more.)
    let clients = options.load.clients + crate::lanes::TOKENIZE_CLIENTS;
    let mut runtime = options.runtime.clone();
    runtime
        .max_queued
        .get_or_insert(DEFAULT_MAX_QUEUED.max(clients));
    let limits = Limits {
        max_connections: options.limits.max_connections.max(clients + 8),
        ..options.limits.clone()
    };
    let start_with_lanes = |row: Row, lanes: bool| {
        DemoServer::start(
            ServerOptions {
                mode: row.mode(),
                runtime: row.runtime(&runtime, cpus),
                listen: options.listen,
                limits: limits.clone(),
                lanes,
            },
            models.clone(),
        )
        .map_err(|source| CompareError::Server { mode: row, source })
    };
    let start = |row: Row| start_with_lanes(row, true);

    let idle_load = LoadConfig {
        duration: options.load.duration.min(IDLE_MEASURE_MAX),
        ..options.load.clone()
    };
    // The idle server is the `pool` row's: its threads are the plan's.
    let server = start(Row::Pool)?;
    let compute_threads = server.state().pool.as_ref().map_or(0, |p| p.num_threads());
    let tokio_workers = server.handle().map(|h| h.metrics().num_workers());
    let idle = client_runtime.block_on(run_canary(server.addr(), &idle_load));
    let idle_ping = stop_after(server, Row::Pool, idle)?;

    for &mode in &options.modes {
        let server = start(mode)?;
        let row_threads = server.state().pool.as_ref().map(|p| p.num_threads());
        let workers = server.handle().map(|h| h.metrics().num_workers());
        let bar = progress_bar(options.progress, mode.name());
        let stats =
            client_runtime.block_on(run_load(server.addr(), &options.load, corpus.clone(), &bar));
        let stats = stop_after(server, mode, stats)?;
        let rate: f64 = stats.endpoints.iter().map(|e| e.req_per_s).sum();
        let ping_p99 = stats
            .endpoint(crate::load::Endpoint::Ping)
            .map_or(0.0, |p| p.p99_ms);
        bar.finish_with_message(format!(
            "{:>7} req/s  /ping p99 {} ms  errors {}",
            format_rate(rate),
            format_ms(ping_p99),
            stats.total_errors()
        ));
        // Only the bridges run compute on compute threads; the naive
        // bridge's rayon pool is sized like the compute pool.
        let compute = match mode.mode() {
            crate::dispatch::Mode::Pool | crate::dispatch::Mode::Naive => row_threads,
            _ => None,
        };
        modes.push(ModeReport {
            mode,
            compute_threads: compute,
            tokio_workers: workers,
            stats,
        });
    }
    let lanes = if options.lanes {
        let mut runs = Vec::with_capacity(2);
        for on in [true, false] {
            let server = start_with_lanes(Row::Pool, on)?;
            let name = if on { "lanes on" } else { "lanes off" };
            let bar = progress_bar(options.progress, name);
            let groups = crate::lanes::shape(options.load.clients);
            let stats = client_runtime.block_on(run_mix(
                server.addr(),
                &options.load,
                &groups,
                corpus.clone(),
                &bar,
            ));
            let stats = stop_after(server, Row::Pool, stats)?;
            let tokenize = stats.endpoint(crate::load::Endpoint::Tokenize);
            bar.finish_with_message(format!(
                "/tokenize p50 {} ms, p99 {} ms  errors {}",
                format_ms(tokenize.map_or(0.0, |t| t.p50_ms)),
                format_ms(tokenize.map_or(0.0, |t| t.p99_ms)),
                stats.total_errors()
            ));
            runs.push(LaneRun {
                lanes: on,
                embed_clients: options.load.clients,
                tokenize_clients: crate::lanes::TOKENIZE_CLIENTS,
                stats,
            });
        }
        Some(LanesReport { runs })
    } else {
        None
    };
    client_runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    Ok(RunReport {
        settings: RunSettings {
            clients: options.load.clients,
            warmup_s: options.load.warmup.as_secs_f64(),
            duration_s: options.load.duration.as_secs_f64(),
            ping_interval_ms: options.load.ping_interval.as_secs_f64() * 1000.0,
            request_size: options.load.size,
            tokio_workers,
            compute_threads,
            cpus,
            idle_ping: Some(idle_ping),
            runtime_config: options.runtime_toml.clone(),
            command: None,
        },
        modes,
        lanes,
    })
}
