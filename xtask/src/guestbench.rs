//! `cargo xtask bench`, kernel half: runs `guest/bench.sh` in a guest and reports
//! medians and ratios of the workload untraced, under copyup-trace and under tracefs
//! kprobe events, measured side by side in one boot.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::Value;

use crate::{guest::GuestFile, kernels::GuestKernel};

const BPFTRACE: &str = "/usr/bin/bpftrace";

/// bpftrace and every shared library it loads (from `ldd`), at the same paths.
pub fn bpftrace_files() -> Result<Vec<GuestFile>> {
    let out = std::process::Command::new("ldd")
        .arg(BPFTRACE)
        .output()
        .context("running ldd on bpftrace")?;
    ensure!(out.status.success(), "ldd {BPFTRACE} failed");
    let mut files = vec![GuestFile {
        guest_path: BPFTRACE.into(),
        host_path: BPFTRACE.into(),
        mode: 0o755,
    }];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        files.push(GuestFile {
            guest_path: path.to_string(),
            host_path: std::fs::canonicalize(path).with_context(|| format!("resolving {path}"))?,
            mode: 0o755,
        });
    }
    Ok(files)
}

pub const SCRIPT: &str = include_str!("../guest/bench.sh");

#[derive(Debug, Default, Clone)]
pub struct Round {
    pub mode: String,
    pub n: u32,
    pub fields: BTreeMap<String, u64>,
    pub report: Option<Value>,
    pub burst: bool,
}

impl Round {
    fn get(&self, k: &str) -> Option<u64> {
        self.fields.get(k).copied()
    }

    fn copy_ups(&self) -> Option<u64> {
        match &self.report {
            Some(r) => r["total"]["stats"]["copy_ups"].as_u64(),
            None => self.get("copy_ups"),
        }
    }

    fn lost(&self) -> Option<u64> {
        self.report.as_ref().and_then(|r| r["lost"].as_u64())
    }
}

pub fn parse(results: &str) -> Result<Vec<Round>> {
    let mut rounds: Vec<Round> = Vec::new();
    let mut reports: BTreeMap<u32, Value> = BTreeMap::new();
    let mut burst_n = None;
    for line in results.lines() {
        if let Some(rest) = line.strip_prefix("@@ROUND ") {
            let mut it = rest.split_whitespace();
            let mode = it.next().ok_or_else(|| anyhow!("bad round {line:?}"))?;
            let n: u32 = it
                .next()
                .ok_or_else(|| anyhow!("bad round {line:?}"))?
                .parse()?;
            let fields = it
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect();
            rounds.push(Round {
                mode: mode.to_string(),
                n,
                fields,
                ..Default::default()
            });
        } else if let Some(rest) = line.strip_prefix("@@REPORT ") {
            let (n, json) = rest
                .split_once(' ')
                .ok_or_else(|| anyhow!("bad report line"))?;
            reports.insert(
                n.parse()?,
                serde_json::from_str(json).context("report JSON")?,
            );
        } else if let Some(n) = line.strip_prefix("@@BURST ") {
            burst_n = Some(n.trim().parse::<u32>()?);
        }
    }
    for r in &mut rounds {
        r.report = reports.remove(&r.n);
        r.burst = Some(r.n) == burst_n;
    }
    Ok(rounds)
}

fn median(mut v: Vec<u64>) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.sort_unstable();
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2
    })
}

fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

