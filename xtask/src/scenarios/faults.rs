//! Checks of the tracer stopped and under load: SIGINT and SIGKILL leave nothing attached
//! and the workload unharmed; threads copying up at once each get their own record. It
//! judges what `guest/scenarios/faults.sh` saved; reading the artifacts is `mod.rs`'s job.

use anyhow::{ensure, Result};
use copyup_trace_common::kver;
use serde_json::{json, Value};

use super::{
    one_line_error, probes::takes_fentry, s, skipped_runs_of, u, Artifacts, Check, Missing,
};

pub const CHECKS: &[Check] = &[
    (
        "SIGINT while the probes load: the run ends with its report, nothing left",
        sigint_early,
    ),
    (
        "SIGKILL mid-workload (kprobes): workload unharmed, nothing left attached",
        |a| sigkill(a, "kprobe"),
    ),
    (
        "SIGKILL mid-workload (fentry): workload unharmed, nothing left attached",
        |a| {
            if !takes_fentry(a)? {
                return one_line_error(&a.prefixed("fentry."), "kill", 1, "cannot take fentry");
            }
            sigkill(&a.prefixed("fentry."), "fentry")
        },
    ),
    (
        "16 threads copying up at once: right tid each, state maps empty",
        threads,
    ),
    (
        "64 threads at once, per trigger, kprobes and fentry: every copy-up reported or counted",
        threads_64,
    ),
    (
        "1100 threads at once, more than scratch entries: each record its own thread's",
        many_threads,
    ),
    (
        "rmmod overlay while tracing: refused under fentry; said once under kprobes",
        rmmod,
    ),
    (
        "returns unseen: the thread's next call and a new thread with its tid are not blamed",
        stale,
    ),
    (
        "returns unseen, kprobes: the thread's next call and a new thread with its tid are not blamed",
        |a| stale(&a.prefixed("kprobe.")),
    ),
];

fn sigint_early(a: &Artifacts) -> Result<()> {
    ensure!(
        a.get("early.attached_before")?.trim() == "0",
        "the tool had attached before it caught SIGINT: start-up was not tested"
    );
    ensure!(
        a.get("early.rc")?.trim() != "hung",
        "SIGINT during start-up was lost: still running 60 s later"
    );
    let r = a.run("early")?;
    ensure!(r.rc == 0, "exit {} after SIGINT", r.rc);
    ensure!(
        r.events.is_empty() && u(&r.summary["copy_ups"]) == 0,
        "copy-ups reported: {}",
        r.summary
    );
    let err = a.get("early.err")?;
    ensure!(!err.contains("Tracing"), "traced after SIGINT: {err:?}");
    // Nothing to count while tracing: the signal comes before the probes are attached.
    a.programs_left("early", "SIGINT")?;
    let n = a.get("early.kprobes_after")?.trim().to_string();
    ensure!(n == "0", "{n} overlay kprobes left after SIGINT");
    Ok(())
}

