//! `observebridge eval`: accuracy and speed of the engine's algorithms on public benchmarks.
//!
//! - `eval loghub DIR`: the log template miner on Loghub's labelled 2k samples (see
//!   [`observebridge_dataflows::logs::loghub`]), with the default configuration, against Drain's
//!   published grouping accuracy.

use std::path::Path;

use anyhow::{bail, Result};
use observebridge_dataflows::logs::loghub;
use observebridge_dataflows::logs::{MaskConfig, MinerConfig};

/// Prints a Markdown table (system, lines, clusters, GA, Drain GA, PA, lines/s) for every
/// Loghub system found in `dir`, with one default configuration for all of them.
pub fn run_loghub(dir: &Path) -> Result<()> {
    let cfg = MinerConfig::default();
    let scores = loghub::evaluate(dir, &cfg, &MaskConfig::default()).map_err(anyhow::Error::msg)?;
    println!("Loghub 2k, default configuration (depth {}, sim_threshold {}), masking + mining on one core:\n", cfg.depth, cfg.sim_threshold);
    println!("| system | lines | clusters (truth) | GA | Drain GA | PA | lines/s |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for s in &scores {
        let mark = if s.ga >= s.drain_ga { "" } else { " (below)" };
        let pa = s.pa.map_or_else(|| "-".to_string(), |p| format!("{p:.4}"));
        println!("| {} | {} | {} ({}) | {:.4}{mark} | {:.4} | {pa} | {:.0} |", s.system, s.lines, s.clusters, s.truth_groups, s.ga, s.drain_ga, s.lines_per_sec);
    }
    let n = scores.len() as f64;
    let mean = |f: &dyn Fn(&loghub::SystemScore) -> f64| scores.iter().map(f).sum::<f64>() / n;
    let lines: usize = scores.iter().map(|s| s.lines).sum();
    let seconds: f64 = scores.iter().map(|s| s.lines as f64 / s.lines_per_sec).sum();
    println!(
        "| **all** | {lines} | | {:.4} | {:.4} | {:.4} | {:.0} |",
        mean(&|s| s.ga),
        mean(&|s| s.drain_ga),
        mean(&|s| s.pa.unwrap_or(0.0)),
        lines as f64 / seconds
    );
    let below: Vec<&str> = scores.iter().filter(|s| s.ga < s.drain_ga).map(|s| s.system.as_str()).collect();
    if !below.is_empty() {
        bail!("grouping accuracy below Drain's on {}", below.join(", "));
    }
    println!("\nGA >= Drain's published GA on all {} systems.", scores.len());
    Ok(())
}