/// Markdown report of one guest run.
pub fn report(kernel: &GuestKernel, rounds: &[Round], wall: Duration) -> Result<String> {
    let regular: Vec<&Round> = rounds.iter().filter(|r| !r.burst).collect();
    let by_mode = |mode: &str, f: &dyn Fn(&Round) -> Option<u64>| -> Vec<u64> {
        regular
            .iter()
            .filter(|r| r.mode == mode)
            .filter_map(|r| f(r))
            .collect()
    };
    let elapsed = |mode: &str| median(by_mode(mode, &|r| r.get("elapsed_ns")));
    // Soak runs (`--modes`) may leave out the untraced rounds; ratios are then "-".
    let base = elapsed("none");
    let n_rounds = regular.iter().map(|r| r.n).max().unwrap_or(0) as usize
        / ["none", "copyup-trace", "bpftrace", "tracefs"]
            .iter()
            .filter(|m| regular.iter().any(|r| r.mode == **m))
            .count()
            .max(1);

    let mut md = String::new();
    writeln!(
        md,
        "### Kernel {} (qemu TCG, 2 vCPUs), {n_rounds} rounds per mode\n",
        kernel.version
    )?;
    writeln!(md, "Workload: `chown -R 1000:1000` over 10,000 files of 4 KiB and 3 of 4 MiB in a lower layer (10,005 copy-ups with the two directories), on tmpfs.\n")?;
    writeln!(
        md,
        "| mode | median workload time | vs untraced | copy-ups seen | lost |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    for mode in ["none", "copyup-trace", "bpftrace", "tracefs"] {
        let Some(t) = elapsed(mode) else { continue };
        let seen = median(by_mode(mode, &|r| r.copy_ups().or(r.get("events"))));
        let lost = median(by_mode(mode, &|r| r.lost()));
        writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            if mode == "none" { "untraced" } else { mode },
            ms(t),
            base.map(|b| format!("{:+.1}%", (t as f64 / b as f64 - 1.0) * 100.0))
                .unwrap_or_else(|| "-".into()),
            seen.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            lost.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
        )?;
    }
    let per_copy = median(by_mode("copyup-trace", &|r| {
        Some(r.get("bpf_ns")? / r.copy_ups()?.max(1))
    }));
    let rss = median(by_mode("copyup-trace", &|r| r.get("rss_kb")));
    let attach = median(by_mode("copyup-trace", &|r| r.get("attach_us")));
    writeln!(md)?;
    if let Some(p) = per_copy {
        writeln!(md, "- copyup-trace in-kernel cost per copy-up (`kernel.bpf_stats_enabled`, run_time_ns summed over its programs / copy-ups): **{p} ns** (median)")?;
    }
    if let Some(r) = rss {
        writeln!(
            md,
            "- copyup-trace peak RSS (VmHWM): **{:.1} MiB**",
            r as f64 / 1024.0
        )?;
    }
    if let Some(a) = attach {
        writeln!(md, "- copyup-trace start to probes attached (BTF parsing, load, verify, attach): **{:.0} ms**", a as f64 / 1000.0)?;
    }
    if let Some(b) = rounds.iter().find(|r| r.burst) {
        writeln!(
            md,
            "- burst of 100,000 small-file copy-ups (empty files), default 4 MiB ring: {} copy-ups seen, {} objects in the upper layer, **{} lost**, {} failed copy-ups, workload {}",
            b.copy_ups().unwrap_or(0),
            b.get("upper").unwrap_or(0).saturating_sub(1),
            b.lost().map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
            b.report
                .as_ref()
                .and_then(|r| r["total"]["stats"]["errors"].as_u64())
                .unwrap_or(0),
            ms(b.get("elapsed_ns").unwrap_or(0)),
        )?;
    }
    writeln!(
        md,
        "- guest wall time for all rounds: {:.0} s",
        wall.as_secs_f64()
    )?;
    Ok(md)
}

/// Sanity checks that make a report worth writing.
pub fn validate(rounds: &[Round]) -> Result<()> {
    ensure!(!rounds.is_empty(), "the guest produced no rounds");
    for r in rounds {
        ensure!(r.get("elapsed_ns").is_some(), "round {} has no time", r.n);
        if r.mode == "copyup-trace" {
            ensure!(
                r.report.is_some(),
                "round {} has no copyup-trace report",
                r.n
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3, 1, 2]), Some(2));
        assert_eq!(median(vec![4, 1, 2, 3]), Some(2));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn rounds_and_reports() {
        let text = "@@ROUND none 1 elapsed_ns=100 upper=5\n\
                    @@REPORT 2 {\"lost\":0,\"total\":{\"stats\":{\"copy_ups\":4}}}\n\
                    @@ROUND copyup-trace 2 elapsed_ns=102 upper=5 bpf_ns=4000 rss_kb=9000 attach_us=1500\n\
                    @@BURST 3\n@@ROUND copyup-trace 3 elapsed_ns=9 upper=7\n";
        let r = parse(text).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].copy_ups(), Some(4));
        assert_eq!(r[1].lost(), Some(0));
        assert!(r[2].burst && !r[1].burst);
        assert_eq!(r[0].get("elapsed_ns"), Some(100));
    }
}
