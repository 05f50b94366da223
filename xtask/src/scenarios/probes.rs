//! Checks of the key scenarios run again with `--probes fentry` and `--probes kprobe`
//! (`guest/scenarios/probes.sh`): the same exact values as the default run, and a
//! summary that names the mechanism each function got. Kernels that cannot take
//! fentry/fexit for every function must refuse `--probes fentry` in one clear line.

use anyhow::{ensure, Context, Result};

use super::{copyup, faults, layers, nested, one_line_error, triggers, Artifacts, Check};

/// `bpf_get_func_ret`, which the fexit programs read return values with, came in 5.17;
/// the 5.10 line also has no overlay module BTF.
pub(super) fn takes_fentry(kernel: &str) -> bool {
    let mut it = kernel.split(|c: char| !c.is_ascii_digit());
    let v: (u32, u32) = (
        it.next().and_then(|x| x.parse().ok()).unwrap_or(0),
        it.next().and_then(|x| x.parse().ok()).unwrap_or(0),
    );
    v >= (5, 17)
}

/// Every function in run `name`'s summary got `mode`, `ovl_copy_up_one` among them.
fn mechanisms(a: &Artifacts, mode: &str, name: &str) -> Result<()> {
    let out = a.get(&format!("{name}.out"))?;
    let summary: serde_json::Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["type"] == "summary")
        .with_context(|| format!("{name}: no summary"))?;
    let probes = summary["probes"]
        .as_object()
        .with_context(|| format!("{name}: summary has no probes object: {summary}"))?;
    ensure!(
        probes.get("ovl_copy_up_one").and_then(|v| v.as_str()) == Some(mode),
        "{name}: ovl_copy_up_one not on {mode}: {probes:?}"
    );
    for (func, m) in probes {
        ensure!(m == mode, "{name}: {func} got {m}, want {mode}");
    }
    Ok(())
}

/// Runs `check` on the artifacts of `mode`'s rerun, then checks the mechanisms of
/// `runs`; with `--probes fentry` on a kernel that cannot, checks the refusal instead.
fn rerun(
    a: &Artifacts,
    mode: &str,
    runs: &[&str],
    check: fn(&Artifacts) -> Result<()>,
) -> Result<()> {
    let b = a.prefixed(&format!("{mode}."));
    if mode == "fentry" && !takes_fentry(&a.kernel) {
        for name in runs {
            one_line_error(&b, name, 1, "cannot take fentry")?;
        }
        return Ok(());
    }
    check(&b)?;
    for name in runs {
        mechanisms(&b, mode, name)?;
    }
    Ok(())
}

/// The debug log says which mechanism each function got: fentry where the kernel can,
/// else a kprobe with the reason.
fn debug_log(a: &Artifacts) -> Result<()> {
    let err = a.get("dbg.err")?;
    let want = if takes_fentry(&a.kernel) {
        "plan: ovl_copy_up_one: fentry"
    } else {
        "plan: ovl_copy_up_one: kprobe, not fentry: "
    };
    ensure!(err.contains(want), "debug log lacks {want:?}: {err}");
    ensure!(
        err.lines().any(|l| l.contains("ovl_copy_up_one: ")
            && (l.contains("fentry + fexit (BTF id") || l.contains("kprobe, not fentry"))),
        "debug log does not say how ovl_copy_up_one was attached: {err}"
    );
    Ok(())
}

pub const CHECKS: &[Check] = &[
    (
        "COPYUP_TRACE_LOG=debug names each function's mechanism",
        debug_log,
    ),
    ("--probes fentry: one 8 MiB chown, exact", |a| {
        rerun(a, "fentry", &["single"], copyup::single_file)
    }),
    ("--probes fentry: chown -hR over a tree, exact", |a| {
        rerun(a, "fentry", &["tree"], |b| {
            copyup::tree(b)?;
            copyup::tracefs_oracle(b)
        })
    }),
    ("--probes fentry: every trigger named, exact", |a| {
        rerun(a, "fentry", &["trig"], |b| {
            triggers::every_trigger(b)?;
            triggers::op_latency(b)
        })
    }),
    ("--probes fentry: 16 threads at once", |a| {
        rerun(a, "fentry", &["thr"], faults::threads)
    }),
    ("--probes kprobe: one 8 MiB chown, exact", |a| {
        rerun(a, "kprobe", &["single"], copyup::single_file)
    }),
    ("--probes kprobe: chown -hR over a tree, exact", |a| {
        rerun(a, "kprobe", &["tree"], |b| {
            copyup::tree(b)?;
            copyup::tracefs_oracle(b)
        })
    }),
    ("--probes kprobe: every trigger named, exact", |a| {
        rerun(a, "kprobe", &["trig"], |b| {
            triggers::every_trigger(b)?;
            triggers::op_latency(b)
        })
    }),
    ("--probes kprobe: 16 threads at once", |a| {
        rerun(a, "kprobe", &["thr"], faults::threads)
    }),
    ("--probes fentry: nested overlay copy-ups, exact", |a| {
        rerun(
            a,
            "fentry",
            &["nest.chown", "nest.open"],
            nested::chown_and_open,
        )
    }),
    ("--probes fentry: teardown while tracing, exact", |a| {
        rerun(a, "fentry", &["teardown"], layers::teardown)
    }),
    ("--probes kprobe: teardown while tracing, exact", |a| {
        rerun(a, "kprobe", &["teardown"], layers::teardown)
    }),
    ("--probes kprobe: nested overlay copy-ups, exact", |a| {
        rerun(
            a,
            "kprobe",
            &["nest.chown", "nest.open"],
            nested::chown_and_open,
        )
    }),
];
