//! `cargo xtask bench`, kernel half: parses what `guest/bench.sh` printed in a guest and
//! reports medians and ratios of the workload untraced, under copyup-trace, under
//! bpftrace and under tracefs kprobe events, measured side by side in one boot. Booting
//! the guest is `guest`'s job; the user-space half is `bench`'s.

use std::{collections::BTreeMap, fmt, fmt::Write as _, time::Duration};

use anyhow::{anyhow, ensure, Context, Result};
use clap::{builder::PossibleValue, ValueEnum};
use serde_json::Value;

use crate::{cmd::capture, guest::GuestFile, progs};

/// What a round runs the workload under. The names are those of `--modes` and of the
/// guest script's `MODES` and `@@ROUND` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Untraced.
    None,
    CopyupTrace,
    Bpftrace,
    /// Plain tracefs kprobe events.
    Tracefs,
}

impl Mode {
    /// Every mode, in the order the report lists them.
    pub const ALL: [Mode; 4] = [Mode::None, Mode::CopyupTrace, Mode::Bpftrace, Mode::Tracefs];

    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::CopyupTrace => "copyup-trace",
            Mode::Bpftrace => "bpftrace",
            Mode::Tracefs => "tracefs",
        }
    }

    /// The name in the report.
    fn label(self) -> &'static str {
        match self {
            Mode::None => "untraced",
            m => m.name(),
        }
    }
}

