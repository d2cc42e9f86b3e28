//! Starting, serving and stopping: the runtime, the accept loop with its
//! connection limit and hyper's timeouts, graceful shutdown on a call or on
//! SIGTERM / Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use compute_runtime::{Runtime, RuntimeConfig};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

use super::limits::{too_many_connections, HYPER_MAX_HEADERS, HYPER_MAX_HEAD_BYTES};
use super::{admission, router, AppState, EndpointStats, Limits};
use crate::dispatch::{DispatchError, Dispatcher, Mode};
use crate::workloads::Models;

/// Errors starting or stopping a [`DemoServer`].
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The `[runtime]` configuration was refused.
    #[error("runtime configuration: {0}")]
    Config(#[from] compute_runtime::ConfigError),
    /// The dispatcher could not be built.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server task failed or did not stop in time.
    #[error("server: {0}")]
    Serve(String),
}

/// What a [`DemoServer`] is built from.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where compute runs.
    pub mode: Mode,
    /// The runtime's threads and pool settings. Unset, `max_in_flight` is
    /// the compute thread count and `max_queued` is
    /// [`DEFAULT_MAX_QUEUED`](super::DEFAULT_MAX_QUEUED) (see [`admission`]).
    pub runtime: RuntimeConfig,
    /// Address to bind (port 0: the OS picks one).
    pub listen: SocketAddr,
    /// Request and connection limits.
    pub limits: Limits,
    /// In `pool` mode, whether `/embed` jobs wait in the Low lane (on, the
    /// default) or every job in the High lane (off). No effect in the other
    /// modes, which have no lanes.
    pub lanes: bool,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            mode: Mode::Pool,
            runtime: RuntimeConfig::default(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            limits: Limits::default(),
            lanes: true,
        }
    }
}

/// The signal that ended [`DemoServer::serve_until_signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (what `kill`, systemd and container runtimes send).
    Terminate,
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        })
    }
}

/// A running demo server with its own `compute_runtime::Runtime`.
///
/// Start it from synchronous code (not inside an async task: it owns a Tokio
/// runtime, which cannot be dropped there). [`shutdown`](DemoServer::shutdown)
/// stops it gracefully within a bounded time; dropping it does the same.
pub struct DemoServer {
    runtime: Option<Runtime>,
    addr: SocketAddr,
    state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for DemoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoServer")
            .field("addr", &self.addr)
            .field("mode", &self.state.dispatcher.mode())
            .finish_non_exhaustive()
    }
}

/// How long a graceful shutdown may take: first for open requests to
/// finish, then again for the compute pool to drain.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

