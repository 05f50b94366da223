//! Memory that does not grow with the host's age: feeds the aggregate 1,000,000 copy-ups
//! of distinct paths from 200,000 processes in 50,000 cgroups (a long host-wide run),
//! then checks that every table's kept rows plus its folded row still add up to the exact
//! totals, and that the process's peak RSS (VmHWM) stayed under 64 MiB. Exits non-zero
//! when either fails. Run by `cargo xtask bench`.

use std::{process::ExitCode, time::Instant};

use copyup_trace::{
    cli::SortKey,
    events::decode::{CopyUp, Trigger},
    output::aggregate::{Aggregate, Folded, Limits, Stats},
};

const COPY_UPS: u64 = 1_000_000;
const PIDS: u64 = 200_000;
const CGROUPS: u64 = 50_000;
const LIMIT_KIB: u64 = 64 * 1024;

/// `VmHWM` of this process in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(u64::MAX)
}

fn sum<'a>(rows: impl Iterator<Item = &'a Stats>, folded: &Folded) -> (u64, u64, u64) {
    let mut t = (
        folded.row.stats.copy_ups,
        folded.row.stats.bytes,
        folded.row.stats.copy_ns,
    );
    for s in rows {
        t = (t.0 + s.copy_ups, t.1 + s.bytes, t.2 + s.copy_ns);
    }
    t
}

fn main() -> ExitCode {
    let before = peak_rss_kib();
    let mut agg = Aggregate::new(Limits {
        by: SortKey::Time,
        ..Limits::default()
    });
    let mut c = CopyUp {
        comm: b"containerd-shim".to_vec(),
        trigger: Trigger::Chown,
        ..CopyUp::default()
    };
    let mut want = (0u64, 0u64, 0u64);
    let t0 = Instant::now();
    for i in 0..COPY_UPS {
        c.path.clear();
        c.path.extend_from_slice(
            format!(
                "/var/lib/containers/storage/overlay/{:016x}/diff/usr/lib/python3/dist-packages/pkg{}/module{i}.py",
                i.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                i % 997
            )
            .as_bytes(),
        );
        c.pid = 1000 + (i % PIDS) as u32;
        c.tid = c.pid;
        c.cgroup_id = 10 + i % CGROUPS;
        c.bytes = (i * 7919) % 65_536;
        c.size = c.bytes;
        c.copy_ns = 1_000 + (i * 104_729) % 1_000_000;
        want = (want.0 + 1, want.1 + c.bytes, want.2 + c.copy_ns);
        agg.add(&c);
    }
    let elapsed = t0.elapsed();
    let peak = peak_rss_kib();

    let t = agg.total;
    let files = sum(
        agg.files(SortKey::Time).iter().map(|f| &f.stats),
        agg.files_folded(),
    );
    let procs = sum(
        agg.processes(SortKey::Time).iter().map(|p| &p.row.stats),
        agg.processes_folded(),
    );
    let conts = sum(
        agg.containers(SortKey::Time).iter().map(|c| &c.row.stats),
        agg.containers_folded(),
    );
    let exact =
        (t.copy_ups, t.bytes, t.copy_ns) == want && files == want && procs == want && conts == want;
    println!(
        "{COPY_UPS} copy-ups of distinct paths, {PIDS} pids, {CGROUPS} cgroups in {:.2} s ({:.2} M/s)",
        elapsed.as_secs_f64(),
        COPY_UPS as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "rows kept: {} files, {} processes, {} containers; folded: {} / {} / {}",
        agg.files(SortKey::Time).len(),
        agg.processes(SortKey::Time).len(),
        agg.containers(SortKey::Time).len(),
        agg.files_folded().rows,
        agg.processes_folded().rows,
        agg.containers_folded().rows,
    );
    println!(
        "totals exact (copy-ups, bytes, ns in total, files+folded, processes+folded, containers+folded): {}",
        if exact { "yes" } else { "NO" }
    );
    println!(
        "peak RSS (VmHWM): {:.1} MiB (before: {:.1} MiB), target < {} MiB: {}",
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
        LIMIT_KIB / 1024,
        if peak < LIMIT_KIB { "ok" } else { "MISSED" }
    );
    if exact && peak < LIMIT_KIB {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
