//! A mixed-workload HTTP service that shows what handing compute to a pool
//! does for I/O latency, with a load generator that measures it.
//!
//! The server ([`server`]) answers three CPU-heavy endpoints (`/tokenize`,
//! `/embed`, `/infer`, see [`workloads`]) and two I/O-only ones (`/ping`,
//! `/metrics`). How each handler runs its compute is a [`dispatch::Mode`]:
//! on our `compute_runtime::ComputePool`, inline on the Tokio worker, with
//! `spawn_blocking`, or through a naive rayon + oneshot bridge. The load
//! generator ([`load`]) drives the same load at each row in turn
//! ([`compare`]; a row is a mode and its threads, see [`rows`]), then
//! measures what the pool's [`lanes`] do for `/tokenize` beside an `/embed`
//! flood, [`report`] prints the tables, and [`docs_table`] writes them into
//! the docs. [`flood`] is the overload measurement (`--flood`): many
//! clients at once, each with one large request.
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
pub mod docs_table;
pub mod flood;
pub mod lanes;
pub mod load;
pub mod report;
pub mod rows;
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
    /// The TOML, or an environment override, was refused.
    #[error("{origin}: {source}")]
    Invalid {
        /// Where the value came from: `--config <file>`, the embedded
        /// default config, or `environment variable`.
        origin: String,
        /// What was wrong, naming the field (or variable) and the value.
        source: compute_runtime::ConfigError,
    },
}

/// Reads the `[runtime]` configuration from `path` (or the embedded
/// [`DEFAULT_CONFIG`]), then applies the `COMPUTE_RUNTIME_*` environment
/// overrides. Returns the configuration and the TOML text it came from.
///
/// An error names where the bad value came from: the file, the embedded
/// default, or the environment variable. A top-level table whose name is
/// close to `runtime` (a typo such as `[runtme]`, which would otherwise be
/// ignored) is logged as a warning; see [`near_misses`].
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
            format!("--config {}", path.display()),
        ),
        None => (
            DEFAULT_CONFIG.to_string(),
            "the embedded default config".to_string(),
        ),
    };
    let config = compute_runtime::RuntimeConfig::from_toml_str(&text).map_err(|source| {
        ConfigFileError::Invalid {
            origin: origin.clone(),
            source,
        }
    })?;
    for name in near_misses(&text) {
        tracing::warn!(
            "{origin}: table [{name}] is not read; did you mean [runtime]? (only [runtime] configures the demo)"
        );
    }
    let config = config
        .from_env()
        .map_err(|source| ConfigFileError::Invalid {
            origin: "environment variable".to_string(),
            source,
        })?;
    Ok((config, text))
}

/// Top-level keys of a TOML document, other than `runtime`, within two
/// edits of it (`runtme`, `Runtime`, `runtimes`): most likely a typo for
/// the `[runtime]` table, which is otherwise silently absent. A document
/// that does not parse gives none (parsing reports that).
///
/// ```
/// assert_eq!(compute_demo::near_misses("[runtme]\ncompute_threads = 1\n"), vec!["runtme"]);
/// assert!(compute_demo::near_misses("[runtime]\n[server]\n").is_empty());
/// ```
pub fn near_misses(text: &str) -> Vec<String> {
    let Ok(document) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    document
        .keys()
        .filter(|key| key.as_str() != "runtime" && edit_distance(key, "runtime") <= 2)
        .cloned()
        .collect()
}

/// Levenshtein distance between two strings, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitute.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("runtime", "runtime"), 0);
        assert_eq!(edit_distance("runtme", "runtime"), 1);
        assert_eq!(edit_distance("rutnime", "runtime"), 2);
        assert!(edit_distance("server", "runtime") > 2);
        assert_eq!(edit_distance("", "runtime"), 7);
    }

    #[test]
    fn near_misses_name_typos_only() {
        assert_eq!(
            near_misses("[Runtime]\n[server]\n[runtimes]\n"),
            vec!["Runtime", "runtimes"]
        );
        assert!(near_misses("[runtime]\ncompute_threads = 1\n").is_empty());
        assert!(near_misses("not toml [").is_empty());
    }
}
