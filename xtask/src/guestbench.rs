//! `cargo xtask bench`, kernel half: parses what `guest/bench.sh` printed in a guest and
//! reports medians and ratios of the workload untraced, under copyup-trace, under
//! bpftrace and under tracefs kprobe events, measured side by side in one boot. Booting
//! the guest is `guest`'s job; the user-space half is `bench`'s.

use std::{collections::BTreeMap, fmt, fmt::Write as _, time::Duration};

use anyhow::{anyhow, ensure, Context, Result};
use clap::{builder::PossibleValue, ValueEnum};
use serde_json::Value;

use crate::{guest::GuestFile, progs};

/// What a round runs the workload under. The names are those of `--modes` and of the
/// guest script's `MODES` and `@@ROUND` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Untraced.
    None,
    /// Plain tracefs kprobe events on `ovl_copy_up_one` and `ovl_copy_up_file`.
    Tracefs,
    Bpftrace,
    /// copyup-trace `--probes fentry`.
    Fentry,
    /// copyup-trace `--probes kprobe`.
    Kprobe,
    /// copyup-trace `--probes fentry`, its process stopped (SIGSTOP) while the workload
    /// runs and resumed after: the kernel side's cost without the user space's, which
    /// then reads the ring.
    Paused,
    /// copyup-trace `--probes fentry -o json`, its records into a file.
    Json,
    /// `-o csv` into a file.
    Csv,
    /// `--events` (with the tables) into a file.
    Events,
    /// `--metrics` on a local port, nothing scraping it, tables at the end.
    Metrics,
    /// `--timeline FILE`, tables at the end.
    Timeline,
}

impl Mode {
    /// Every mode, in the order the report lists them.
    pub const ALL: [Mode; 11] = [
        Mode::None,
        Mode::Tracefs,
        Mode::Bpftrace,
        Mode::Fentry,
        Mode::Kprobe,
        Mode::Paused,
        Mode::Json,
        Mode::Csv,
        Mode::Events,
        Mode::Metrics,
        Mode::Timeline,
    ];
    /// copyup-trace's output modes besides the table (on fentry), each compared with
    /// the table mode's overhead.
    const OUTPUTS: [Mode; 5] = [
        Mode::Json,
        Mode::Csv,
        Mode::Events,
        Mode::Metrics,
        Mode::Timeline,
    ];
    /// copyup-trace's probe mechanisms, compared with the peer.
    const OURS: [Mode; 2] = [Mode::Fentry, Mode::Kprobe];