impl ValueEnum for Mode {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const BPFTRACE: &str = "/usr/bin/bpftrace";

/// bpftrace and every shared library it loads (from `ldd`), at the same paths.
pub fn bpftrace_files() -> Result<Vec<GuestFile>> {
    let libs = capture(std::process::Command::new("ldd").arg(BPFTRACE))?;
    let mut files = vec![GuestFile {
        guest_path: BPFTRACE.into(),
        host_path: BPFTRACE.into(),
        mode: 0o755,
    }];
    for line in libs.lines() {
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

#[derive(Debug, Clone)]
pub struct Round {
    pub mode: Mode,
    pub n: u32,
    pub fields: BTreeMap<String, u64>,
    pub report: Option<Value>,
    pub burst: bool,
    /// Per BPF program loaded during the round: (name, run_time_ns, run_cnt).
    pub programs: Vec<(String, u64, u64)>,
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

    /// Copy-ups that happened: new objects in the upper layer (less its root).
    fn happened(&self) -> Option<u64> {
        Some(self.get("upper")?.saturating_sub(1))
    }
}

pub fn parse(results: &str) -> Result<Vec<Round>> {
    let mut rounds: Vec<Round> = Vec::new();
    let mut reports: BTreeMap<u32, Value> = BTreeMap::new();
    let mut stats: BTreeMap<u32, Vec<(String, u64, u64)>> = BTreeMap::new();
    let mut burst_n = None;
    for line in results.lines() {
        if let Some(rest) = line.strip_prefix("@@ROUND ") {
            let mut it = rest.split_whitespace();
            let mode = it.next().ok_or_else(|| anyhow!("bad round {line:?}"))?;
            let mode = Mode::from_str(mode, false).map_err(|e| anyhow!("{line:?}: {e}"))?;
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
                mode,
                n,
                fields,
                report: None,
                burst: false,
                programs: Vec::new(),
            });
        } else if let Some(rest) = line.strip_prefix("@@REPORT ") {
            let (n, json) = rest
                .split_once(' ')
                .ok_or_else(|| anyhow!("bad report line"))?;
            reports.insert(
                n.parse()?,
                serde_json::from_str(json).context("report JSON")?,
            );
        } else if let Some(rest) = line.strip_prefix("@@STATS ") {
            let (n, list) = rest.split_once(' ').unwrap_or((rest, ""));
            let mut progs: Vec<(String, u64, u64)> = Vec::new();
            for p in list.split(';') {
                let mut it = p.split_whitespace();
                let (Some(name), Some(ns), Some(cnt)) = (it.next(), it.next(), it.next()) else {
                    continue;
                };
                // The kernel keeps 15 characters of a program's name, so an entry probe
                // and its return probe can share one (bpftrace's do): number them in
                // load order.
                let same = progs
                    .iter()
                    .filter(|(n, ..)| n.split(" #").next() == Some(name))
                    .count();
                let name = if same == 0 {
                    name.to_string()
                } else {
                    if same == 1 {
                        if let Some(first) = progs.iter_mut().find(|(n, ..)| n == name) {
                            first.0 = format!("{name} #1");
                        }
                    }
                    format!("{name} #{}", same + 1)
                };
                progs.push((name, ns.parse()?, cnt.parse()?));
            }
            stats.insert(n.parse()?, progs);
        } else if let Some(n) = line.strip_prefix("@@BURST ") {
            burst_n = Some(n.trim().parse::<u32>()?);
        }
    }
    for r in &mut rounds {
        r.report = reports.remove(&r.n);
        r.programs = stats.remove(&r.n).unwrap_or_default();
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
pub fn report(kernel: &str, rounds: &[Round], wall: Duration) -> Result<String> {
    let regular: Vec<&Round> = rounds.iter().filter(|r| !r.burst).collect();
    let by_mode = |mode: Mode, f: &dyn Fn(&Round) -> Option<u64>| -> Vec<u64> {
        regular
            .iter()
            .filter(|r| r.mode == mode)
            .filter_map(|r| f(r))
            .collect()
    };
    let elapsed = |mode: Mode| median(by_mode(mode, &|r| r.get("elapsed_ns")));
    // Soak runs (`--modes`) may leave out the untraced rounds; ratios are then "-".
    let base = elapsed(Mode::None);
    let per_mode: Vec<String> = Mode::ALL
        .into_iter()
        .map(|m| (m, regular.iter().filter(|r| r.mode == m).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(m, n)| format!("{} {n}", m.label()))
        .collect();

    let mut md = String::new();
    writeln!(
        md,
        "### Kernel {kernel} (qemu TCG, 2 vCPUs); rounds: {}\n",
        per_mode.join(", ")
    )?;
    writeln!(md, "Workload: `chown -R 1000:1000` over 10,000 files of 4 KiB and 3 of 4 MiB in a lower layer (10,005 copy-ups with the two directories), on tmpfs.\n")?;
    writeln!(
        md,
        "| mode | median workload time | vs untraced | copy-ups seen | lost |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    for mode in Mode::ALL {
        let Some(t) = elapsed(mode) else { continue };
        let seen = median(by_mode(mode, &|r| r.copy_ups().or(r.get("events"))));
        let lost = median(by_mode(mode, &|r| r.lost()));
        writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            mode.label(),
            ms(t),
            base.map(|b| format!("{:+.1}%", (t as f64 / b as f64 - 1.0) * 100.0))
                .unwrap_or_else(|| "-".into()),
            seen.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            lost.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
        )?;
    }
    // Side by side: the same quantities for each BPF tracer, measured the same way.
    let per_copy = |mode: Mode| {
        median(by_mode(mode, &|r| {
            Some(r.get("bpf_ns")? / r.happened()?.max(1))
        }))
    };
    let metric = |mode: Mode, k: &str| median(by_mode(mode, &|r| r.get(k)));
    let seen = |mode: Mode| {
        median(by_mode(mode, &|r| {
            if mode == Mode::CopyupTrace {
                r.copy_ups()
            } else {
                r.get("events")
            }
        }))
    };
    let happened = median(by_mode(Mode::CopyupTrace, &|r| r.happened()))
        .or_else(|| median(by_mode(Mode::Bpftrace, &|r| r.happened())));
    let us = |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.1} µs", v as f64 / 1e3));
    let mib = |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.1} MiB", v as f64 / 1024.0));
    let sec = |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.2} s", v as f64 / 1e3));
    let num = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
    let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
        _ => "-".into(),
    };
    writeln!(md)?;
    // Side by side, the two BPF tracers.
    let (ours, peer) = (Mode::CopyupTrace, Mode::Bpftrace);
    writeln!(
        md,
        "| median of the rounds | {ours} | {peer} | ratio | target |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    // One row per quantity: both tracers' medians and their ratio.
    let row = |name: &str,
               fmt: &dyn Fn(Option<u64>) -> String,
               get: &dyn Fn(Mode) -> Option<u64>,
               target: &str| {
        let (a, b) = (get(ours), get(peer));
        (
            name.to_string(),
            fmt(a),
            fmt(b),
            ratio(a, b),
            target.to_string(),
        )
    };
    let rows = [
        row(
            "BPF run time per copy-up (`run_time_ns` of all its programs / copy-ups)",
            &us,
            &per_copy,
            "≤ 0.5",
        ),
        row("peak RSS (VmHWM)", &mib, &|m| metric(m, "rss_kb"), "≤ 0.2"),
        row(
            "launch to probes attached",
            &sec,
            &|m| metric(m, "ready_ms"),
            "≤ 0.2",
        ),
        (
            "events seen / copy-ups that happened".to_string(),
            format!("{} / {}", num(seen(ours)), num(happened)),
            format!("{} / {}", num(seen(peer)), num(happened)),
            String::new(),
            "all".to_string(),
        ),
    ];
    for (name, a, b, r, t) in rows {
        writeln!(md, "| {name} | {a} | {b} | {r} | {t} |")?;
    }
    if let (Some(f), Some(a)) = (metric(ours, "facts_us"), metric(ours, "attach_us")) {
        writeln!(
            md,
            "\ncopyup-trace start-up, in process: kernel facts (kallsyms, BTF) {:.0} ms, \
             load, verify and attach {:.0} ms.",
            f as f64 / 1e3,
            a.saturating_sub(f) as f64 / 1e3
        )?;
    }
    for mode in [ours, peer] {
        let progs = program_costs(&regular, mode);
        if progs.is_empty() {
            continue;
        }
        writeln!(md, "\n{mode}, per program (median over rounds):\n")?;
        writeln!(
            md,
            "| program | runs per copy-up | µs per run | µs per copy-up |"
        )?;
        writeln!(md, "|---|---|---|---|")?;
        for (name, runs, per_run, per_copy) in progs {
            writeln!(
                md,
                "| `{name}` | {runs:.2} | {:.1} | {:.1} |",
                per_run / 1e3,
                per_copy / 1e3
            )?;
        }
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

/// (program, runs per copy-up, ns per run, ns per copy-up), medians over `mode`'s rounds,
/// programs that ran at all, costliest first. copyup-trace's programs go by their full
/// names from the probe table rather than as the kernel cuts them.
fn program_costs(rounds: &[&Round], mode: Mode) -> Vec<(String, f64, f64, f64)> {
    let mut by_name: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for r in rounds.iter().filter(|r| r.mode == mode) {
        let Some(happened) = r.happened().filter(|&h| h > 0) else {
            continue;
        };
        for (name, ns, cnt) in r.programs.iter().filter(|p| p.2 > 0) {
            let name = match mode {
                Mode::CopyupTrace => progs::ours(name).unwrap_or(name),
                _ => name,
            };
            by_name.entry(name).or_default().push((
                *cnt as f64 / happened as f64,
                *ns as f64 / *cnt as f64,
                *ns as f64 / happened as f64,
            ));
        }
    }
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut out: Vec<_> = by_name
        .into_iter()
        .map(|(name, v)| {
            (
                name.to_string(),
                med(v.iter().map(|x| x.0).collect()),
                med(v.iter().map(|x| x.1).collect()),
                med(v.iter().map(|x| x.2).collect()),
            )
        })
        .collect();
    out.sort_by(|a, b| b.3.total_cmp(&a.3));
    out
}

/// Drops the round a kernel fault hit (its workload stopped short: fewer objects in the
/// upper layer than the other rounds) and every later one; returns a note for the report.
pub fn cut_at_fault(rounds: &mut Vec<Round>, fault: &str) -> String {
    let full = rounds
        .iter()
        .filter(|r| !r.burst)
        .filter_map(|r| r.get("upper"))
        .max()
        .unwrap_or(0);
    let hit = rounds
        .iter()
        .position(|r| !r.burst && r.get("upper").is_some_and(|u| u < full));
    match hit {
        Some(i) => {
            let (n, mode) = (rounds[i].n, rounds[i].mode);
            rounds.truncate(i);
            format!(
                "The guest kernel faulted in round {n} ({mode}): `{fault}`. \
                 Rounds from {n} on are left out."
            )
        }
        None => format!("The guest kernel faulted after the last complete round: `{fault}`."),
    }
}

/// Sanity checks that make a report worth writing.
pub fn validate(rounds: &[Round]) -> Result<()> {
    ensure!(!rounds.is_empty(), "the guest produced no rounds");
    for r in rounds {
        ensure!(r.get("elapsed_ns").is_some(), "round {} has no time", r.n);
        if r.mode == Mode::CopyupTrace {
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
    fn modes_by_name() {
        for m in Mode::ALL {
            assert_eq!(Mode::from_str(m.name(), false), Ok(m));
        }
        assert_eq!(Mode::None.label(), "untraced");
        assert!(parse("@@ROUND perf 1 elapsed_ns=1\n").is_err());
    }

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

    #[test]
    fn a_fault_cuts_the_rounds_it_hit() {
        let text = "@@ROUND none 1 elapsed_ns=1 upper=10\n\
                    @@ROUND bpftrace 2 elapsed_ns=1 upper=10\n\
                    @@ROUND copyup-trace 3 elapsed_ns=1 upper=10\n\
                    @@ROUND bpftrace 4 elapsed_ns=1 upper=3\n\
                    @@ROUND tracefs 5 elapsed_ns=1 upper=10\n";
        let mut rounds = parse(text).unwrap();
        let note = cut_at_fault(&mut rounds, "BUG: oops");
        assert_eq!(rounds.len(), 3);
        assert!(note.contains("round 4 (bpftrace)"), "{note}");
    }

    #[test]
    fn our_programs_by_full_name() {
        let text = "@@STATS 1 sched_process_f 400 4;\n\
                    @@ROUND copyup-trace 1 elapsed_ns=1 upper=5\n\
                    @@STATS 2 sched_process_f 400 4;\n\
                    @@ROUND bpftrace 2 elapsed_ns=1 upper=5\n";
        let rounds = parse(text).unwrap();
        let regular: Vec<&Round> = rounds.iter().collect();
        let name = |m| program_costs(&regular, m)[0].0.clone();
        assert_eq!(name(Mode::CopyupTrace), "sched_process_fork");
        assert_eq!(name(Mode::Bpftrace), "sched_process_f");
    }

    #[test]
    fn per_program_costs() {
        // 4 copy-ups (upper holds 5 with its root); names as the kernel truncates them.
        let text = "@@STATS 2 copy_up_one_ret 8000 4;ovl_copy_up_one 2000 4;op_open 0 0;\n\
                    @@ROUND copyup-trace 2 elapsed_ns=1 upper=5 bpf_ns=10000\n\
                    @@STATS 3 ovl_copy_up_one 4000 8;\n\
                    @@ROUND bpftrace 3 elapsed_ns=1 upper=5 bpf_ns=4000 events=4\n";
        let rounds = parse(text).unwrap();
        assert_eq!(rounds[0].programs.len(), 3);
        let regular: Vec<&Round> = rounds.iter().collect();
        let ct = program_costs(&regular, Mode::CopyupTrace);
        assert_eq!(
            ct,
            vec![
                ("copy_up_one_ret".to_string(), 1.0, 2000.0, 2000.0),
                ("ovl_copy_up_one".to_string(), 1.0, 500.0, 500.0),
            ]
        );
        let bt = program_costs(&regular, Mode::Bpftrace);
        assert_eq!(
            bt,
            vec![("ovl_copy_up_one".to_string(), 2.0, 500.0, 1000.0)]
        );
    }
}
