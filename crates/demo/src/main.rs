//! `compute-demo`: run the mixed-workload service under load in each dispatch
//! mode and print one comparison table, or just serve it (`--serve`).

use std::io::{IsTerminal, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};
use compute_demo::compare::{run_comparison, CompareOptions};
use compute_demo::docs_table::{self, Provenance};
use compute_demo::flood::{run_flood, FloodOptions};
use compute_demo::load::{Endpoint, LoadConfig};
use compute_demo::rows::Row;
use compute_demo::server::{DemoServer, Limits, ServerOptions};
use compute_demo::workloads::Models;

/// A mixed-workload HTTP service (tokenize, embed, infer, ping) measured
/// under load with its compute on our pool (as planned, and with a compute
/// thread per CPU), inline on the Tokio workers, with spawn_blocking, and
/// through a naive rayon bridge.
///
/// With no flags: measures /ping on an idle server, runs each mode in turn
/// with the same load and prints one table of requests/s and p50/p99
/// latency per endpoint, plus the /ping p99 that shows whether I/O stalled;
/// then (with the pool mode) floods /embed beside a few /tokenize clients,
/// lanes on and off, and prints the /tokenize latency of both (about 100 s
/// in all).
#[derive(Debug, Parser)]
#[command(name = "compute-demo", version, about, long_about)]
struct Cli {
    /// Modes to measure, comma-separated (with --serve: the one mode to
    /// serve; "all" serves pool).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    mode: Vec<ModeArg>,

    /// Concurrent compute clients (1-1024) [default: 16, or 8 with --quick].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    clients: Option<u16>,

    /// Measured time per mode: a number of seconds or a number with a unit
    /// (500ms, 10s, 2m, 1h); 10ms to 1h [default: 12s, or 1.5s with --quick].
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,

    /// A short run with small requests (about 15 s in all), for CI and
    /// smoke tests.
    #[arg(long)]
    quick: bool,

    /// Also write the results: FILE.json writes JSON, FILE.md Markdown, any
    /// other name writes both FILE.json and FILE.md.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,

    /// Also write the results block (command, commit, load average,
    /// settings, table) between the demo-table markers of README.md and
    /// docs/demo.md, found from the current directory (the workspace root).
    #[arg(long)]
    update_docs: bool,

    /// Serve only: print the address and keep serving until SIGTERM or
    /// Ctrl-C, then shut down gracefully.
    #[arg(long, conflicts_with_all = ["clients", "duration", "quick", "out", "update_docs"])]
    serve: bool,

    /// The overload flood instead of the comparison: a pool server in this
    /// process, --clients clients (default 500) opening a connection each
    /// at once and sending one POST /tokenize of --flood-body-kib KiB;
    /// prints the 200 and 503 counts, the time to the 503s, the
    /// process's resident memory idle, at its peak and after, and what two
    /// probes saw once the pool was full: a /ping every 10 ms, and 20 small
    /// POST /tokenize sent one after another.
    #[arg(long, conflicts_with_all = ["serve", "duration", "quick", "out", "update_docs", "mode"])]
    flood: bool,

    /// The size of each flood request's body in KiB, 1 to 1024 (the
    /// server's body limit) [default: 1024].
    #[arg(long, value_name = "KIB", requires = "flood",
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    flood_body_kib: Option<u16>,

    /// Address to listen on, HOST:PORT with an IP address or a host name
    /// (localhost:8080) [default: 127.0.0.1:0, a free port]. Load runs need
    /// a loopback address.
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    listen: Option<SocketAddr>,