    pub fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Tracefs => "tracefs",
            Mode::Bpftrace => "bpftrace",
            Mode::Fentry => "fentry",
            Mode::Kprobe => "kprobe",
            Mode::Paused => "paused",
            Mode::Json => "json",
            Mode::Csv => "csv",
            Mode::Events => "events",
            Mode::Metrics => "metrics",
            Mode::Timeline => "timeline",
        }
    }

    /// The name in the report.
    fn label(self) -> &'static str {
        match self {
            Mode::None => "untraced",
            Mode::Tracefs => "tracefs kprobes",
            Mode::Bpftrace => "bpftrace",
            Mode::Fentry => "copyup-trace fentry",
            Mode::Kprobe => "copyup-trace kprobe",
            Mode::Paused => "copyup-trace fentry, user space stopped",
            Mode::Json => "copyup-trace fentry -o json > file",
            Mode::Csv => "copyup-trace fentry -o csv > file",
            Mode::Events => "copyup-trace fentry --events > file",
            Mode::Metrics => "copyup-trace fentry --metrics",
            Mode::Timeline => "copyup-trace fentry --timeline FILE",
        }
    }

    fn ours(self) -> bool {
        Self::OURS.contains(&self) || Self::OUTPUTS.contains(&self) || self == Mode::Paused
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

/// bpftrace and every shared library it loads, at the same paths.
pub fn bpftrace_files() -> Result<Vec<GuestFile>> {
    let mut files = vec![GuestFile {
        guest_path: BPFTRACE.into(),
        host_path: BPFTRACE.into(),
        mode: 0o755,
    }];
    files.extend(crate::guest::shared_libs(std::path::Path::new(BPFTRACE))?);
    Ok(files)
}

pub const SCRIPT: &str = include_str!("../guest/bench.sh");

/// The workloads of a regular round, in the order the report lists them, with what
/// `bench.sh` runs for each.
pub const WORKLOADS: [(&str, &str); 3] = [
    (
        "image",
        "`chown -R 1000:1000` over an image-like tree, sizes like the demo's: 8 libraries of 64-512 KiB, 12 icons, a 24 MiB data file and 400 files of 2 KiB (27.4 MiB in 421 files), lower layer on tmpfs",
    ),
    (
        "tiny",
        "`chown -R 1000:1000` over TINY files of 100 bytes, lower layer on tmpfs",
    ),
    (
        "syscalls",
        "`dd if=/dev/zero of=/dev/null bs=1 count=SYSCALLS`, SYSCALLS one-byte reads and as many writes by a process that touches no overlay: what a tracer costs the rest of the host",
    ),
];

#[derive(Debug, Clone)]
pub struct Round {
    pub mode: Mode,
    pub n: u32,
    /// `image`, `tiny` or `burst`.
    pub workload: String,
    pub fields: BTreeMap<String, u64>,
    pub report: Option<Value>,
    pub burst: bool,
    /// Run with `kernel.bpf_stats_enabled` on, for BPF run time: its workload time is
    /// not compared.
    pub stats: bool,
    /// Per BPF program loaded during the round: (name, run_time_ns, run_cnt).
    pub programs: Vec<(String, u64, u64)>,
}

impl Round {
    fn get(&self, k: &str) -> Option<u64> {
        self.fields.get(k).copied()
    }

    /// Copy-ups the tracer saw.
    fn seen(&self) -> Option<u64> {
        match &self.report {
            Some(r) => r["total"]["stats"]["copy_ups"].as_u64(),
            None => self.get("copy_ups").or(self.get("events")),
        }
    }

    fn lost(&self) -> Option<u64> {
        self.report.as_ref().and_then(|r| r["lost"].as_u64())
    }

    /// Copy-ups that happened: new objects in the upper layer (less its root).
    fn happened(&self) -> Option<u64> {
        Some(self.get("upper")?.saturating_sub(1))
    }

    /// BPF run time of the tracer's programs per copy-up that happened, in ns.
    fn bpf_per_copy(&self) -> Option<u64> {
        Some(self.get("bpf_ns")? / self.happened()?.max(1))
    }
}

pub fn parse(results: &str) -> Result<Vec<Round>> {
    let mut rounds: Vec<Round> = Vec::new();
    let mut reports: BTreeMap<u32, Value> = BTreeMap::new();
    let mut stats: BTreeMap<u32, Vec<(String, u64, u64)>> = BTreeMap::new();
    let mut bursts = Vec::new();
    for line in results.lines() {
        if let Some(rest) = line.strip_prefix("@@ROUND ") {
            let bad = || anyhow!("bad round {line:?}");
            let mut it = rest.split_whitespace();
            let mode = it.next().ok_or_else(bad)?;
            let mode = Mode::from_str(mode, false).map_err(|e| anyhow!("{line:?}: {e}"))?;
            let n: u32 = it.next().ok_or_else(bad)?.parse()?;
            let workload = it.next().filter(|w| !w.contains('=')).ok_or_else(bad)?;
            let fields = it
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.to_string(), v.parse().ok()?))
                })
                .collect();
            let fields: BTreeMap<String, u64> = fields;
            rounds.push(Round {
                mode,
                n,
                workload: workload.to_string(),
                stats: fields.get("stats") == Some(&1),
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
            bursts.push(n.trim().parse::<u32>()?);
        }
    }
    for r in &mut rounds {
        r.report = reports.remove(&r.n);
        r.programs = stats.remove(&r.n).unwrap_or_default();
        r.burst = bursts.contains(&r.n);
    }
    Ok(rounds)
}

/// The rounds of `set` in workload `w` and mode `mode`.
fn pick<'a>(set: &[&'a Round], w: &str, mode: Mode) -> Vec<&'a Round> {
    set.iter()
        .copied()
        .filter(|r| r.workload == w && r.mode == mode)
        .collect()
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

