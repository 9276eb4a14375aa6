//! `observebridge`: one binary for the engine.
//!
//! # Layout
//! - `main.rs`: the command line, the live terminal summary and the end-of-run report.
//! - [`job`]: the job spec (YAML), parsed strictly and validated before anything starts.
//! - [`runtime`]: sources -> driver -> timely workers -> coordinator -> sinks, and commits.
//! - [`eval`]: accuracy and speed on public benchmarks (`observebridge eval loghub DIR`).

mod eval;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Parser, Subcommand};

use observebridge::job::{self, JobSpec};
use observebridge::runtime::{self, Stats};

/// mimalloc: the dataflow allocates and frees many small strings per record; glibc's malloc
/// spent about a third of decode + metric_1m's time in a profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// ObserveBridge: an incremental dataflow engine for operations telemetry.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs a job in the foreground; without JOB, the embedded default (the demo estate).
    Run {
        /// Job spec (YAML). Default: the embedded demo job (schemas/jobs/default.yaml).
        job: Option<PathBuf>,
        /// Overrides the spec's worker count.
        #[arg(long)]
        workers: Option<usize>,
        /// Overrides the generator's seed (embedded default only).
        #[arg(long)]
        seed: Option<u64>,
        /// Prints a machine-readable report (records/s, freshness percentiles, peak RSS) as JSON
        /// at the end of the run; used by the end-to-end load benchmark.
        #[arg(long)]
        report: bool,
        /// Where `/metrics` (Prometheus), `/healthz` and `/readyz` are served (a taken port is a
        /// warning, not an error).
        #[arg(long, env = "OBSERVEBRIDGE_LISTEN", default_value = "127.0.0.1:7070")]
        listen: std::net::SocketAddr,
    },
    /// Replays a window `[--from, --to)` from object storage through a job's dataflows and
    /// rewrites that window's rows in the job's sinks (Postgres and Parquet).
    Replay {
        /// The job spec (YAML) whose views, parameters and sinks the replay uses.
        #[arg(long)]
        job: PathBuf,
        /// First event time of the window: RFC 3339 (`2026-11-22T10:00:00Z`) or ms since the epoch.
        #[arg(long, value_parser = observebridge::replay::parse_time)]
        from: i64,
        /// End of the window (exclusive), like --from.
        #[arg(long, value_parser = observebridge::replay::parse_time)]
        to: i64,
        /// Where the input is (`s3://bucket/prefix`, `file:///dir`, a path). Default: the job's
        /// Parquet sink (its raw archive). Endpoint and credentials come from the job's Parquet sink.
        #[arg(long)]
        source: Option<String>,
        /// `raw-archive` (ObserveBridge's raw archive) or `collector` (the OpenTelemetry
        /// Collector's S3 exporter files).
        #[arg(long, value_enum, default_value = "raw-archive")]
        layout: LayoutArg,
        /// For `--layout collector`: the exporter's `s3_partition_format`.
        #[arg(long)]
        partition_format: Option<String>,
        /// What a missing or unreadable object does: `stop` the replay, or `skip` it (reported).
        #[arg(long, value_enum, default_value = "stop")]
        on_error: OnErrorArg,
        /// Prints the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Hosts many jobs behind an HTTP API (`/v1/jobs`); jobs survive restarts.
    Serve {
        /// Address of the HTTP API (port 0: any free port; the bound address is printed).
        #[arg(long, env = "OBSERVEBRIDGE_LISTEN", default_value = "127.0.0.1:7070")]
        listen: std::net::SocketAddr,
        /// Where job specs are kept when there is no --postgres-url.
        #[arg(long, env = "OBSERVEBRIDGE_STATE_DIR", default_value = "./data/server")]
        state_dir: PathBuf,
        /// Keep job specs in this Postgres database (table observebridge_jobs).
        #[arg(long, env = "OBSERVEBRIDGE_POSTGRES_URL", hide_env_values = true)]
        postgres_url: Option<String>,
        /// The schema of the job table with --postgres-url.
        #[arg(long, env = "OBSERVEBRIDGE_POSTGRES_SCHEMA", default_value = "public")]
        postgres_schema: String,
        /// A bearer token the API accepts (repeat for several); none = no authentication.
        #[arg(long = "token", env = "OBSERVEBRIDGE_API_TOKENS", value_delimiter = ',', hide_env_values = true)]
        tokens: Vec<String>,
    },
    /// Job specs, and jobs on a server.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// Accuracy and speed on public benchmarks.
    Eval {
        #[command(subcommand)]
        what: EvalCommand,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LayoutArg {
    RawArchive,
    Collector,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OnErrorArg {
    Stop,
    Skip,
}

#[derive(Subcommand, Debug)]
enum EvalCommand {
    /// The log template miner on Loghub's labelled 2k samples (GA, PA, lines/s against Drain).
    Loghub {
        /// Directory with `<System>/<System>_2k.log` and `<System>_2k.log_structured.csv`.
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum JobCommand {
    /// Checks a job spec without running it (no network, no files touched). Exit 2 when invalid.
    Validate { job: PathBuf },
    /// Submits a job spec (YAML or JSON) to a server and starts it.
    Submit {
        job: PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Lists the server's jobs.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Shows a job: state, sources' lag, watermark, records/s, dead letters, sinks' frontiers.
    /// Exit 6 when the job has failed.
    Status {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stops a job after its current frontier is durable.
    Stop {
        id: String,
        /// Also forget the job (its name can be submitted again).
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Stops a job and starts it again from its committed offsets.
    Restart {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// Where the jobs API is. Exit codes: 0 done, 1 server unreachable or failed, 2 invalid spec,
/// 3 no such job, 4 name taken, 5 token refused.
#[derive(clap::Args, Debug)]
struct ServerArgs {
    /// The server's API.
    #[arg(long = "server", env = "OBSERVEBRIDGE_SERVER", default_value = "http://127.0.0.1:7070")]
    url: String,
    /// Bearer token for the API.
    #[arg(long, env = "OBSERVEBRIDGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Prints the server's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let code = match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Eval { what: EvalCommand::Loghub { dir } } => eval::run_loghub(&dir).map(|()| 0),
        Command::Serve { listen, state_dir, postgres_url, postgres_schema, tokens } => {
            let tokens = tokens.into_iter().map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
            observebridge::server::serve(observebridge::server::ServerConfig { listen, state_dir, postgres_url, postgres_schema, tokens }).map(|()| 0)
        }
        Command::Job { command } => job_command(command),
        Command::Replay { job, from, to, source, layout, partition_format, on_error, json } => {
            use observebridge_connectors::archive::{Layout, OnError};
            let spec = JobSpec::load(&job).map_err(anyhow::Error::new)?;
            let problems = spec.validate();
            if !problems.is_empty() {
                anyhow::bail!(job::SpecError::Invalid { origin: job.display().to_string(), problems });
            }
            let layout = match layout {
                LayoutArg::RawArchive => Layout::RawArchive,
                LayoutArg::Collector => Layout::Collector,
            };
            let on_error = match on_error {
                OnErrorArg::Stop => OnError::Stop,
                OnErrorArg::Skip => OnError::Skip,
            };
            let request = observebridge::replay::ReplayRequest { from_ms: from, to_ms: to, source, layout, partition_format, on_error };
            replay_command(spec, &request, json)
        }
        Command::Run { job, workers, seed, report, listen } => {
            let mut spec = match &job {
                Some(path) => JobSpec::load(path),
                None => JobSpec::parse(job::DEFAULT_JOB, "(embedded default)"),
            }
            .map_err(anyhow::Error::new)?;
            if let Some(w) = workers {
                spec.workers = w;
            }
            if let Some(seed) = seed {
                for source in &mut spec.sources {
                    if let Some(g) = source.generator.as_mut() {
                        g.seed = seed;
                    }
                }
            }
            let problems = spec.validate();
            if !problems.is_empty() {
                anyhow::bail!(job::SpecError::Invalid { origin: "command line".into(), problems });
            }
            run_job(spec, job.is_none(), report, listen)
        }
    }
}

/// `observebridge job ...`.
fn job_command(command: JobCommand) -> Result<i32> {
    use observebridge::client::{self, Client};
    use observebridge::server::JobState;
    let server = match &command {
        JobCommand::Validate { job } => {
            return match JobSpec::load(job) {
                Ok(spec) => {
                    println!("{}: valid job `{}` ({} source(s))", job.display(), spec.name, spec.sources.len());
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(2)
                }
            };
        }
        JobCommand::Submit { server, .. } | JobCommand::List { server } | JobCommand::Status { server, .. } | JobCommand::Stop { server, .. } | JobCommand::Restart { server, .. } => server,
    };
    let (json, client) = (server.json, Client::new(&server.url, server.token.clone())?);
    // The spec is read before anything is sent: a missing file is not the server's answer.
    let submitted = match &command {
        JobCommand::Submit { job, .. } => Some(std::fs::read_to_string(job).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", job.display()))?),
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let answer = rt.block_on(async {
        Ok::<_, client::ClientError>(match command {
            JobCommand::Validate { .. } => unreachable!("answered above"),
            JobCommand::Submit { .. } => {
                let s = client.submit(submitted.unwrap_or_default()).await?;
                (if json { pretty(&s) } else { format!("submitted job `{}` ({})", s.id, s.state.as_str()) }, 0)
            }
            JobCommand::List { .. } => {
                let jobs = client.list().await?;
                (if json { pretty(&jobs) } else { client::format_list(&jobs).trim_end().to_string() }, 0)
            }
            JobCommand::Status { id, .. } => {
                let s = client.status(&id).await?;
                (if json { pretty(&s) } else { client::format_status(&s).trim_end().to_string() }, client::status_exit_code(s.state))
            }
            JobCommand::Stop { id, purge, .. } => {
                let s = client.stop(&id, purge).await?;
                let what = if purge && s.state != JobState::Stopping { "stopped and purged" } else { s.state.as_str() };
                (if json { pretty(&s) } else { format!("job `{}`: {what}", s.id) }, 0)
            }
            JobCommand::Restart { id, .. } => {
                let s = client.restart(&id).await?;
                (if json { pretty(&s) } else { format!("job `{}` restarted ({})", s.id, s.state.as_str()) }, 0)
            }
        })
    });
    match answer {
        Ok((out, code)) => {
            println!("{out}");
            Ok(code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Ok(e.exit_code())
        }
    }
}

/// `observebridge replay`: a progress bar on a terminal (plain lines otherwise), the summary at
/// the end.
fn replay_command(spec: JobSpec, request: &observebridge::replay::ReplayRequest, json: bool) -> Result<i32> {
    use observebridge::replay::{self, format_ms};
    let plan = replay::plan(&spec, request)?;
    eprintln!(
        "replaying job `{}` over [{}, {}) (reading from {} for the warm-up, to {} for the tail) from {}",
        spec.name,
        format_ms(plan.window.from_ms),
        format_ms(plan.window.to_ms),
        format_ms(plan.window.from_ms - plan.window.warmup_ms),
        format_ms(plan.window.to_ms + plan.window.tail_ms),
        plan.archive.store.url
    );
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc_handler(move || stop.store(true, Ordering::Relaxed))?;
    }
    let terminal = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::with_draw_target(None, if terminal { indicatif::ProgressDrawTarget::stderr() } else { indicatif::ProgressDrawTarget::hidden() });
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} {msg} ETA {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut last_line = Instant::now();
    let summary = replay::replay(spec, request, Arc::clone(&stop), |p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
        bar.set_message(format!("objects {}/{} records {}{}", p.objects_done, p.objects_total, p.records, if p.skipped > 0 { format!(" skipped {}", p.skipped) } else { String::new() }));
        if !terminal && last_line.elapsed() >= Duration::from_secs(5) {
            last_line = Instant::now();
            eprintln!("replay: objects {}/{} bytes {}/{} records {} skipped {}", p.objects_done, p.objects_total, p.bytes_done, p.bytes_total, p.records, p.skipped);
        }
    });
    bar.finish_and_clear();
    let summary = summary?;
    if json {
        println!("{}", serde_json::to_string(&summary)?);
    }
    eprintln!(
        "replay done: {} objects ({} bytes, {} list requests), {} records in {:.1} s ({:.0} records/s), {} dead letters",
        summary.objects, summary.bytes, summary.list_requests, summary.records, summary.seconds, summary.records_per_s, summary.dead_letters
    );
    for (view, c) in &summary.postgres {
        eprintln!("  postgres {view}: {} changed, {} removed, {} unchanged", c.changed, c.removed, c.unchanged);
    }
    eprintln!("  parquet: {} objects written, {} stale objects deleted", summary.parquet_written.len(), summary.parquet_deleted.len());
    for (key, reason) in &summary.skipped {
        eprintln!("  skipped {key}: {reason}");
    }
    for note in &summary.notes {
        eprintln!("  note: {note}");
    }
    Ok(0)
}

/// The server's answer as pretty JSON (`--json`).
fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn run_job(spec: JobSpec, embedded: bool, report: bool, listen: std::net::SocketAddr) -> Result<i32> {
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        ctrlc_handler(move || stop.store(true, Ordering::Relaxed))?;
    }
    let stats = Arc::new(Stats::default());
    if let Some(addr) = observebridge::server::ops::serve_in_background(listen, spec.name.clone(), Arc::clone(&stats)) {
        eprintln!("metrics: http://{addr}/metrics (health: /healthz, /readyz)");
    }
    let outputs = describe_outputs(&spec);
    if embedded {
        eprintln!("ObserveBridge: running the embedded demo job (a generated microservice estate).");
    }
    eprintln!("job `{}`: {} worker(s); output: {}. Ctrl-C stops after the current frontier is durable.", spec.name, spec.workers, outputs);
    let started = Instant::now();
    let summary = {
        let stats = Arc::clone(&stats);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || live_summary(&stats, &stop, &outputs))
    };
    let result = runtime::run(spec, Arc::clone(&stop), Arc::clone(&stats));
    stop.store(true, Ordering::Relaxed);
    let _ = summary.join();
    let elapsed = started.elapsed();
    let run = result?;
    eprintln!(
        "\nstopped after {:.1}s: {} records in {} epochs, {} dead letters, {} rows upserted, {} windows written.",
        elapsed.as_secs_f64(),
        run.records_in,
        run.epochs,
        run.dead_letters,
        stats.rows_upserted.load(Ordering::Relaxed),
        stats.windows_written.load(Ordering::Relaxed)
    );
    if report {
        println!("{}", load_report(&stats, elapsed));
    }
    Ok(0)
}

/// Where the job's output goes, for people.
fn describe_outputs(spec: &JobSpec) -> String {
    let mut outputs = Vec::new();
    if let Some(pq) = &spec.sinks.parquet {
        outputs.push(format!("parquet at {}", pq.url));
    }
    if spec.sinks.postgres.is_some() {
        outputs.push("postgres".to_string());
    }
    if let Some(k) = &spec.sinks.kafka {
        outputs.push(format!("kafka topics {}<view>", k.topic_prefix));
    }
    if let Some(f) = &spec.dead_letter.file {
        outputs.push(format!("dead letters to {}", f.path.display()));
    } else if let Some(k) = &spec.dead_letter.kafka {
        outputs.push(format!("dead letters to topic {}", k.topic));
    }
    outputs.join(", ")
}

/// A short live summary on the terminal (a log line every 10 s when stderr is not a terminal).
fn live_summary(stats: &Stats, stop: &AtomicBool, outputs: &str) {
    let terminal = std::io::stderr().is_terminal();
    let period = if terminal { Duration::from_secs(1) } else { Duration::from_secs(10) };
    let mut last = (Instant::now(), 0u64);
    let mut next = Instant::now() + period;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if Instant::now() < next {
            continue;
        }
        next += period;
        let records = stats.records_in.load(Ordering::Relaxed);
        let rate = (records - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-9);
        last = (Instant::now(), records);
        let wm = stats.watermark.load(Ordering::Relaxed);
        let wm = if wm == i64::MIN { "-".to_string() } else { observebridge_dataflows::window::fmt_ms(wm) };
        let line = format!(
            "{records} records ({rate:.0}/s) | {} rows upserted | {} windows written | {} dead letters | watermark {wm} | {outputs}",
            stats.rows_upserted.load(Ordering::Relaxed),
            stats.windows_written.load(Ordering::Relaxed),
            stats.dead_letters.load(Ordering::Relaxed),
        );
        if terminal {
            eprint!("\r\x1b[2K{line}");
        } else {
            tracing::info!(target: "observebridge::summary", "{line}");
        }
    }
}

/// The end-of-run report: throughput, freshness percentiles and peak memory.
fn load_report(stats: &Stats, elapsed: Duration) -> serde_json::Value {
    let mut fresh = stats.freshness_ms.lock().map(|f| f.clone()).unwrap_or_default();
    fresh.sort_by(f64::total_cmp);
    let pct = |q: f64| fresh.get(((fresh.len() as f64 * q).ceil() as usize).saturating_sub(1)).copied();
    let records = stats.records_in.load(Ordering::Relaxed);
    let decoded = stats.decoded.load(Ordering::Relaxed);
    serde_json::json!({
        "seconds": elapsed.as_secs_f64(),
        "messages": records,
        "records_decoded": decoded,
        "records_per_second": decoded as f64 / elapsed.as_secs_f64().max(1e-9),
        "messages_per_second": records as f64 / elapsed.as_secs_f64().max(1e-9),
        "freshness_ms": { "p50": pct(0.50), "p99": pct(0.99), "max": fresh.last() },
        "rows_upserted": stats.rows_upserted.load(Ordering::Relaxed),
        "rows_deleted": stats.rows_deleted.load(Ordering::Relaxed),
        "windows_written": stats.windows_written.load(Ordering::Relaxed),
        "epochs_durable": stats.epochs_durable.load(Ordering::Relaxed),
        "dead_letters": stats.dead_letters.load(Ordering::Relaxed),
        "late_records": stats.late.load(Ordering::Relaxed),
        "sink_retries": stats.sink_retries.load(Ordering::Relaxed),
        "peak_rss_mib": peak_rss_mib(),
        "counters": stats.counters(),
    })
}

/// Peak resident set size of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Runs `f` on SIGINT/SIGTERM (a second Ctrl-C exits at once).
fn ctrlc_handler(f: impl Fn() + Send + 'static) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => return,
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            f();
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        });
    });
    Ok(())
}
