//! Checks of start-up and failure: the guest runs the intended kernel, and the tool's
//! errors are one clear line with the right exit status. It judges what
//! `guest/scenarios/errors.sh` saved; reading the artifacts is `mod.rs`'s job.

use anyhow::{ensure, Result};

use super::{expect_objects, one_line_error, Artifacts, Check};

pub const CHECKS: &[Check] = &[
    ("guest runs the expected kernel", kernel),
    ("overlay not loaded: clear error", no_overlay),
    ("command not found: exit 127", not_found),
    ("command's exit status is passed on", exit_status),
    ("bad flag value: one-line error, exit 2", bad_flag),
    (
        "as a user with capabilities: CAP_SYS_ADMIN + CAP_SYS_RESOURCE trace, without SYS_ADMIN one line",
        capabilities,
    ),
    (
        "--stacks where kallsyms shows no addresses (no CAP_SYSLOG): one line at start, exit 1",
        stacks_without_syslog,
    ),
];

/// Run by uid 1000 with capabilities only. CAP_SYS_ADMIN and CAP_SYS_RESOURCE trace
/// exactly. CAP_BPF + CAP_PERFMON (+ CAP_SYS_RESOURCE) do not on Debian's kernels, whose
/// perf_event_paranoid is 3: kprobes need CAP_SYS_ADMIN there, and so does looking up
/// the overlay module's BTF for fentry; the tool says so in one line.
fn capabilities(a: &Artifacts) -> Result<()> {
    let r = a.run("capsadmin")?;
    ensure!(r.rc == 0, "exit {}: {}", r.rc, a.get("capsadmin.err")?);
    expect_objects(&r, &[("/f", "file", 6)])?;
    ensure!(
        r.events.iter().all(|e| e["trigger"] == "chmod"),
        "{:?}",
        r.events
    );
    let paranoid = a.get("caps.paranoid")?.trim();
    ensure!(
        paranoid == "3",
        "perf_event_paranoid {paranoid}: Debian's is 3"
    );
    one_line_error(a, "capsbpf", 1, "CAP_SYS_ADMIN")
}

fn kernel(a: &Artifacts) -> Result<()> {
    let got = a.get("uname")?;
    ensure!(got == format!("kernel {}", a.kernel), "{got:?}");
    Ok(())
}

fn no_overlay(a: &Artifacts) -> Result<()> {
    one_line_error(a, "no_overlay", 1, "overlay filesystem is not loaded")
}

fn not_found(a: &Artifacts) -> Result<()> {
    one_line_error(a, "not_found", 127, "/no/such/command")
}

fn exit_status(a: &Artifacts) -> Result<()> {
    let rc = a.rc("exit_status")?;
    ensure!(rc == 3, "exit {rc}, want 3");
    Ok(())
}

fn bad_flag(a: &Artifacts) -> Result<()> {
    one_line_error(a, "bad_flag", 2, "lots")
}

/// `--stacks` as uid 1000 without CAP_SYSLOG: exit 1 at start with one line, after only
/// the warning `--stacks` gets on kernels whose unwinder stops at kretprobe trampolines
/// (5.10).
fn stacks_without_syslog(a: &Artifacts) -> Result<()> {
    let (rc, err) = (a.rc("capsstk")?, a.get("capsstk.err")?);
    ensure!(rc == 1, "exit {rc}, want 1; stderr {err:?}");
    let lines: Vec<&str> = err.lines().collect();
    let Some((last, before)) = lines.split_last() else {
        anyhow::bail!("no error on stderr");
    };
    ensure!(
        before.len() <= 1
            && before
                .iter()
                .all(|l| l.contains("cannot unwind through kretprobe trampolines")),
        "stderr is not one line (after the unwinder's warning): {err:?}"
    );
    ensure!(
        last.starts_with("copyup-trace: --stacks: /proc/kallsyms shows no addresses"),
        "{err:?}"
    );
    Ok(())
}