/// (max − min) / median of `v`, in percent: how far the rounds disagree.
fn spread(v: &[u64]) -> Option<f64> {
    let m = median(v.to_vec()).filter(|&m| m > 0)?;
    let (lo, hi) = (v.iter().min()?, v.iter().max()?);
    Some((hi - lo) as f64 / m as f64 * 100.0)
}

fn ms(ns: u64) -> String {
    format!("{:.1} ms", ns as f64 / 1e6)
}

/// What the header of a run says about how it was measured.
pub struct RunInfo<'a> {
    pub kernel: &'a str,
    /// `icount` or `wall`.
    pub clock: &'a str,
    /// The host's 1-minute load average before and after the run.
    pub load: &'a str,
    pub wall: Duration,
    /// The `TINY` file count the script ran with.
    pub tiny: u64,
    /// The `SYSCALLS` read count of the `syscalls` workload.
    pub syscalls: u64,
    /// The guest's vCPUs.
    pub cpus: u32,
}

/// Markdown report of one guest run.
pub fn report(info: &RunInfo, rounds: &[Round]) -> Result<String> {
    // Workload times come from the rounds run with BPF stats off; BPF run time from
    // those with them on (in a raw run from before they were apart, every round).
    let regular: Vec<&Round> = rounds.iter().filter(|r| !r.burst && !r.stats).collect();
    let with_bpf: Vec<&Round> = rounds
        .iter()
        .filter(|r| !r.burst && r.get("bpf_ns").is_some())
        .collect();
    let of = |w: &str, mode: Mode| pick(&regular, w, mode);
    let med = |w: &str, mode: Mode, f: &dyn Fn(&Round) -> Option<u64>| {
        median(of(w, mode).into_iter().filter_map(f).collect())
    };
    let bpf_med = |w: &str, mode: Mode| {
        median(
            pick(&with_bpf, w, mode)
                .into_iter()
                .filter_map(Round::bpf_per_copy)
                .collect(),
        )
    };
    let elapsed = |w: &str, mode: Mode| med(w, mode, &|r| r.get("elapsed_ns"));
    let overhead = |w: &str, mode: Mode| -> Option<f64> {
        let (t, b) = (elapsed(w, mode)?, elapsed(w, Mode::None)?);
        Some((t as f64 / b.max(1) as f64 - 1.0) * 100.0)
    };
    let per_mode: Vec<String> = Mode::ALL
        .into_iter()
        .map(|m| (m, regular.iter().filter(|r| r.mode == m).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(m, n)| format!("{} {n}", m.label()))
        .collect();
    let bpf_rounds = rounds.iter().filter(|r| r.stats).count();
    let bpf_note = if bpf_rounds > 0 {
        format!(
            " Workload times with `kernel.bpf_stats_enabled` off; BPF run time from {bpf_rounds} more rounds with it on."
        )
    } else {
        String::new()
    };
    let vcpus = match info.cpus {
        1 => "1 vCPU".to_string(),
        n => format!("{n} vCPUs"),
    };
    let clock = match info.clock {
        "icount" => format!(
            "qemu TCG `-icount shift=0,sleep=off`: guest ns = emulated instructions; {vcpus}"
        ),
        "native" => "natively, `xtask/bench-native.sh`".to_string(),
        "kvm" => "in a virtual machine, `xtask/bench-native.sh`".to_string(),
        _ => format!("qemu TCG, guest time follows the host's clock; {vcpus}"),
    };

    let mut md = String::new();
    writeln!(
        md,
        "### Kernel {} ({clock})\n\nRounds, every workload together: {}.{bpf_note} Host load average (1 min) before / after: {}. Wall time of the whole run: {:.0} s.\n",
        info.kernel,
        per_mode.join(", "),
        info.load,
        info.wall.as_secs_f64()
    )?;
    for (w, what) in WORKLOADS {
        if !regular.iter().any(|r| r.workload == w) {
            continue;
        }
        let what = what
            .replace("TINY", &info.tiny.to_string())
            .replace("SYSCALLS", &info.syscalls.to_string());
        writeln!(md, "Workload `{w}`: {what}.\n")?;
        writeln!(
            md,
            "| mode | median workload time | spread (max−min)/median | vs untraced | copy-ups seen / happened | lost |"
        )?;
        writeln!(md, "|---|---|---|---|---|---|")?;
        for mode in Mode::ALL {
            let Some(t) = elapsed(w, mode) else { continue };
            let times: Vec<u64> = of(w, mode)
                .iter()
                .filter_map(|r| r.get("elapsed_ns"))
                .collect();
            let num = |v: Option<u64>| v.map_or("-".into(), |v| v.to_string());
            writeln!(
                md,
                "| {} | {} | {} | {} | {} / {} | {} |",
                mode.label(),
                ms(t),
                spread(&times).map_or("-".into(), |s| format!("{s:.1}%")),
                overhead(w, mode).map_or("-".into(), |o| format!("{o:+.1}%")),
                num(med(w, mode, &|r| r.seen())),
                num(med(w, mode, &|r| r.happened())),
                num(med(w, mode, &|r| r.lost())),
            )?;
        }
        // Where fentry's cost goes: the stopped tracer's rounds pay the kernel side only.
        let per_copy = |a: Mode, b: Mode| -> Option<f64> {
            let copies = med(w, a, &|r| r.happened()).filter(|&c| c > 0)?;
            Some((elapsed(w, a)? as f64 - elapsed(w, b)? as f64) / copies as f64 / 1e3)
        };
        if let (Some(kernel), Some(user)) = (
            per_copy(Mode::Paused, Mode::None),
            per_copy(Mode::Fentry, Mode::Paused),
        ) {
            writeln!(
                md,
                "\ncopyup-trace fentry's cost per copy-up in `{w}`: kernel side {kernel:.1} µs (user space stopped − untraced), user space {user:.1} µs (running − stopped).",
            )?;
        }
        writeln!(md)?;
        // Output modes cost per record: only where there are records.
        if med(w, Mode::None, &|r| r.happened()).is_some_and(|c| c > 0) {
            output_modes(&mut md, w, &overhead)?;
        }
    }

    // Side by side: each copyup-trace mode against bpftrace, the same quantities measured
    // the same way in the same boot.
    let peer = Mode::Bpftrace;
    let us = |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.1} µs", v as f64 / 1e3));
    let mib = |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.1} MiB", v as f64 / 1024.0));
    let msec = |v: Option<u64>| v.map_or("-".into(), |v| format!("{:.0} ms", v as f64 / 1e6));
    let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
        _ => "-".into(),
    };
    writeln!(
        md,
        "| median of the rounds | {} | {} | {} | fentry / bpftrace | kprobe / bpftrace | target |",
        Mode::Fentry.label(),
        Mode::Kprobe.label(),
        peer.label()
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    type Get<'a> = Box<dyn Fn(Mode) -> Option<u64> + 'a>;
    type Fmt<'a> = &'a dyn Fn(Option<u64>) -> String;
    let quantities: Vec<(String, Fmt, Get, &str)> = vec![
        (
            "BPF run time per copy-up, `tiny` (`run_time_ns` of all its programs / copy-ups)"
                .into(),
            &us,
            Box::new(|m| bpf_med("tiny", m)),
            "≤ 0.5",
        ),
        (
            "BPF run time per copy-up, `image`".into(),
            &us,
            Box::new(|m| bpf_med("image", m)),
            "",
        ),
        (
            "peak RSS (VmHWM), `tiny`".into(),
            &mib,
            Box::new(|m| med("tiny", m, &|r| r.get("rss_kb"))),
            "≤ 0.1",
        ),
        (
            "launch to probes attached (every workload)".into(),
            &msec,
            Box::new(|m| {
                median(
                    regular
                        .iter()
                        .filter(|r| r.mode == m)
                        .filter_map(|r| r.get("ready_ns"))
                        .collect(),
                )
            }),
            "≤ 0.2",
        ),
    ];
    for (name, fmt, get, target) in &quantities {
        let (f, k, b) = (get(Mode::Fentry), get(Mode::Kprobe), get(peer));
        writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} | {target} |",
            fmt(f),
            fmt(k),
            fmt(b),
            ratio(f, b),
            ratio(k, b)
        )?;
    }
    for (w, target) in [
        ("image", "≤ 3%"),
        ("tiny", "≤ tracefs, ≤ 0.5× bpftrace's"),
        ("syscalls", "≤ tracefs"),
    ] {
        if !regular.iter().any(|r| r.workload == w) {
            continue;
        }
        let pct = |m: Mode| overhead(w, m).map_or("-".into(), |o| format!("{o:+.1}%"));
        let rel = |m: Mode| match (overhead(w, m), overhead(w, peer)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        writeln!(
            md,
            "| workload overhead, `{w}` (tracefs kprobes: {}) | {} | {} | {} | {} | {} | {target} |",
            pct(Mode::Tracefs),
            pct(Mode::Fentry),
            pct(Mode::Kprobe),
            pct(peer),
            rel(Mode::Fentry),
            rel(Mode::Kprobe)
        )?;
    }
    let startup: Vec<String> = Mode::OURS
        .into_iter()
        .filter_map(|m| {
            let at = |k: &str| {
                median(
                    regular
                        .iter()
                        .filter(|r| r.mode == m)
                        .filter_map(|r| r.get(k))
                        .collect(),
                )
            };
            let (f, a) = (at("facts_us")?, at("attach_us")?);
            Some(format!(
                "{}: kernel facts (kallsyms, BTF) {:.0} ms, load, verify and attach {:.0} ms",
                m.label(),
                f as f64 / 1e3,
                a.saturating_sub(f) as f64 / 1e3
            ))
        })
        .collect();
    if !startup.is_empty() {
        writeln!(md, "\nStart-up, in process: {}.", startup.join("; "))?;
    }
    for mode in [Mode::Fentry, Mode::Kprobe, peer] {
        let progs = program_costs(&pick(&with_bpf, "tiny", mode), mode);
        if progs.is_empty() {
            continue;
        }
        writeln!(
            md,
            "\n{}, per program, workload `tiny` (median over rounds):\n",
            mode.label()
        )?;
        writeln!(
            md,
            "| program | runs per copy-up | µs per run | µs per copy-up |"
        )?;
        writeln!(md, "|---|---|---|---|")?;
        for (name, runs, per_run, per_copy) in progs {
            writeln!(
                md,
                "| `{name}` | {runs:.2} | {:.2} | {:.2} |",
                per_run / 1e3,
                per_copy / 1e3
            )?;
        }
    }
    for b in rounds.iter().filter(|r| r.burst) {
        writeln!(
            md,
            "\nBurst under {}: {} empty-file copy-ups, default 4 MiB ring: {} seen, **{} lost**, {} failed copy-ups, workload {}, peak RSS {}.",
            b.mode.label(),
            b.happened().unwrap_or(0),
            b.seen().unwrap_or(0),
            b.lost().map(|v| v.to_string()).unwrap_or_else(|| "?".into()),
            b.report
                .as_ref()
                .and_then(|r| r["total"]["stats"]["errors"].as_u64())
                .unwrap_or(0),
            ms(b.get("elapsed_ns").unwrap_or(0)),
            mib(b.get("rss_kb")),
        )?;
    }
    Ok(md)
}