fn sigkill(a: &Artifacts, mode: &str) -> Result<()> {
    let kprobes: u32 = a.get("kill.kprobes_during")?.trim().parse()?;
    ensure!(
        (kprobes > 0) == (mode == "kprobe"),
        "{kprobes} overlay kprobes registered while tracing on {mode}"
    );
    let bpf = a.programs_detached("kill", "SIGKILL")?;
    // fentry/fexit programs attach only through links.
    ensure!(
        mode != "fentry" || !bpf.links.is_empty(),
        "no links of ours while tracing on fentry: {bpf}"
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
    Ok(())
}

/// Every copy-up of `n` is either a record or accounted for by a skipped run of
/// `ovl_copy_up_one`'s programs.
///
/// A fentry/fexit program runs once per CPU at a time and can be preempted, so the
/// kernel skips it for another task on that CPU (`skipped_runs`). A skipped fentry of
/// `ovl_copy_up_one` loses its copy-up; a skipped fexit leaves its state, which the
/// syscall's return sends late (a record, also in `missed_returns`); a skipped run of a
/// syscall probe loses nothing. So one copy-up lost needs at least one skipped run of
/// those programs, but such a run need not lose one: `records + skipped >= n` is the
/// exact bound that can be checked.
fn accounted(name: &str, r: &super::Run, n: u64) -> Result<()> {
    let seen = r.events.len() as u64;
    let skipped = skipped_runs_of(r, Missing::Record);
    ensure!(
        seen <= n && seen + skipped >= n,
        "{name}: {seen} records + {skipped} skipped runs of ovl_copy_up_one's programs do not account for {n} copy-ups ({})",
        r.summary
    );
    ensure!(r.summary["lost"] == 0, "{name}: lost: {}", r.summary);
    Ok(())
}

pub(super) fn threads(a: &Artifacts) -> Result<()> {
    let r = a.run("thr")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    accounted("thr", &r, 16)?;
    let mut tids = std::collections::BTreeSet::new();
    for line in a.get("thr.err")?.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        ensure!(f.len() == 3 && f[2] == "0", "thread report {line:?}");
        let name = f[1].rsplit('/').next().unwrap_or("");
        let Some(e) = r
            .events
            .iter()
            .find(|e| s(&e["path"]).strip_prefix('/') == Some(name))
        else {
            // Accounted for by a skipped run above.
            continue;
        };
        ensure!(
            e["tid"].as_u64().map(|t| t.to_string()).as_deref() == Some(f[0]),
            "{name}: tid {} want {}",
            e["tid"],
            f[0]
        );
        tids.insert(f[0].to_string());
    }
    ensure!(
        tids.len() == r.events.len(),
        "{} distinct tids for {} records",
        tids.len(),
        r.events.len()
    );
    ensure!(
        r.summary["state_entries"] == 0,
        "per-thread state left: {}",
        r.summary["state_entries"]
    );
    ensure!(r.summary["lost"] == 0, "lost: {}", r.summary);
    Ok(())
}

/// 64 threads copy up 64 files of 256 KiB at once through chown, open for write and
/// chmod. On kprobes every copy-up is either a record sent on time or counted in
/// `missed_returns` (a record sent late, at its operation's return, is both); on
/// fentry/fexit every copy-up is a record or accounted for by a skipped run. None is
/// silently lost. A program run the kernel skips because another of ours was running on
/// that CPU (fentry/fexit from 5.12, kprobes and tracepoints from 6.7: seen on 7.x in
/// both modes) is counted in `skipped_runs`, and each record it leaves incomplete needs
/// one.
fn threads_64(a: &Artifacts) -> Result<()> {
    for (mode, op, trigger) in [
        ("kprobe", "chown", "chown"),
        ("kprobe", "open-write", "open-write"),
        ("kprobe", "chmod", "chmod"),
        ("fentry", "chown", "chown"),
        ("fentry", "open-write", "open-write"),
        ("fentry", "chmod", "chmod"),
    ] {
        let name = format!("t64.{mode}.{op}");
        if mode == "fentry" && !takes_fentry(a)? {
            one_line_error(a, &name, 1, "cannot take fentry")?;
            continue;
        }
        let r = a.run(&name)?;
        ensure!(r.rc == 0, "{name}: exit {}", r.rc);
        let failed = a
            .get(&format!("{name}.err"))?
            .lines()
            .filter(|l| l.split_whitespace().nth(2) != Some("0"))
            .count();
        ensure!(failed == 0, "{name}: {failed} threads failed");
        let copied = a.get(&format!("{name}.upper_count"))?.trim();
        ensure!(copied == "64", "{name}: {copied} files copied up");
        let skipped = u(&r.summary["skipped_runs"]);
        let mut paths = std::collections::BTreeSet::new();
        // A skipped run of the syscall's own entry program (do_fchownat) leaves its
        // copy-up with the cause the overlayfs operation gives (fchown for a chown), and
        // a skipped run of the data copy's program leaves it without its bytes: each
        // needs a skipped run of a program of that kind.
        let (mut causeless, mut byteless) = (0, 0);
        for e in &r.events {
            causeless += u64::from(s(&e["trigger"]) != trigger);
            byteless += u64::from(u(&e["bytes"]) != 262144);
            ensure!(
                paths.insert(s(&e["path"]).to_string()),
                "{name}: twice: {e}"
            );
        }
        for (what, n) in [(Missing::Cause, causeless), (Missing::Bytes, byteless)] {
            let by = skipped_runs_of(&r, what);
            ensure!(
                n <= by,
                "{name}: {n} records without their {what:?}, {by} skipped runs of its programs ({})",
                r.summary["skipped_by"]
            );
        }
        let late = r
            .events
            .iter()
            .filter(|e| e["return_missed"] == true)
            .count() as u64;
        let missed = u(&r.summary["missed_returns"]);
        let on_time = r.events.len() as u64 - late;
        eprintln!(
            "  {name}: {} records ({late} late), {missed} missed returns, {skipped} skipped runs, {} op records",
            r.events.len(),
            r.ops.len()
        );
        if mode == "kprobe" {
            let skipped = skipped_runs_of(&r, Missing::Record);
            ensure!(
                on_time + missed <= 64 && on_time + missed + skipped >= 64,
                "{name}: {on_time} records on time + {missed} missed returns ({late} sent late) and {skipped} skipped runs of ovl_copy_up_one's programs do not account for 64"
            );
            if op == "chown" {
                // The syscall returns through its exit tracepoint, which no kretprobe
                // limit applies to: every chown reports its latency, one whose copy-up
                // was sent late included, unless a run of the call's programs was skipped.
                let skipped = skipped_runs_of(&r, Missing::Op);
                let mut without = 0;
                for e in &r.events {
                    let cause = r
                        .ops
                        .iter()
                        .filter(|o| o["tid"] == e["tid"] && o["ts_ns"] == e["cause_ts_ns"])
                        .count();
                    ensure!(
                        cause <= 1,
                        "{name}: {cause} op records for the cause of {e}"
                    );
                    if cause == 0 {
                        without += 1;
                        ensure!(
                            without <= skipped,
                            "{name}: no op record for the cause of {e}, and {skipped} skipped runs"
                        );
                    }
                }
                ensure!(
                    r.ops.len() + without as usize == r.events.len(),
                    "{name}: {} op records for {} copy-ups, {without} without",
                    r.ops.len(),
                    r.events.len()
                );
            }
        } else {
            accounted(&name, &r, 64)?;
        }
        ensure!(
            r.summary["state_entries"] == 0,
            "{name}: state left: {}",
            r.summary
        );
    }
    Ok(())
}