impl DemoServer {
    /// Builds the runtime, binds the address and starts serving.
    pub fn start(options: ServerOptions, models: Arc<Models>) -> Result<DemoServer, ServerError> {
        let runtime_config = admission(&options.runtime);
        let runtime = Runtime::new(runtime_config.clone())?;
        let pool = runtime.compute_pool();
        let compute_threads = match (&pool, runtime_config.compute_threads) {
            (Some(pool), _) => pool.num_threads(),
            (None, Some(n)) => n,
            (None, None) => 1,
        };
        let dispatcher =
            Dispatcher::new(options.mode, pool.clone(), compute_threads)?.with_lanes(options.lanes);
        let state = AppState {
            dispatcher,
            models,
            limits: options.limits.clone(),
            stats: Arc::new(EndpointStats::default()),
            pool,
        };
        let bind_error = |source| ServerError::Bind {
            addr: options.listen,
            source,
        };
        let std_listener = std::net::TcpListener::bind(options.listen).map_err(bind_error)?;
        let addr = std_listener.local_addr().map_err(bind_error)?;
        std_listener.set_nonblocking(true).map_err(bind_error)?;
        let handle = runtime.handle().clone();
        let listener = {
            let _entered = handle.enter();
            TcpListener::from_std(std_listener).map_err(bind_error)?
        };
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let app = router(state.clone());
        let task = handle.spawn(serve(listener, app, options.limits, shutdown_rx));
        Ok(DemoServer {
            runtime: Some(runtime),
            addr,
            state,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dispatch mode.
    pub fn mode(&self) -> Mode {
        self.state.dispatcher.mode()
    }

    /// The shared handler state (counters, pool, models).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The runtime's Tokio handle.
    pub fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(Runtime::handle)
    }

    /// Blocks until SIGTERM or SIGINT (Ctrl-C), then shuts down gracefully
    /// (see [`shutdown`](DemoServer::shutdown)). Returns the signal.
    ///
    /// `ready` runs once the signal handlers are in place (print the address
    /// there: a signal sent after it is seen), before the wait.
    pub fn serve_until_signal(
        self,
        ready: impl FnOnce(&DemoServer),
    ) -> Result<StopSignal, ServerError> {
        let Some(runtime) = &self.runtime else {
            return Ok(StopSignal::Interrupt);
        };
        let signals = {
            let _entered = runtime.handle().enter();
            Signals::new()
        }
        .map_err(|e| ServerError::Serve(format!("installing signal handlers: {e}")))?;
        ready(&self);
        let signal = runtime.block_on(signals.wait());
        self.shutdown()?;
        Ok(signal)
    }

    /// Stops accepting connections, lets open requests finish (at most
    /// [`SHUTDOWN_GRACE`], then drops them), then drains the compute pool
    /// (again at most [`SHUTDOWN_GRACE`]) and stops the runtime.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ServerError> {
        let Some(runtime) = self.runtime.take() else {
            return Ok(());
        };
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let mut result = Ok(());
        if let Some(mut task) = self.task.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                // Inside an async context (a drop in a task) we cannot block
                // on the graceful shutdown: stop serving at once.
                task.abort();
            } else {
                // `serve` bounds its own drain by SHUTDOWN_GRACE; the extra
                // second only guards against a bug there.
                result = runtime.block_on(async {
                    match tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_secs(1), &mut task)
                        .await
                    {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(ServerError::Serve(format!("server task failed: {e}"))),
                        Err(_) => {
                            task.abort();
                            Ok(())
                        }
                    }
                });
            }
        }
        // Ordered: the pool drains first while Tokio still runs, then Tokio
        // stops; both bounded by the grace period.
        runtime.shutdown(SHUTDOWN_GRACE);
        result
    }
}

impl Drop for DemoServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Handlers for SIGTERM and SIGINT, installed (replacing the default
/// "terminate at once") as soon as this is built.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; needs a Tokio runtime context.
    fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Waits for the first of the two.
    async fn wait(mut self) -> StopSignal {
        tokio::select! {
            _ = self.terminate.recv() => StopSignal::Terminate,
            _ = self.interrupt.recv() => StopSignal::Interrupt,
        }
    }
}

/// The accept loop: each connection is served by hyper's HTTP/1 server with
/// the head timeout and buffer limits, at most `max_connections` at once;
/// on `shutdown` it stops accepting and gives open connections
/// [`SHUTDOWN_GRACE`] to finish their requests.
async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut shutdown: oneshot::Receiver<()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(HYPER_MAX_HEAD_BYTES)
        .max_headers(HYPER_MAX_HEADERS)
        .keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let refusals = Arc::new(Semaphore::new(limits.max_connections.saturating_mul(2)));
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors or a connection reset before
                    // it was accepted: wait a little instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Refusals hold a descriptor for up to REFUSAL_LINGER: at
            // most `2 × max_connections` of them, past that the socket is
            // just closed.
            if let Ok(refusal) = refusals.clone().try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream).await;
                    drop(refusal);
                });
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // Errors here are the client's (reset, timeout, bad request
            // line): hyper has answered what could be answered.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// How long a refused connection is kept open for the client to finish
/// sending and read the `503`.
const REFUSAL_LINGER: Duration = Duration::from_secs(5);

/// Answers a connection past the limit with `503` and closes it within
/// [`REFUSAL_LINGER`]. What the client sends meanwhile is read and dropped, so a client
/// still writing its body sees the answer rather than a reset.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(&too_many_connections()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 16 * 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}
