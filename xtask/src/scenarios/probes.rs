//! Checks of the key scenarios run again with `--probes fentry` and `--probes kprobe`
//! (`guest/scenarios/probes.sh`): the same exact values as the default run, and a
//! summary that names the mechanism each function got. Kernels that cannot take
//! fentry/fexit for every function must refuse `--probes fentry` in one clear line.

use anyhow::{bail, ensure, Context, Result};

use super::{copyup, faults, layers, nested, one_line_error, triggers, Artifacts, Check};

/// Whether the kernel takes fentry/fexit for overlayfs: what `guest-ops fexit-probe`
/// found when it loaded and attached a fexit program on `ovl_copy_up_one` calling
/// `bpf_get_func_ret` and `bpf_get_func_arg` (artifact `fexit_probe`: `ok` or
/// `no: STEP: WHY`). Kernels before 5.17 lack the helpers; 5.10 has no overlay BTF.
/// Takes the artifacts of the whole run, not a rerun's prefixed ones.
pub(super) fn takes_fentry(a: &Artifacts) -> Result<bool> {
    let probe = a.get("fexit_probe")?.trim();
    match probe {
        "ok" => Ok(true),
        p if p.starts_with("no: ") => Ok(false),
        p => bail!("the guest's fexit probe did not run: {p:?}"),
    }
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
    if mode == "fentry" && !takes_fentry(a)? {
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
    let want = if takes_fentry(a)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(verdict: &str) -> Result<bool> {
        takes_fentry(&Artifacts::new(
            "6.12.57+deb13-amd64",
            &format!("@@FILE fexit_probe\n{verdict}\n@@EOF\n"),
        ))
    }

    #[test]
    fn the_guest_probe_decides_fentry() {
        assert!(probe("ok").unwrap());
        assert!(!probe("no: btf: no ovl_copy_up_one in vmlinux BTF (and no module BTF)").unwrap());
        assert!(
            !probe("no: load: Invalid argument (os error 22): invalid func unknown#184").unwrap()
        );
        // The probe's own failure is no answer.
        assert!(probe("guest-ops fexit-probe: vmlinux: not little-endian BTF").is_err());
        assert!(takes_fentry(&Artifacts::new("6.12", "")).is_err());
    }
}
