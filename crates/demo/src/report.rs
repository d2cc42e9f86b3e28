//! The comparison table, as aligned Markdown (the terminal and README form)
//! and as JSON.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::lanes::LanesReport;
use crate::load::{Endpoint, EndpointSummary, LoadStats};
use crate::rows::Row;

/// A report file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("--out {}: {source}", path.display())]
pub struct WriteError {
    /// The file.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

/// The figures of one row (a dispatch mode and its threads).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeReport {
    /// The row.
    pub mode: Row,
    /// Threads that ran the compute: the compute pool's, or the naive
    /// bridge's rayon pool; `None` where compute runs on Tokio's threads.
    #[serde(default)]
    pub compute_threads: Option<usize>,
    /// Tokio worker threads of this row's server.
    #[serde(default)]
    pub tokio_workers: Option<usize>,
    /// What the load generator measured.
    pub stats: LoadStats,
}

/// How the run was set up, recorded beside the figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Concurrent compute clients.
    pub clients: usize,
    /// Warm-up per mode, seconds (not measured).
    pub warmup_s: f64,
    /// Measured time per mode, seconds.
    pub duration_s: f64,
    /// Interval of the `/ping` canary, milliseconds.
    pub ping_interval_ms: f64,
    /// Size of the compute requests.
    pub request_size: crate::load::RequestSize,
    /// Tokio worker threads of the server runtime.
    pub tokio_workers: Option<usize>,
    /// Compute threads (the pool's, and the naive bridge's rayon pool).
    pub compute_threads: usize,
    /// Logical CPUs of the machine.
    pub cpus: usize,
    /// `/ping` alone on an idle `pool` server, before the rows: the
    /// baseline for the rows' `/ping` latency.
    #[serde(default)]
    pub idle_ping: Option<EndpointSummary>,
    /// The `[runtime]` configuration used, as TOML text.
    pub runtime_config: String,
    /// The command line that made the run, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// A whole run: its settings, one [`ModeReport`] per mode, in run order,
/// and the lanes measurement when it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// The set-up.
    pub settings: RunSettings,
    /// The figures.
    pub modes: Vec<ModeReport>,
    /// The [lanes measurement](crate::lanes): `/tokenize` beside an
    /// `/embed` flood in `pool` mode, lanes on and off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lanes: Option<LanesReport>,
}

/// Formats a latency in milliseconds with a precision that suits its size.
pub fn format_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Formats a rate with a precision that suits its size.
pub fn format_rate(rate: f64) -> String {
    if rate < 10.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.0}")
    }
}

/// Renders rows as a Markdown table with padded, aligned columns (numbers
/// right-aligned), readable as is in a terminal.
pub fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..columns)
        .map(|c| {
            // A "-" (no figure) does not make a column of numbers text.
            let is_number = |cell: &String| cell.parse::<f64>().is_ok();
            rows.iter()
                .all(|r| r.get(c).is_some_and(|cell| cell == "-" || is_number(cell)))
                && rows.iter().any(|r| r.get(c).is_some_and(is_number))
        })
        .collect();
    let pad = |cell: &str, c: usize| {
        let fill = widths[c].saturating_sub(cell.chars().count());
        if numeric[c] {
            format!("{}{cell}", " ".repeat(fill))
        } else {
            format!("{cell}{}", " ".repeat(fill))
        }
    };
    let mut out = String::new();
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    out.push_str(&line(
        header.iter().enumerate().map(|(c, h)| pad(h, c)).collect(),
    ));
    out.push_str(&line(
        (0..columns)
            .map(|c| {
                let dashes = "-".repeat(widths[c].max(3));
                if numeric[c] {
                    format!("{}:", &dashes[1..])
                } else {
                    dashes
                }
            })
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(
            row.iter()
                .enumerate()
                .map(|(c, cell)| pad(cell, c))
                .collect(),
        ));
    }
    out
}

impl RunReport {
    /// The table's column names, in order: the row, its compute threads;
    /// for each compute endpoint its requests/s and p50/p99 latency; the
    /// `/ping` canary's p50 and p99; the CPUs the process kept busy, its
    /// CPU time per compute request (server and load generator together),
    /// and the error count. The docs' tables are checked against this.
    pub fn columns() -> Vec<String> {
        let mut header = vec!["mode".to_string(), "compute threads".into()];
        for endpoint in Endpoint::COMPUTE {
            let path = endpoint.path();
            header.push(format!("{path} req/s"));
            header.push("p50 ms".into());
            header.push("p99 ms".into());
        }
        header.push("/ping p50 ms".into());
        header.push("/ping p99 ms".into());
        header.push("CPU cores".into());
        header.push("CPU ms/req".into());
        header.push("errors".into());
        header
    }