/// Each output mode's overhead in workload `w` against the table mode's, and the table
/// mode's and `--metrics`' against tracefs', with the targets.
fn output_modes(
    md: &mut String,
    w: &str,
    overhead: &dyn Fn(&str, Mode) -> Option<f64>,
) -> Result<()> {
    let Some(table) = overhead(w, Mode::Fentry) else {
        return Ok(());
    };
    let tracefs = overhead(w, Mode::Tracefs);
    let modes: Vec<(Mode, f64)> = Mode::OUTPUTS
        .into_iter()
        .filter_map(|m| Some((m, overhead(w, m)?)))
        .collect();
    if modes.is_empty() {
        return Ok(());
    }
    let times = |a: f64, b: Option<f64>| match b {
        Some(b) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".into(),
    };
    writeln!(
        md,
        "| output mode, `{w}` | overhead | / table mode's | / tracefs' | target |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    writeln!(
        md,
        "| table (default) | {table:+.1}% | 1.00× | {} | ≤ 1.5× tracefs' |",
        times(table, tracefs)
    )?;
    for (m, o) in modes {
        let target = if m == Mode::Metrics {
            "≤ 1.5× tracefs'"
        } else {
            "≤ 1.25× the table mode's"
        };
        writeln!(
            md,
            "| {} | {o:+.1}% | {} | {} | {target} |",
            m.label(),
            times(o, Some(table)),
            times(o, tracefs)
        )?;
    }
    writeln!(md)?;
    Ok(())
}