    /// A TOML file with a [runtime] table (see config/default.toml, which is
    /// embedded and used when this is absent).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// No progress bars or status lines on stderr (bars are also hidden when
    /// stdout is not a terminal); the table is still printed.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// Every mode, in the order pool, pool-throughput, inline,
    /// spawn-blocking, naive.
    All,
    /// Our ComputePool, with the runtime's planned threads.
    Pool,
    /// Our ComputePool with one compute thread per CPU, the Tokio workers
    /// as planned.
    PoolThroughput,
    /// Compute on the Tokio worker.
    Inline,
    /// tokio::task::spawn_blocking.
    SpawnBlocking,
    /// rayon::ThreadPool::spawn + tokio oneshot + catch_unwind.
    Naive,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        "expected a number of seconds, or a number with ms, s, m or h (500ms, 10s, 2m, 1h)"
            .to_string()
    })?;
    let seconds = value * scale;
    if !seconds.is_finite() || !(0.01 - 1e-9..=3600.0 + 1e-9).contains(&seconds) {
        return Err("must be between 10ms and 1h".to_string());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `HOST:PORT`, the host an IP address or a name to resolve (the first
/// address it resolves to is used).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let mut addrs = text
        .to_socket_addrs()
        .map_err(|e| format!("expected HOST:PORT (127.0.0.1:8080, localhost:8080): {e}"))?;
    addrs
        .next()
        .ok_or_else(|| format!("{text} resolves to no address"))
}

fn modes(args: &[ModeArg]) -> Vec<Row> {
    let mut out: Vec<Row> = Vec::new();
    for arg in args {
        let add: &[Row] = match arg {
            ModeArg::All => &Row::ALL,
            ModeArg::Pool => &[Row::Pool],
            ModeArg::PoolThroughput => &[Row::PoolThroughput],
            ModeArg::Inline => &[Row::Inline],
            ModeArg::SpawnBlocking => &[Row::SpawnBlocking],
            ModeArg::Naive => &[Row::Naive],
        };
        for m in add {
            if !out.contains(m) {
                out.push(*m);
            }
        }
    }
    out
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn listen_addr(cli: &Cli) -> SocketAddr {
    cli.listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// Checks the combinations of flags clap cannot express; an error here is a
/// usage error (exit status 2), like clap's own.
fn check_usage(cli: &Cli) -> Result<(), clap::Error> {
    let mut command = Cli::command();
    if cli.serve && serve_mode(cli).is_none() {
        return Err(command.error(
            ErrorKind::ArgumentConflict,
            "--serve takes a single --mode (or all, which serves pool)",
        ));
    }
    let listen = listen_addr(cli);
    if !cli.serve && !listen.ip().is_loopback() {
        return Err(command.error(
            ErrorKind::InvalidValue,
            format!(
                "--listen {listen}: the load generator only targets loopback addresses (use --serve to serve elsewhere)"
            ),
        ));
    }
    Ok(())
}

/// The one mode `--serve` serves, if `--mode` names one (or `all`).
fn serve_mode(cli: &Cli) -> Option<Row> {
    match modes(&cli.mode).as_slice() {
        [one] => Some(*one),
        _ if cli.mode.contains(&ModeArg::All) => Some(Row::Pool),
        _ => None,
    }
}

fn run(cli: Cli) -> Result<ExitCode, BoxError> {
    let modes = modes(&cli.mode);
    let (runtime, runtime_toml) = compute_demo::runtime_config(cli.config.as_deref())?;
    let listen = listen_addr(&cli);
    let models = Models::load()?;

    if cli.flood {
        let options = FloodOptions {
            clients: cli.clients.map_or(500, usize::from),
            body_bytes: cli.flood_body_kib.map_or(1024, usize::from) * 1024,
            runtime,
            listen,
            ..FloodOptions::default()
        };
        if !cli.quiet {
            eprintln!(
                "compute-demo: flood of {} clients x {} KiB",
                options.clients,
                options.body_bytes / 1024
            );
        }
        let report = run_flood(&options, models)?;
        println!("{}", report.summary());
        return Ok(ExitCode::SUCCESS);
    }

    if cli.serve {
        let mode = serve_mode(&cli).ok_or("--serve takes a single --mode")?;
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        let server = DemoServer::start(
            ServerOptions {
                mode: mode.mode(),
                runtime: mode.runtime(&runtime, cpus),
                listen,
                limits: Limits::default(),
                lanes: true,
            },
            models,
        )?;
        let signal = server.serve_until_signal(|server| {
            // Written, not printed: a closed stdout must not stop the server.
            let addr = server.addr();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "compute-demo serving on http://{addr} (mode {mode}); SIGTERM or Ctrl-C stops it"
            );
            let _ = writeln!(out, "  curl -s http://{addr}/ping");
            let _ = writeln!(
                out,
                "  curl -s -d '{{\"texts\": [\"hello world\"]}}' http://{addr}/tokenize"
            );
            let _ = out.flush();
        })?;
        if !cli.quiet {
            eprintln!("compute-demo: {signal} received, shut down");
        }
        return Ok(ExitCode::SUCCESS);
    }

    let base = if cli.quick {
        LoadConfig::quick()
    } else {
        LoadConfig::default()
    };
    let duration = cli.duration.unwrap_or(base.duration);
    let load = LoadConfig {
        clients: cli.clients.map_or(base.clients, usize::from),
        warmup: base.warmup.min(duration / 2),
        duration,
        ..base
    };
    if !cli.quiet {
        eprintln!(
            "compute-demo: {} mode(s) x ({:.2?} warm-up + {:.2?}), {} clients",
            modes.len(),
            load.warmup,
            load.duration,
            load.clients
        );
    }
    let load_before = docs_table::load_average();
    // The lanes measurement runs a pool server: it comes with the pool row.
    let lanes = modes.contains(&Row::Pool);
    let mut report = run_comparison(
        &CompareOptions {
            modes,
            load,
            runtime,
            runtime_toml,
            limits: Limits::default(),
            listen,
            progress: !cli.quiet,
            lanes,
        },
        models,
    )?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    report.settings.command = Some(
        format!("compute-demo {}", args.join(" "))
            .trim_end()
            .to_string(),
    );
    let provenance = Provenance {
        commit: docs_table::current_commit(),
        load_before,
        load_after: docs_table::load_average(),
    };
    println!("{}", report.table());
    println!("{}", report.settings_line());
    if let (Some(line), Some(lanes)) = (report.lanes_line(), &report.lanes) {
        println!("\n{}", lanes.table());
        println!("{line}");
        for run in &lanes.runs {
            if let Some(e) = &run.stats.first_error {
                let on = if run.lanes { "on" } else { "off" };
                println!(
                    "lanes {on}: {} failed request(s), first: {e}",
                    run.stats.total_errors()
                );
            }
        }
    }
    if let (Some(before), Some(after)) = (&provenance.load_before, &provenance.load_after) {
        println!(
            "commit {}; load average {before} before, {after} after",
            provenance.commit
        );
    }
    for m in &report.modes {
        if let Some(e) = &m.stats.first_error {
            println!(
                "{}: {} failed request(s), first: {e}",
                m.mode,
                m.stats.total_errors()
            );
        }
    }
    if let Some(path) = &cli.out {
        for written in report.write_files(path)? {
            if !cli.quiet {
                eprintln!("wrote {}", written.display());
            }
        }
    }
    if cli.update_docs {
        let files: Vec<PathBuf> = docs_table::DOC_FILES.iter().map(PathBuf::from).collect();
        for written in docs_table::update(&files, &docs_table::block(&report, &provenance))? {
            if !cli.quiet {
                eprintln!("updated {}", written.display());
            }
        }
    }
    let mut empty: Vec<String> = report
        .modes
        .iter()
        .flat_map(|m| {
            Endpoint::ALL.iter().filter_map(move |&e| {
                let served = m.stats.endpoint(e).is_some_and(|s| s.requests > 0);
                (!served).then(|| format!("{} {}", m.mode, e.path()))
            })
        })
        .collect();
    empty.extend(report.lanes.iter().flat_map(|l| l.unserved()));
    if !empty.is_empty() {
        eprintln!(
            "error: no successful request measured for: {}",
            empty.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = check_usage(&cli) {
        e.exit();
    }
    // Warnings (for example an oversubscribed [runtime]) go to stderr;
    // RUST_LOG overrides the level.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("12").unwrap(), Duration::from_secs(12));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("2h").is_err());
    }

    #[test]
    fn modes_expand_and_dedup() {
        assert_eq!(modes(&[ModeArg::All]), Row::ALL.to_vec());
        assert_eq!(
            modes(&[ModeArg::Naive, ModeArg::Pool, ModeArg::Naive]),
            vec![Row::Naive, Row::Pool]
        );
        assert_eq!(modes(&[ModeArg::PoolThroughput]), vec![Row::PoolThroughput]);
    }

    #[test]
    fn the_embedded_config_parses() {
        let (config, text) = compute_demo::runtime_config(None).unwrap();
        assert!(text.contains("[runtime]"));
        assert_eq!(config.compute_stack_size, Some(2 * 1024 * 1024));
    }

    #[test]
    fn cli_rejects_bad_values() {
        assert!(Cli::try_parse_from(["compute-demo", "--clients", "0"]).is_err());
        assert!(Cli::try_parse_from(["compute-demo", "--mode", "fast"]).is_err());
        assert!(Cli::try_parse_from(["compute-demo", "--serve", "--quick"]).is_err());
        let cli = Cli::try_parse_from(["compute-demo", "--mode", "pool,naive", "--duration", "2s"])
            .unwrap();
        assert_eq!(modes(&cli.mode), vec![Row::Pool, Row::Naive]);
        assert!(check_usage(&cli).is_ok());
    }

    #[test]
    fn pool_throughput_and_update_docs_parse() {
        let cli =
            Cli::try_parse_from(["compute-demo", "--mode", "pool-throughput", "--update-docs"])
                .unwrap();
        assert_eq!(modes(&cli.mode), vec![Row::PoolThroughput]);
        assert!(cli.update_docs);
        assert!(Cli::try_parse_from(["compute-demo", "--serve", "--update-docs"]).is_err());
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        let cli = Cli::try_parse_from(["compute-demo", "--serve", "--mode", "pool,naive"]).unwrap();
        assert_eq!(check_usage(&cli).unwrap_err().exit_code(), 2);
        let cli = Cli::try_parse_from(["compute-demo", "--listen", "192.0.2.1:0"]).unwrap();
        assert_eq!(check_usage(&cli).unwrap_err().exit_code(), 2);
        let cli = Cli::try_parse_from(["compute-demo", "--serve", "--mode", "all"]).unwrap();
        assert_eq!(serve_mode(&cli), Some(Row::Pool));
    }

    #[test]
    fn listen_takes_host_names() {
        let addr = parse_listen("localhost:8080").unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
        assert_eq!(addr.port(), 8080);
        assert_eq!(
            parse_listen("127.0.0.1:0").unwrap(),
            SocketAddr::from(([127, 0, 0, 1], 0))
        );
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("not-an-address").is_err());
    }

    #[test]
    fn flood_flags_parse() {
        let cli = Cli::try_parse_from([
            "compute-demo",
            "--flood",
            "--clients",
            "20",
            "--flood-body-kib",
            "64",
        ])
        .unwrap();
        assert!(cli.flood);
        assert_eq!((cli.clients, cli.flood_body_kib), (Some(20), Some(64)));
        assert!(Cli::try_parse_from(["compute-demo", "--flood", "--serve"]).is_err());
        assert!(Cli::try_parse_from(["compute-demo", "--flood-body-kib", "64"]).is_err());
        assert!(
            Cli::try_parse_from(["compute-demo", "--flood", "--flood-body-kib", "2048"]).is_err()
        );
    }

    #[test]
    fn the_documented_minimum_duration_parses() {
        assert_eq!(parse_duration("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("9ms").is_err());
    }
}
