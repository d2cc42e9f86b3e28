//! The lanes measurement: what the pool's lanes do for interactive requests
//! when batch work floods the service.
//!
//! Many clients send only `/embed` (batch work, the Low lane) while a few
//! send only `/tokenize` (interactive, the High lane), against a `pool`
//! server sized like the `pool` row. It runs twice, each time on a fresh
//! server: with lanes on (`/embed` Low, `/tokenize` High) and with lanes off
//! (every job High, first come first served). The `/tokenize` latency of
//! the two runs is the comparison: with lanes on a `/tokenize` job waits
//! for the job running on its thread, not for the `/embed` jobs queued
//! before it.

use serde::{Deserialize, Serialize};

use crate::load::{ClientGroup, Endpoint, LoadStats};
use crate::report::{format_ms, format_rate, markdown_table};

/// Clients that send only `/tokenize` in the lanes measurement.
pub const TOKENIZE_CLIENTS: usize = 2;

/// The load of the lanes measurement: `embed_clients` clients sending only
/// `/embed`, [`TOKENIZE_CLIENTS`] sending only `/tokenize`.
pub fn shape(embed_clients: usize) -> Vec<ClientGroup> {
    vec![
        ClientGroup {
            clients: embed_clients,
            endpoints: vec![Endpoint::Embed],
        },
        ClientGroup {
            clients: TOKENIZE_CLIENTS,
            endpoints: vec![Endpoint::Tokenize],
        },
    ]
}

/// One run of the lanes measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneRun {
    /// Whether lanes were on (`/embed` in the Low lane) or off (every job
    /// in the High lane).
    pub lanes: bool,
    /// Clients sending only `/embed`.
    pub embed_clients: usize,
    /// Clients sending only `/tokenize`.
    pub tokenize_clients: usize,
    /// What the load generator measured.
    pub stats: LoadStats,
}

/// Both runs of the lanes measurement, lanes on first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanesReport {
    /// The runs, in the order they ran.
    pub runs: Vec<LaneRun>,
}

impl LanesReport {
    /// The table's column names, in order: lanes on or off, the clients of
    /// each endpoint, `/tokenize` requests/s, p50 and p99, the same for
    /// `/embed`, and the error count. The docs' tables are checked against
    /// this.
    pub fn columns() -> Vec<String> {
        let mut header = vec![
            "lanes".to_string(),
            "/embed clients".into(),
            "/tokenize clients".into(),
        ];
        for endpoint in [Endpoint::Tokenize, Endpoint::Embed] {
            header.push(format!("{} req/s", endpoint.path()));
            header.push("p50 ms".into());
            header.push("p99 ms".into());
        }
        header.push("errors".into());
        header
    }

    /// The table, one line per run, with the [`columns`](Self::columns).
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .runs
            .iter()
            .map(|run| {
                let mut row = vec![
                    if run.lanes {
                        "on: /embed Low".to_string()
                    } else {
                        "off: all High".to_string()
                    },
                    run.embed_clients.to_string(),
                    run.tokenize_clients.to_string(),
                ];
                for endpoint in [Endpoint::Tokenize, Endpoint::Embed] {
                    match run.stats.endpoint(endpoint) {
                        Some(e) => {
                            row.push(format_rate(e.req_per_s));
                            row.push(format_ms(e.p50_ms));
                            row.push(format_ms(e.p99_ms));
                        }
                        None => row.extend(["-".to_string(), "-".into(), "-".into()]),
                    }
                }
                row.push(run.stats.total_errors().to_string());
                row
            })
            .collect();
        markdown_table(&Self::columns(), &rows)
    }

    /// The endpoints of a run that got no successful answer, as
    /// `lanes on /tokenize`.
    pub fn unserved(&self) -> Vec<String> {
        self.runs
            .iter()
            .flat_map(|run| {
                [Endpoint::Tokenize, Endpoint::Embed]
                    .into_iter()
                    .filter(|&e| run.stats.endpoint(e).is_none_or(|s| s.requests == 0))
                    .map(|e| {
                        let lanes = if run.lanes { "on" } else { "off" };
                        format!("lanes {lanes} {}", e.path())
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::EndpointSummary;

    fn run(lanes: bool, tokenize_p99: f64) -> LaneRun {
        let endpoints = Endpoint::ALL
            .iter()
            .map(|&endpoint| EndpointSummary {
                endpoint,
                requests: if endpoint == Endpoint::Ping { 0 } else { 10 },
                errors: 0,
                req_per_s: 5.0,
                p50_ms: 1.0,
                p90_ms: 2.0,
                p99_ms: tokenize_p99,
                max_ms: 100.0,
            })
            .collect();
        LaneRun {
            lanes,
            embed_clients: 8,
            tokenize_clients: TOKENIZE_CLIENTS,
            stats: LoadStats {
                endpoints,
                measured_s: 2.0,
                cpu_s: None,
                first_error: None,
            },
        }
    }

    #[test]
    fn the_table_has_a_row_per_run_with_the_columns() {
        let report = LanesReport {
            runs: vec![run(true, 3.0), run(false, 45.0)],
        };
        let table = report.table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[2].starts_with("| on: /embed Low "), "{table}");
        assert!(lines[3].starts_with("| off: all High "), "{table}");
        assert!(lines[3].contains(" 45.0 "), "{table}");
        let cells = lines[0]
            .split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .count();
        assert_eq!(cells, LanesReport::columns().len());
        assert!(report.unserved().is_empty());
    }

    #[test]
    fn the_shape_floods_embed_and_sends_a_few_tokenize() {
        let groups = shape(16);
        assert_eq!(groups[0].clients, 16);
        assert_eq!(groups[0].endpoints, vec![Endpoint::Embed]);
        assert_eq!(groups[1].clients, TOKENIZE_CLIENTS);
        assert_eq!(groups[1].endpoints, vec![Endpoint::Tokenize]);
    }
}
