//! Checks of the tracer stopped and under load: SIGINT and SIGKILL leave nothing attached
//! and the workload unharmed; threads copying up at once each get their own record. It
//! judges what `guest/scenarios/faults.sh` saved (and, for SIGINT, the `--pid` scenario of
//! `scoping.sh`); reading the artifacts is `mod.rs`'s job.

use anyhow::{anyhow, ensure, Result};

use super::{s, Artifacts, Check};
use crate::progs;

pub const CHECKS: &[Check] = &[
    ("SIGINT: report printed, probes detached", sigint_detaches),
    (
        "SIGKILL mid-workload: workload unharmed, nothing left attached",
        sigkill,
    ),
    (
        "16 threads copying up at once: right tid each, state maps empty",
        threads,
    ),
];

fn sigint_detaches(a: &Artifacts) -> Result<()> {
    // Our programs (kprobe or fentry) were loaded while tracing, and are gone after.
    let ours = |name: &str| -> Result<usize> {
        Ok(a.get(name)?
            .lines()
            .filter(|n| progs::ours(n.trim()).is_some())
            .count())
    };
    ensure!(
        ours("pid.progs_during")? > 0,
        "none of our programs loaded while tracing: the check would prove nothing"
    );
    let left = ours("pid.progs_after")?;
    ensure!(
        left == 0,
        "{left} of our BPF programs still loaded after SIGINT"
    );
    let n = a.get("pid.kprobes_after")?.trim().to_string();
    ensure!(
        n == "0",
        "{n} overlay kprobes still registered after SIGINT"
    );
    Ok(())
}

fn sigkill(a: &Artifacts) -> Result<()> {
    let during: u32 = a.get("kill.kprobes_during")?.trim().parse()?;
    ensure!(
        during > 0,
        "no kprobes registered while tracing: the check would prove nothing"
    );
    // Loaded programs by name, one a line; ours are those of the probe table.
    let ours = |text: &str| -> usize {
        text.lines()
            .filter(|n| progs::ours(n.trim()).is_some())
            .count()
    };
    ensure!(
        ours(a.get("kill.progs_during")?) > 0,
        "our programs not seen while tracing"
    );
    ensure!(
        a.get("kill.rc")?.trim() == "137",
        "tracer exit {}",
        a.get("kill.rc")?
    );
    ensure!(
        a.get("kill.workload_rc")?.trim() == "0",
        "workload exit {}",
        a.get("kill.workload_rc")?
    );
    ensure!(
        a.get("kill.upper_count")?.trim() == "1000",
        "workload copied {} of 1000 files",
        a.get("kill.upper_count")?
    );
    let seen = a
        .get("kill.out")?
        .lines()
        .filter(|l| l.contains("\"copy_up\""))
        .count();
    ensure!(
        seen < 1001,
        "tracer saw all {seen} copy-ups: it was not killed mid-workload"
    );
    let after = a.get("kill.kprobes_after")?.trim().to_string();
    ensure!(after == "0", "{after} overlay kprobes left after SIGKILL");
    let left = ours(a.get("kill.progs_after")?);
    ensure!(
        left == 0,
        "{left} of our BPF programs still loaded after SIGKILL"
    );
    Ok(())
}

pub(super) fn threads(a: &Artifacts) -> Result<()> {
    let r = a.run("thr")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    ensure!(r.events.len() == 16, "{} copy-ups, want 16", r.events.len());
    let mut tids = std::collections::BTreeSet::new();
    for line in a.get("thr.err")?.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        ensure!(f.len() == 3 && f[2] == "0", "thread report {line:?}");
        let name = f[1].rsplit('/').next().unwrap_or("");
        let e = r
            .events
            .iter()
            .find(|e| s(&e["path"]).strip_prefix('/') == Some(name))
            .ok_or_else(|| anyhow!("no copy-up of {name}"))?;
        ensure!(
            e["tid"].as_u64().map(|t| t.to_string()).as_deref() == Some(f[0]),
            "{name}: tid {} want {}",
            e["tid"],
            f[0]
        );
        tids.insert(f[0].to_string());
    }
    ensure!(tids.len() == 16, "{} distinct tids", tids.len());
    ensure!(
        r.summary["state_entries"] == 0,
        "per-thread state left: {}",
        r.summary["state_entries"]
    );
    ensure!(r.summary["lost"] == 0, "lost: {}", r.summary);
    Ok(())
}
