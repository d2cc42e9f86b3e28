//! A mixed-workload HTTP service that shows what handing compute to a pool
//! does for I/O latency, with a load generator that measures it.
//!
//! The server ([`server`]) answers three CPU-heavy endpoints (`/tokenize`,
//! `/embed`, `/infer`, see [`workloads`]) and two I/O-only ones (`/ping`,
//! `/metrics`). How each handler runs its compute is a [`dispatch::Mode`]:
//! on our `compute_pool::ComputePool`, inline on the Tokio worker, with
//! `spawn_blocking`, or through a naive rayon + oneshot bridge. The load
//! generator ([`load`]) drives the same load at each mode in turn
//! ([`compare`]) and [`report`] prints one table.
//!
//! ```
//! use compute_demo::server::{DemoServer, ServerOptions};
//! use compute_demo::workloads::Models;
//! use std::time::Duration;
//!
//! let models = Models::load()?;
//! let server = DemoServer::start(ServerOptions::default(), models)?;
//! let addr = server.addr();
//! let client_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let (status, body) = client_runtime.block_on(async {
//!     let mut client = compute_demo::client::HttpClient::connect(addr).await?;
//!     client
//!         .post("/tokenize", r#"{"texts": ["hello world"]}"#, Duration::from_secs(10))
//!         .await
//! })?;
//! assert_eq!(status, 200);
//! assert!(std::str::from_utf8(&body)?.contains("\"total_tokens\":2"));
//! server.shutdown()?;
//! # Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
//! ```

pub mod client;
pub mod compare;
pub mod dispatch;
pub mod load;
pub mod report;
pub mod server;
pub mod workloads;

/// The embedded default `[runtime]` configuration (`config/default.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../config/default.toml");

/// A `[runtime]` configuration failed to load.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("--config {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML or an environment override was refused.
    #[error("{origin}: {source}")]
    Invalid {
        /// The file, or "the embedded default config".
        origin: String,
        /// What was wrong, naming the field and the value.
        source: compute_pool::ConfigError,
    },
}

/// Reads the `[runtime]` configuration from `path` (or the embedded
/// [`DEFAULT_CONFIG`]), then applies the `COMPUTE_RUNTIME_*` environment
/// overrides. Returns the configuration and the TOML text it came from.
///
/// ```
/// let (config, text) = compute_demo::runtime_config(None)?;
/// assert!(text.contains("[runtime]"));
/// assert!(config.compute_stack_size.is_some());
/// # Ok::<(), compute_demo::ConfigFileError>(())
/// ```
pub fn runtime_config(
    path: Option<&std::path::Path>,
) -> Result<(compute_runtime::RuntimeConfig, String), ConfigFileError> {
    let (text, origin) = match path {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
                path: path.to_path_buf(),
                source,
            })?,
            path.display().to_string(),
        ),
        None => (
            DEFAULT_CONFIG.to_string(),
            "the embedded default config".to_string(),
        ),
    };
    let config = compute_runtime::RuntimeConfig::from_toml_str(&text)
        .and_then(compute_runtime::RuntimeConfig::from_env)
        .map_err(|source| ConfigFileError::Invalid { origin, source })?;
    Ok((config, text))
}
