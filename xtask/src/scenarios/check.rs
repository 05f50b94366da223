//! Checks of `copyup-trace check` on a kernel that can be traced, and of a reader that
//! closes the pipe: judges what `guest/scenarios/check.sh` saved; reading the artifacts
//! is `mod.rs`'s job.

use anyhow::{anyhow, ensure, Result};
use copyup_trace_common::{hooks, kver};
use serde_json::Value;

use super::{Artifacts, Check};

pub const CHECKS: &[Check] = &[
    (
        "check: traceable, every mechanism named, JSON parses",
        check_json,
    ),
    (
        "check: table says the host can be traced, exit 0",
        check_table,
    ),
    (
        "check: whether the kernel idmaps the layers' tmpfs, tried (6.3 on), nothing left",
        check_idmap,
    ),
    (
        "closed pipe (-o json | head -1): exit 0, quiet, nothing left",
        closed_pipe,
    ),
];

/// The row of `check -o json` named `name`.
fn row<'a>(report: &'a Value, name: &str) -> Result<&'a Value> {
    report["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["check"] == name))
        .ok_or_else(|| anyhow!("check has no row {name:?}: {report}"))
}

/// The overlay on a tmpfs of its own: idmapped for real from 6.3; before, the kernel's
/// refusal named (no idmapped mounts before 5.12, no idmapped tmpfs before 6.3). The
/// detached copy it tried leaves no mount.
fn check_idmap(a: &Artifacts) -> Result<()> {
    let report: Value = serde_json::from_str(a.get("check_json.out")?)?;
    let r = row(&report, "idmap /tmp/idm/u")?;
    let fact = r["fact"].as_str().unwrap_or("");
    let k = &a.kernel;
    let (status, needle) = if super::release_at_least(k, kver::TMPFS_IDMAP) {
        ("ok", "tmpfs: the kernel idmaps it")
    } else if super::release_at_least(k, kver::IDMAPPED_MOUNTS) {
        ("info", "tmpfs: the kernel does not idmap this filesystem")
    } else {
        (
            "info",
            "tmpfs: this kernel has no idmapped mounts (mount_setattr, 5.12)",
        )
    };
    ensure!(
        r["status"] == status && fact.contains(needle),
        "on {k}: {r}, want {status} {needle:?}"
    );
    let left = a.get("check.idm_left")?.trim();
    ensure!(left == "0", "{left} /tmp/idm mounts left");
    Ok(())
}

fn check_json(a: &Artifacts) -> Result<()> {
    let rc = a.rc("check_json")?;
    let out = a.get("check_json.out")?;
    ensure!(rc == 0, "exit {rc}: {out}");
    let report: Value = serde_json::from_str(out)?;
    ensure!(report["traceable"] == true, "{report}");
    let status = |name: &str| -> Result<String> {
        Ok(row(&report, name)?["status"]
            .as_str()
            .unwrap_or("")
            .to_string())
    };
    for name in [
        "privileges",
        "kprobe support",
        "vmlinux BTF",
        "overlay",
        "probe plan",
        "source layer",
    ] {
        ensure!(status(name)? == "ok", "{name}: {}", row(&report, name)?);
    }
    // Overlay's lower-stack layout from its BTF where the module has one (Debian's
    // builds from 6.1 on), else the known layout of its line (5.10, whose overlay
    // module has no BTF).
    const DEBIAN_OVERLAY_BTF: kver::Version = (6, 1);
    let layer = row(&report, "source layer")?;
    let want = if super::release_at_least(&a.kernel, DEBIAN_OVERLAY_BTF) {
        "layout from overlay BTF"
    } else {
        "the 5.7-6.4 layout"
    };
    ensure!(
        layer["fact"].as_str().unwrap_or("").contains(want),
        "source layer: {layer}, want {want:?}"
    );
    let attach = row(&report, "kprobe attach")?;
    ensure!(
        attach["status"] == "ok"
            && attach["fact"]
                .as_str()
                .unwrap_or("")
                .contains("do_fchownat"),
        "kprobe attach: {attach}"
    );
    // The copy-up itself gets fentry and fexit where the kernel can (and then the
    // fentry/fexit row says they were attached for real), else a kprobe and a
    // kretprobe with the reason.
    let one = row(&report, hooks::COPY_UP_ONE.func)?;
    let fact = one["fact"].as_str().unwrap_or("");
    ensure!(
        one["status"] == "ok"
            && (fact == "fentry + fexit" || fact.starts_with("kprobe + kretprobe (not fentry: ")),
        "{one}"
    );
    let fentry = row(&report, "fentry/fexit")?;
    if fact == "fentry + fexit" {
        ensure!(
            fentry["status"] == "ok"
                && fentry["fact"]
                    .as_str()
                    .unwrap_or("")
                    .contains("ovl_copy_up_one (overlay module BTF)"),
            "fentry/fexit: {fentry}"
        );
    }
    // Every row of the probe table is reported, and nothing is missing.
    for hook in hooks::FUNCS {
        row(&report, hook.func)?;
    }
    let missing: Vec<&Value> = report["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["status"] == "missing")
        .collect();
    ensure!(missing.is_empty(), "missing rows: {missing:?}");
    Ok(())
}

fn check_table(a: &Artifacts) -> Result<()> {
    let rc = a.rc("check_table")?;
    let out = a.get("check_table.out")?;
    ensure!(rc == 0, "exit {rc}: {out}");
    ensure!(out.contains("This host can be traced."), "{out}");
    ensure!(
        out.contains("fentry + fexit") || out.contains("kprobe + kretprobe"),
        "{out}"
    );
    let left = a.get("check.kprobes_after")?.trim().to_string();
    ensure!(left == "0", "{left} overlay kprobes left after check");
    Ok(())
}

fn closed_pipe(a: &Artifacts) -> Result<()> {
    let rc = a.get("pipe.rc")?.trim().to_string();
    let err = a.get("pipe.err")?;
    ensure!(rc == "0", "exit {rc}; stderr {err:?}");
    ensure!(err.is_empty(), "stderr not empty: {err:?}");
    let out = a.get("pipe.out")?;
    ensure!(out.lines().count() == 1, "head kept {out:?}");
    let first: Value = serde_json::from_str(out)?;
    ensure!(first["type"] == "copy_up", "{first}");
    let left = a.get("pipe.kprobes_after")?.trim().to_string();
    ensure!(
        left == "0",
        "{left} overlay kprobes left after the pipe closed"
    );
    Ok(())
}
