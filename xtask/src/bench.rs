//! `cargo xtask bench`, user-space half: the criterion benchmark of decoding and
//! aggregation, then each benchmark's median throughput against its target, then the
//! bounded-memory benchmark (1,000,000 distinct paths under 64 MiB, totals exact). The
//! kernel half is `guestbench`'s.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// Criterion group and benchmark names in `copyup-trace/benches/pipeline.rs`, with the
/// events per second one core must keep up with (JSON lines: 2 M, the rest 5 M).
const GROUP: &str = "pipeline";
const BENCHES: &[(&str, f64)] = &[
    ("decode", 5e6),
    ("decode+aggregate", 5e6),
    ("decode+aggregate+json", 2e6),
    ("decode+enrich+aggregate", 5e6),
];

pub fn run() -> Result<()> {
    crate::cmd::run(crate::cmd::cargo().args([
        "bench",
        "-p",
        "copyup-trace",
        "--bench",
        "pipeline",
    ]))?;
    let dir = criterion_home().join(GROUP);
    println!();
    println!("median throughput:");
    let mut missed = 0;
    for &(name, target) in BENCHES {
        let rate = events_per_sec(&dir.join(name).join("new"))
            .with_context(|| format!("reading criterion results of {GROUP}/{name}"))?;
        let verdict = if rate >= target {
            "ok"
        } else {
            missed += 1;
            "below target"
        };
        println!(
            "  {name:<26} {:>7.3} M events/s  {:>5.1}% of the {:.0} M target  {verdict}",
            rate / 1e6,
            100.0 * rate / target,
            target / 1e6
        );
    }
    if missed > 0 {
        println!("{missed} of {} below target", BENCHES.len());
    }
    // Prints its figures and fails when the peak RSS or a total is off.
    crate::cmd::run(crate::cmd::cargo().args([
        "bench",
        "-p",
        "copyup-trace",
        "--bench",
        "memory",
    ]))?;
    Ok(())
}

/// Where criterion writes its results: `$CRITERION_HOME`, else `criterion` in the target
/// directory.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::cmd::workspace_root().join("target"))
        .join("criterion")
}

/// Elements per iteration (from `benchmark.json`) over the median time per iteration
/// (`estimates.json`, in ns).
fn events_per_sec(dir: &Path) -> Result<f64> {
    let read = |file: &str| -> Result<Value> {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    };
    let elements = read("benchmark.json")?["throughput"]["Elements"]
        .as_f64()
        .context("no element throughput in benchmark.json")?;
    let median_ns = read("estimates.json")?["median"]["point_estimate"]
        .as_f64()
        .filter(|ns| *ns > 0.0)
        .context("no median in estimates.json")?;
    Ok(elements / (median_ns * 1e-9))
}
