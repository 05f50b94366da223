//! Checks of how results are shown: live views, the table, escaping of untrusted names,
//! folded stacks and the flame graph. It judges what `guest/scenarios/output.sh` saved;
//! reading the artifacts is `mod.rs`'s job.

use anyhow::{anyhow, ensure, Context, Result};
use copyup_trace_common::arch::Arch;

use super::{expect_objects, u, Artifacts, Check};

pub const CHECKS: &[Check] = &[
    ("--interval, --events, --hist, --by: live views", live_views),
    ("untrusted names are escaped in JSON", json_escapes),
    (
        "--stacks: folded kernel stacks weighted by copy-up time; --flamegraph SVG",
        stacks,
    ),
    ("table output", table),
];

fn live_views(a: &Artifacts) -> Result<()> {
    ensure!(
        a.rc("live")? == 0,
        "exit {}: {}",
        a.rc("live")?,
        a.get("live.err")?
    );
    let out = a.get("live.out")?;
    let intervals = out.lines().filter(|l| l.starts_with("=== ")).count();
    ensure!(
        intervals >= 2,
        "{intervals} interval tables in a 2.4 s run with -i 1:\n{out}"
    );
    for needle in [
        "/f1",
        "/f2",
        "/f3",
        "usecs",
        "trigger = chown",
        "Copy-ups by trigger",
        "Copy-ups by container",
    ] {
        ensure!(out.contains(needle), "output lacks {needle:?}:\n{out}");
    }
    let event_lines = out
        .lines()
        .filter(|l| l.contains(" chown ") && l.contains("/f"))
        .count();
    ensure!(event_lines >= 3, "--events lines:\n{out}");
    ensure!(
        !out.contains('\x1b'),
        "raw escape byte reached the terminal"
    );
    ensure!(
        out.contains("/esc\\x1b[31mred\\nline"),
        "escaped name missing:\n{out}"
    );
    Ok(())
}

fn json_escapes(a: &Artifacts) -> Result<()> {
    let r = a.run("livejson")?;
    expect_objects(&r, &[("/jsn\\x1b[31mred\\nline", "file", 0)])
}

fn stacks(a: &Artifacts) -> Result<()> {
    let r = a.run("stk")?;
    expect_objects(&r, &[("/s1", "file", 7000), ("/s2", "file", 4)])?;
    let folded = a.get("stk.folded")?;
    // Older kernels cannot unwind past a kretprobe trampoline; the tool warns.
    let arch = Arch::of_release(&a.kernel)
        .ok_or_else(|| anyhow!("kernel {}: no architecture in its release", a.kernel))?;
    let old_unwinder = !super::release_at_least(&a.kernel, arch.kretprobe_unwind());
    let warned = a
        .get("stk.err")?
        .contains("cannot unwind through kretprobe trampolines");
    ensure!(
        warned == old_unwinder,
        "kernel {}: unwinder warning shown: {warned}",
        a.kernel
    );
    let mut total = 0u64;
    for line in folded.lines() {
        let (stack, w) = line
            .rsplit_once(' ')
            .ok_or_else(|| anyhow!("bad line {line:?}"))?;
        total += w
            .parse::<u64>()
            .with_context(|| format!("weight in {line:?}"))?;
        ensure!(stack.starts_with("chown;"), "{line}");
        let k: Vec<&str> = stack.split(';').collect();
        ensure!(
            k.last() == Some(&"ovl_copy_up_one"),
            "innermost frame: {line}"
        );
        // Before 5.15 the unwinder stops at the trampoline of a function with a return
        // probe: the tool says so, and the frames above it are gone.
        if old_unwinder {
            ensure!(
                k.contains(&"kretprobe_trampoline") || k.contains(&"do_fchownat"),
                "neither the trampoline nor do_fchownat: {line}"
            );
        } else {
            ensure!(k.contains(&"do_fchownat"), "no do_fchownat frame: {line}");
        }
    }
    let sum: u64 = r.events.iter().map(|e| u(&e["copy_ns"])).sum();
    ensure!(total == sum, "stack weights {total} != copy_ns sum {sum}");
    ensure!(a.get("stk.svghead")?.contains("<svg"), "not an SVG");
    ensure!(
        a.get("stk.svgcount")?.trim() != "0",
        "flame graph lacks ovl_copy_up_one"
    );
    Ok(())
}

fn table(a: &Artifacts) -> Result<()> {
    ensure!(a.rc("table")? == 0);
    let out = a.get("table.out")?;
    for needle in [
        "2 copy-ups, 300.0 KiB copied",
        "lost events: 0",
        "Copy-ups by file",
        "/etc/big.conf",
        "Copy-ups by process",
        "chown",
    ] {
        ensure!(out.contains(needle), "table lacks {needle:?}:\n{out}");
    }
    Ok(())
}