/// 1100 threads copy up `f<i>` (1000 + i bytes) at once, more than the 1024 scratch
/// entries there are: each record is whole and its own thread's (the tid that copied up
/// that file, that file's size), and no scratch entry is left once the records are sent.
fn many_threads(a: &Artifacts) -> Result<()> {
    const N: u64 = 1100;
    let r = a.run("many")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    accounted("many", &r, N)?;
    let mut tid_of = std::collections::BTreeMap::new();
    for line in a.get("many.threads")?.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        ensure!(f.len() == 3 && f[2] == "0", "thread report {line:?}");
        let name = f[1].rsplit('/').next().unwrap_or("");
        tid_of.insert(name.to_string(), f[0].parse::<u64>()?);
    }
    ensure!(tid_of.len() as u64 == N, "{} thread reports", tid_of.len());
    let mut byteless = 0;
    let mut seen = std::collections::BTreeSet::new();
    for e in &r.events {
        let name = s(&e["path"]).strip_prefix('/').unwrap_or("");
        let i: u64 = name
            .strip_prefix('f')
            .and_then(|i| i.parse().ok())
            .filter(|&i| i < N)
            .ok_or_else(|| anyhow::anyhow!("record of an unknown file: {e}"))?;
        ensure!(seen.insert(i), "twice: {e}");
        ensure!(
            Some(&u(&e["tid"])) == tid_of.get(name),
            "{name}: tid {} want {:?}",
            e["tid"],
            tid_of.get(name)
        );
        if u(&e["bytes"]) != 1000 + i {
            byteless += 1;
            ensure!(
                u(&e["bytes"]) == 0,
                "{name}: {} bytes, want {}",
                e["bytes"],
                1000 + i
            );
        }
        // A record without its cause (trigger "other") is counted against skipped runs
        // below; one with another cause is wrong.
        ensure!(
            matches!(s(&e["trigger"]), "chown" | "fchown")
                || (s(&e["trigger"]) == "other" && u(&e["cause_ts_ns"]) == 0),
            "{e}"
        );
    }
    let by = skipped_runs_of(&r, Missing::Bytes);
    ensure!(
        byteless <= by,
        "{byteless} records without their bytes, {by} skipped runs of the data copy's programs"
    );
    let causeless = r
        .events
        .iter()
        .filter(|e| s(&e["trigger"]) != "chown")
        .count() as u64;
    let by = skipped_runs_of(&r, Missing::Cause);
    ensure!(
        causeless <= by,
        "{causeless} records without their cause, {by} skipped runs of the calls' entry programs"
    );
    ensure!(
        r.summary["state_entries"] == 0,
        "per-thread state or scratch records left: {}",
        r.summary["state_entries"]
    );
    // Counted by the harness while the tracer still ran: a scratch map whose entries
    // outlive their records is full here, and hands the oldest to each new thread.
    let left = a.get("many.scratch_left")?.trim();
    ensure!(left == "0", "scratch entries left while tracing: {left}");
    Ok(())
}

