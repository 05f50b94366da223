//! `cargo xtask bench`, user-space half: the criterion benchmark of decoding and
//! aggregation, then each benchmark's median throughput against the 5 M events/s target.
//! The kernel half is `guestbench`'s.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

/// Events per second that one core must keep up with.
const TARGET: f64 = 5e6;
/// Criterion group and benchmark names in `copyup-trace/benches/pipeline.rs`.
const GROUP: &str = "pipeline";
const BENCHES: &[&str] = &[
    "decode",
    "decode+aggregate",
    "decode+aggregate+json",
    "decode+enrich+aggregate",
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
    println!("median throughput (target {:.0} M events/s):", TARGET / 1e6);
    let mut missed = 0;
    for name in BENCHES {
        let rate = events_per_sec(&dir.join(name).join("new"))
            .with_context(|| format!("reading criterion results of {GROUP}/{name}"))?;
        let verdict = if rate >= TARGET {
            "ok"
        } else {
            missed += 1;
            "below target"
        };
        println!(
            "  {name:<26} {:>7.3} M events/s  {:>5.1}% of target  {verdict}",
            rate / 1e6,
            100.0 * rate / TARGET
        );
    }
    if missed > 0 {
        println!("{missed} of {} below target", BENCHES.len());
    }
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