/// (program, runs per copy-up, ns per run, ns per copy-up), medians over `rounds`,
/// programs that ran at all, costliest first. copyup-trace's programs go by their full
/// names from the probe table rather than as the kernel cuts them.
fn program_costs(rounds: &[&Round], mode: Mode) -> Vec<(String, f64, f64, f64)> {
    let mut by_name: BTreeMap<&str, Vec<(f64, f64, f64)>> = BTreeMap::new();
    for r in rounds.iter().filter(|r| r.mode == mode) {
        let Some(happened) = r.happened().filter(|&h| h > 0) else {
            continue;
        };
        for (name, ns, cnt) in r.programs.iter().filter(|p| p.2 > 0) {
            let name = if mode.ours() {
                progs::ours(name).unwrap_or(name)
            } else {
                name
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
    let full = |w: &str| {
        rounds
            .iter()
            .filter(|r| !r.burst && r.workload == w)
            .filter_map(|r| r.get("upper"))
            .max()
            .unwrap_or(0)
    };
    let hit = rounds
        .iter()
        .position(|r| !r.burst && r.get("upper").is_some_and(|u| u < full(&r.workload)));
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
        if r.mode.ours() {
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

    /// An icount run of 4 tiny files.
    const TEST_RUN: RunInfo = RunInfo {
        kernel: "6.12",
        clock: "icount",
        load: "1.0 / 1.0",
        wall: Duration::from_secs(1),
        tiny: 4,
        syscalls: 100,
        cpus: 2,
    };

    #[test]
    fn modes_by_name() {
        for m in Mode::ALL {
            assert_eq!(Mode::from_str(m.name(), false), Ok(m));
        }
        assert_eq!(Mode::None.label(), "untraced");
        assert!(parse("@@ROUND perf 1 tiny elapsed_ns=1\n").is_err());
        assert!(parse("@@ROUND none 1 elapsed_ns=1\n").is_err());
    }

    #[test]
    fn medians_and_spread() {
        assert_eq!(median(vec![3, 1, 2]), Some(2));
        assert_eq!(median(vec![4, 1, 2, 3]), Some(2));
        assert_eq!(median(vec![]), None);
        assert_eq!(spread(&[98, 100, 102]), Some(4.0));
        assert_eq!(spread(&[]), None);
    }

    #[test]
    fn rounds_and_reports() {
        let text = "@@ROUND none 1 tiny elapsed_ns=100 upper=5\n\
                    @@REPORT 2 {\"lost\":0,\"total\":{\"stats\":{\"copy_ups\":4}}}\n\
                    @@ROUND fentry 2 tiny elapsed_ns=102 upper=5 bpf_ns=4000 rss_kb=9000 attach_us=1500\n\
                    @@BURST 3\n@@ROUND kprobe 3 burst elapsed_ns=9 upper=7\n";
        let r = parse(text).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[1].seen(), Some(4));
        assert_eq!(r[1].lost(), Some(0));
        assert_eq!(r[1].bpf_per_copy(), Some(1000));
        assert!(r[2].burst && !r[1].burst);
        assert_eq!(r[2].mode, Mode::Kprobe);
        assert_eq!(r[0].get("elapsed_ns"), Some(100));
        assert_eq!(r[0].workload, "tiny");
    }

    /// The workload without copy-ups: its times and overheads, and no cost per copy-up
    /// or per output record.
    #[test]
    fn syscalls_workload_has_no_per_copy_up_figures() {
        let text = "@@SYSCALLS 100\n\
                    @@ROUND none 1 syscalls elapsed_ns=1000 upper=1\n\
                    @@ROUND tracefs 2 syscalls elapsed_ns=1000 upper=1 copy_ups=0\n\
                    @@REPORT 3 {\"lost\":0,\"total\":{\"stats\":{\"copy_ups\":0}}}\n\
                    @@ROUND fentry 3 syscalls elapsed_ns=1010 upper=1 rss_kb=1 ready_ns=1\n\
                    @@REPORT 4 {\"lost\":0,\"total\":{\"stats\":{\"copy_ups\":0}}}\n\
                    @@ROUND paused 4 syscalls elapsed_ns=1005 upper=1 rss_kb=1 ready_ns=1\n\
                    @@REPORT 5 {\"lost\":0,\"total\":{\"stats\":{\"copy_ups\":0}}}\n\
                    @@ROUND kprobe 5 syscalls elapsed_ns=1140 upper=1 rss_kb=1 ready_ns=1\n";
        let rounds = parse(text).unwrap();
        let md = report(&TEST_RUN, &rounds).unwrap();
        assert!(
            md.contains("Workload `syscalls`: `dd if=/dev/zero of=/dev/null bs=1 count=100`, 100 one-byte reads"),
            "{md}"
        );
        assert!(
            md.contains("| copyup-trace kprobe | 0.0 ms | 0.0% | +14.0% | 0 / 0 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| workload overhead, `syscalls` (tracefs kprobes: +0.0%) | +1.0% | +14.0% | - | - | - | ≤ tracefs |"),
            "{md}"
        );
        assert!(!md.contains("cost per copy-up in `syscalls`"), "{md}");
        assert!(!md.contains("output mode, `syscalls`"), "{md}");
    }

    #[test]
    fn report_sets_modes_side_by_side() {
        let text = "@@ROUND none 1 tiny elapsed_ns=100 upper=5\n\
                    @@ROUND tracefs 2 tiny elapsed_ns=101 upper=5 copy_ups=4\n\
                    @@ROUND bpftrace 3 tiny elapsed_ns=140 upper=5 bpf_ns=8000 rss_kb=100000 ready_ns=1000000000 events=4\n\
                    @@REPORT 4 {\"lost\":0,\"total\":{\"stats\":{\"copy_ups\":4}}}\n\
                    @@ROUND fentry 4 tiny elapsed_ns=110 upper=5 bpf_ns=2000 rss_kb=10000 ready_ns=100000000\n\
                    @@REPORT 5 {\"lost\":0,\"total\":{\"stats\":{\"copy_ups\":4}}}\n\
                    @@ROUND kprobe 5 tiny elapsed_ns=120 upper=5 bpf_ns=4000 rss_kb=10000 ready_ns=200000000\n";
        let rounds = parse(text).unwrap();
        let md = report(&TEST_RUN, &rounds).unwrap();
        assert!(
            md.contains("| BPF run time per copy-up, `tiny` (`run_time_ns` of all its programs / copy-ups) | 0.5 µs | 1.0 µs | 2.0 µs | 0.25 | 0.50 | ≤ 0.5 |"),
            "{md}"
        );
        assert!(
            md.contains("| copyup-trace fentry | 0.0 ms | 0.0% | +10.0% | 4 / 4 | 0 |"),
            "{md}"
        );
        assert!(
            md.contains("| workload overhead, `tiny` (tracefs kprobes: +1.0%) | +10.0% | +20.0% | +40.0% | 0.25 | 0.50 |"),
            "{md}"
        );
        assert!(md.contains("| launch to probes attached (every workload) | 100 ms | 200 ms | 1000 ms | 0.10 | 0.20 |"), "{md}");
    }

    /// Workload times from the rounds with BPF stats off, BPF time from those with
    /// them on; each output mode against the table mode.
    #[test]
    fn stats_rounds_apart_and_output_modes() {
        let text = "@@ROUND none 1 tiny elapsed_ns=100 upper=5 stats=0\n\
                    @@ROUND tracefs 2 tiny elapsed_ns=110 upper=5 stats=0 copy_ups=4\n\
                    @@REPORT 3 {\"lost\":0,\"total\":{\"stats\":{\"copy_ups\":4}}}\n\
                    @@ROUND fentry 3 tiny elapsed_ns=120 upper=5 stats=0 rss_kb=1\n\
                    @@REPORT 4 {\"lost\":0,\"total\":{\"stats\":{\"copy_ups\":4}}}\n\
                    @@ROUND json 4 tiny elapsed_ns=125 upper=5 stats=0 rss_kb=1\n\
                    @@STATS 5 fe_copy_up_one 4000 4;\n\
                    @@REPORT 5 {\"lost\":0,\"total\":{\"stats\":{\"copy_ups\":4}}}\n\
                    @@ROUND fentry 5 tiny elapsed_ns=900 upper=5 stats=1 bpf_ns=4000 rss_kb=1\n";
        let rounds = parse(text).unwrap();
        assert!(rounds[4].stats && !rounds[2].stats);
        let md = report(&TEST_RUN, &rounds).unwrap();
        assert!(
            md.contains("| copyup-trace fentry | 0.0 ms | 0.0% | +20.0% | 4 / 4 | 0 |"),
            "{md}"
        );
        assert!(md.contains("BPF run time from 1 more rounds"), "{md}");
        assert!(
            md.contains("(`run_time_ns` of all its programs / copy-ups) | 1.0 µs |"),
            "{md}"
        );
        assert!(
            md.contains("| `fe_copy_up_one` | 1.00 | 1.00 | 1.00 |"),
            "{md}"
        );
        assert!(
            md.contains("| table (default) | +20.0% | 1.00× | 2.00× | ≤ 1.5× tracefs' |"),
            "{md}"
        );
        assert!(
            md.contains("| copyup-trace fentry -o json > file | +25.0% | 1.25× | 2.50× | ≤ 1.25× the table mode's |"),
            "{md}"
        );
    }

    #[test]
    fn a_fault_cuts_the_rounds_it_hit() {
        let text = "@@ROUND none 1 image elapsed_ns=1 upper=10\n\
                    @@ROUND none 2 tiny elapsed_ns=1 upper=100\n\
                    @@ROUND bpftrace 3 image elapsed_ns=1 upper=10\n\
                    @@ROUND fentry 4 tiny elapsed_ns=1 upper=100\n\
                    @@ROUND bpftrace 5 tiny elapsed_ns=1 upper=30\n\
                    @@ROUND tracefs 6 tiny elapsed_ns=1 upper=100\n";
        let mut rounds = parse(text).unwrap();
        let note = cut_at_fault(&mut rounds, "BUG: oops");
        assert_eq!(rounds.len(), 4);
        assert!(note.contains("round 5 (bpftrace)"), "{note}");
    }

    #[test]
    fn our_programs_by_full_name() {
        let text = "@@STATS 1 sched_process_f 400 4;\n\
                    @@ROUND kprobe 1 tiny elapsed_ns=1 upper=5\n\
                    @@STATS 2 sched_process_f 400 4;\n\
                    @@ROUND bpftrace 2 tiny elapsed_ns=1 upper=5\n";
        let rounds = parse(text).unwrap();
        let regular: Vec<&Round> = rounds.iter().collect();
        let name = |m| program_costs(&regular, m)[0].0.clone();
        assert_eq!(name(Mode::Kprobe), "sched_process_fork");
        assert_eq!(name(Mode::Bpftrace), "sched_process_f");
    }

    #[test]
    fn per_program_costs() {
        // 4 copy-ups (upper holds 5 with its root); names as the kernel truncates them.
        let text = "@@STATS 2 copy_up_one_ret 8000 4;ovl_copy_up_one 2000 4;op_open 0 0;\n\
                    @@ROUND fentry 2 tiny elapsed_ns=1 upper=5 bpf_ns=10000\n\
                    @@STATS 3 ovl_copy_up_one 4000 8;\n\
                    @@ROUND bpftrace 3 tiny elapsed_ns=1 upper=5 bpf_ns=4000 events=4\n";
        let rounds = parse(text).unwrap();
        assert_eq!(rounds[0].programs.len(), 3);
        let regular: Vec<&Round> = rounds.iter().collect();
        let ct = program_costs(&regular, Mode::Fentry);
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