/// `rmmod overlay` while tracing host-wide, then SIGINT. Under fentry/fexit the links pin
/// the module: rmmod fails and the trace goes on. Under kprobes the module goes, and the
/// tracer says so in one line. Either way it ends normally with nothing of ours left.
fn rmmod(a: &Artifacts) -> Result<()> {
    let unloaded = "copyup-trace: the overlay module was unloaded: its kprobes went with it";
    for mode in ["fentry", "kprobe"] {
        let name = format!("rmmod.{mode}");
        let get =
            |f: &str| -> Result<String> { Ok(a.get(&format!("{name}.{f}"))?.trim().to_string()) };
        if mode == "fentry" && !takes_fentry(a)? {
            one_line_error(a, &name, 1, "cannot take fentry")?;
            continue;
        }
        ensure!(get("rc")? == "0", "{name}: tracer exit {}", get("rc")?);
        let err = get("err")?;
        let said = err.lines().filter(|l| l.starts_with(unloaded)).count();
        let (rmmod_ok, loaded, want_said) = if mode == "fentry" {
            ("1", "1", 0)
        } else {
            ("0", "0", 1)
        };
        ensure!(
            (get("rmmod_rc")? == "0") == (rmmod_ok == "0"),
            "{name}: rmmod exit {}",
            get("rmmod_rc")?
        );
        ensure!(
            get("loaded_after")? == loaded,
            "{name}: overlay loaded: {}",
            get("loaded_after")?
        );
        ensure!(
            said == want_said,
            "{name}: said {said} times, want {want_said}: {err:?}"
        );
        ensure!(!err.contains("panicked"), "{name}: {err:?}");
        ensure!(
            get("out")?
                .lines()
                .any(|l| l.contains("\"type\":\"summary\"")),
            "{name}: no summary"
        );
        ensure!(get("kprobes_after")? == "0", "{name}: kprobes left");
        a.programs_detached(&name, "SIGINT")?;
    }
    Ok(())
}

/// `sc_stale` in `faults.sh`: a thread whose syscall and operation returns went unseen
/// (injected) leaves nothing that blames a later call: its next syscall is named for
/// itself, and a new process with its tid starts clean. From 5.15 the stored state is
/// checked against the syscall in progress (`CallId`); before, a second call of the
/// same thread still takes the first one's state, and only its end clears it.
fn stale(a: &Artifacts) -> Result<()> {
    let r = a.run("stale")?;
    ensure!(r.rc == 0, "exit {}: {}", r.rc, a.get("stale.err")?);
    let m = "/tmp/ovl-stale/merged";
    let checked = super::release_at_least(&a.kernel, kver::TASK_PT_REGS);
    // Unchecked, the open takes the chown's state, and its filename is read from the
    // chown's argument, memory that may be gone by then: what it reads is not checked.
    let b = if checked {
        json!(["/b", "open-write", null, 2000])
    } else {
        json!(["/b", "chown", "(not checked)", 2000])
    };
    let want = vec![
        json!(["/a", "chown", format!("{m}/a"), 1000]),
        b,
        json!(["/c", "open-write", null, 3000]),
    ];
    let got: Vec<Value> = r
        .events
        .iter()
        .map(|e| {
            let filename = match (checked, &e["path"]) {
                (false, p) if p == "/b" => json!("(not checked)"),
                _ => e["filename"].clone(),
            };
            json!([e["path"], e["trigger"], filename, e["bytes"]])
        })
        .collect();
    ensure!(got == want, "copy-ups\n  got  {got:?}\n  want {want:?}");
    for (map, file) in [
        ("SYSCALLS", "stale.syscalls_left"),
        ("OPS", "stale.ops_left"),
        ("SCRATCH_KEPT", "stale.kept_left"),
        ("EVENT_SCRATCH", "stale.scratch_left"),
    ] {
        let left = a.get(file)?.trim();
        ensure!(
            left == "0",
            "{map}: {left} entries left by a thread that ended"
        );
    }
    Ok(())
}