    /// The comparison table, one line per row, with the [`columns`](Self::columns).
    pub fn table(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .modes
            .iter()
            .map(|m| {
                let mut row = vec![
                    m.mode.to_string(),
                    m.compute_threads
                        .map_or_else(|| "-".to_string(), |n| n.to_string()),
                ];
                for endpoint in Endpoint::COMPUTE {
                    match m.stats.endpoint(endpoint) {
                        Some(e) => {
                            row.push(format_rate(e.req_per_s));
                            row.push(format_ms(e.p50_ms));
                            row.push(format_ms(e.p99_ms));
                        }
                        None => row.extend(["-".to_string(), "-".into(), "-".into()]),
                    }
                }
                match m.stats.endpoint(Endpoint::Ping) {
                    Some(p) => {
                        row.push(format_ms(p.p50_ms));
                        row.push(format_ms(p.p99_ms));
                    }
                    None => row.extend(["-".to_string(), "-".into()]),
                }
                row.push(
                    m.stats
                        .cpu_cores()
                        .map_or_else(|| "-".to_string(), |c| format!("{c:.2}")),
                );
                row.push(
                    m.stats
                        .cpu_ms_per_compute_request()
                        .map_or_else(|| "-".to_string(), format_ms),
                );
                row.push(m.stats.total_errors().to_string());
                row
            })
            .collect();
        markdown_table(&Self::columns(), &rows)
    }

    /// One line describing the set-up, for under the table.
    pub fn settings_line(&self) -> String {
        let s = &self.settings;
        let workers = s
            .tokio_workers
            .map_or_else(|| "default".to_string(), |n| n.to_string());
        let idle = s.idle_ping.as_ref().map_or_else(String::new, |p| {
            format!(
                "; idle /ping p50 {} ms, p99 {} ms",
                format_ms(p.p50_ms),
                format_ms(p.p99_ms)
            )
        });
        format!(
            "{} clients, {} requests, {} warm-up + {} measured per mode, /ping every {} ms; \
             Tokio workers: {workers}, compute threads: {}, CPUs: {}{idle}",
            s.clients,
            match s.request_size {
                crate::load::RequestSize::Full => "full-size",
                crate::load::RequestSize::Light => "light",
            },
            seconds(s.warmup_s),
            seconds(s.duration_s),
            s.ping_interval_ms,
            s.compute_threads,
            s.cpus
        )
    }

    /// The sentence that introduces the lanes table, if the lanes
    /// measurement ran.
    pub fn lanes_line(&self) -> Option<String> {
        let lanes = self.lanes.as_ref()?;
        let run = lanes.runs.first()?;
        Some(format!(
            "Lanes, `pool` row's threads: {} clients send only /embed (batch, the Low lane with lanes on) \
             and {} only /tokenize (interactive, the High lane), {} warm-up + {} measured per run; \
             with lanes off every job is High",
            run.embed_clients,
            run.tokenize_clients,
            seconds(self.settings.warmup_s),
            seconds(self.settings.duration_s),
        ))
    }

    /// A Markdown document: title, set-up, the table, the lanes table, and
    /// any errors seen.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("# compute-demo results\n\n");
        if let Some(command) = &self.settings.command {
            out.push_str(&format!("`{command}`\n\n"));
        }
        out.push_str(&self.settings_line());
        out.push_str("\n\n");
        out.push_str(&self.table());
        if let (Some(line), Some(lanes)) = (self.lanes_line(), &self.lanes) {
            out.push_str(&format!("\n{line}.\n\n{}", lanes.table()));
        }
        let mut errors: Vec<String> = self
            .modes
            .iter()
            .filter_map(|m| {
                m.stats
                    .first_error
                    .as_ref()
                    .map(|e| format!("- {}: {e}", m.mode))
            })
            .collect();
        for run in self.lanes.iter().flat_map(|l| &l.runs) {
            if let Some(e) = &run.stats.first_error {
                let lanes = if run.lanes { "on" } else { "off" };
                errors.push(format!("- lanes {lanes}: {e}"));
            }
        }
        if !errors.is_empty() {
            out.push_str("\nFirst error per mode:\n\n");
            out.push_str(&errors.join("\n"));
            out.push('\n');
        }
        out.push_str("\n```toml\n");
        out.push_str(self.settings.runtime_config.trim_end());
        out.push_str("\n```\n");
        out
    }

    /// Writes the report next to `path`: a name ending in `.json` gets
    /// JSON, `.md` gets Markdown, any other name gets both `path.json` and
    /// `path.md`. Returns the files written.
    pub fn write_files(&self, path: &Path) -> Result<Vec<PathBuf>, WriteError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let with_suffix = |suffix: &str| PathBuf::from(format!("{}.{suffix}", path.display()));
        let targets: Vec<(PathBuf, String)> = match ext.as_deref() {
            Some("json") => vec![(path.to_path_buf(), self.to_json())],
            Some("md") => vec![(path.to_path_buf(), self.to_markdown())],
            _ => vec![
                (with_suffix("json"), self.to_json()),
                (with_suffix("md"), self.to_markdown()),
            ],
        };
        let mut written = Vec::new();
        for (target, text) in targets {
            std::fs::write(&target, text).map_err(|source| WriteError {
                path: target.clone(),
                source,
            })?;
            written.push(target);
        }
        Ok(written)
    }

    /// The whole report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

/// A time for the settings line: `1.5 s`, or `10 ms` under a second.
fn seconds(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> RunReport {
        let endpoints = Endpoint::ALL
            .iter()
            .map(|&endpoint| EndpointSummary {
                endpoint,
                requests: 100,
                errors: 0,
                req_per_s: 123.4,
                p50_ms: 0.5,
                p90_ms: 2.0,
                p99_ms: 12.34,
                max_ms: 250.0,
            })
            .collect();
        RunReport {
            settings: RunSettings {
                clients: 4,
                warmup_s: 0.5,
                duration_s: 2.0,
                ping_interval_ms: 10.0,
                request_size: crate::load::RequestSize::Light,
                tokio_workers: Some(2),
                compute_threads: 2,
                cpus: 2,
                idle_ping: None,
                runtime_config: "[runtime]\ncompute_threads = 2\n".into(),
                command: Some("compute-demo --quick".into()),
            },
            modes: vec![ModeReport {
                mode: Row::SpawnBlocking,
                compute_threads: None,
                tokio_workers: Some(2),
                stats: LoadStats {
                    endpoints,
                    measured_s: 2.0,
                    cpu_s: Some(3.0),
                    first_error: Some("/infer: 500".into()),
                },
            }],
            lanes: None,
        }
    }

    #[test]
    fn table_has_a_row_per_mode_and_aligned_columns() {
        let table = report().table();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("/tokenize req/s") && lines[0].contains("/ping p99 ms"));
        assert!(lines[2].starts_with("| spawn-blocking |"));
        assert_eq!(
            lines[0]
                .split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .count(),
            RunReport::columns().len()
        );
        assert!(
            lines[2].contains(" 123 ")
                && lines[2].contains(" 12.3 ")
                && lines[2].contains(" 0.50 ")
        );
        // 3 CPU-seconds over 2 s; 3000 ms over 300 compute requests.
        assert!(
            lines[2].contains(" 1.50 ") && lines[2].contains(" 10.0 "),
            "{table}"
        );
        let width = lines[0].chars().count();
        assert!(lines.iter().all(|l| l.chars().count() == width), "{table}");
    }

    #[test]
    fn json_round_trips() {
        let r = report();
        let back: RunReport = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back, r);
        let markdown = r.to_markdown();
        assert!(markdown.contains("- spawn-blocking: /infer: 500"));
        assert!(markdown.contains("`compute-demo --quick`"));
        assert!(markdown.contains("4 clients, light requests"), "{markdown}");
    }

    #[test]
    fn files_are_chosen_by_extension() {
        let dir = std::env::temp_dir().join(format!("compute-demo-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let r = report();
        let both = r.write_files(&dir.join("run")).unwrap();
        assert_eq!(both, vec![dir.join("run.json"), dir.join("run.md")]);
        let json = r.write_files(&dir.join("x.JSON")).unwrap();
        assert_eq!(json, vec![dir.join("x.JSON")]);
        let md = r.write_files(&dir.join("y.md")).unwrap();
        assert!(std::fs::read_to_string(&md[0])
            .unwrap()
            .starts_with("# compute-demo results"));
        let err = r
            .write_files(&dir.join("missing-dir").join("z.json"))
            .unwrap_err();
        assert!(err.to_string().contains("z.json"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn number_formats() {
        assert_eq!(format_ms(0.123), "0.12");
        assert_eq!(format_ms(12.34), "12.3");
        assert_eq!(format_ms(1234.4), "1234");
        assert_eq!(format_rate(5.54), "5.5");
        assert_eq!(format_rate(1234.4), "1234");
    }
}
