//! Checks of the deployment files under `deploy/`: the Kubernetes manifest against the
//! Kubernetes API schema (kubernetes-validate from PyPI, in a cached virtualenv) and the
//! systemd unit with `systemd-analyze verify`, and that they serve metrics on `METRICS_PORT`.
//! The files themselves are the operator's; running them in a cluster is not checked
//! here, and the unit runs under systemd in the userland guest (`scenarios::userland::deb`).

use std::{path::Path, process::Command};

use anyhow::{ensure, Context, Result};

use crate::{
    cmd::{outcome, run_quiet, workspace_root},
    kernels::cache_dir,
    setup,
};

/// Pinned: its schemas are those of the Kubernetes release of the same number.
const KUBERNETES_VALIDATE: &str = "1.37.0";
pub const MANIFEST: &str = "deploy/kubernetes/daemonset.yaml";
pub const UNIT: &str = "deploy/systemd/copyup-trace.service";

/// `kubernetes-validate --strict`: unknown fields and wrong types are errors.
pub fn manifest(_tool: &Path) -> Result<()> {
    setup::ensure_debs(&["python3-venv"])?;
    let venv = cache_dir()?.join(format!("kubernetes-validate-{KUBERNETES_VALIDATE}"));
    let bin = venv.join("bin/kubernetes-validate");
    if !bin.exists() {
        run_quiet(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run_quiet(
            Command::new(venv.join("bin/pip"))
                .args(["install", "--quiet"])
                .arg(format!("kubernetes-validate=={KUBERNETES_VALIDATE}")),
        )
        .context("installing kubernetes-validate from PyPI")?;
    }
    let o = outcome(
        Command::new(&bin)
            .args(["--strict", "--no-warn"])
            .arg(workspace_root().join(MANIFEST)),
    )?;
    ensure!(
        o.code == 0,
        "{MANIFEST} does not validate:\n{}{}",
        o.stdout,
        o.stderr
    );
    for kind in ["namespace/copyup-trace", "daemonset/copyup-trace"] {
        ensure!(
            o.stdout.contains(&format!("passed for resource {kind}")),
            "{}",
            o.stdout
        );
    }
    Ok(())
}

/// Every file that names the metrics port names `METRICS_PORT`, and no file names the
/// port the tool used before, which Cloudflare's ebpf_exporter has.
pub fn port(_tool: &Path) -> Result<()> {
    let port = copyup_trace_common::METRICS_PORT.to_string();
    for file in [MANIFEST, UNIT, "Containerfile", "README.md"] {
        let text = std::fs::read_to_string(workspace_root().join(file))?;
        ensure!(text.contains(&port), "{file} does not name port {port}");
        let stale: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(":9435") || l.contains("\"9435\"") || l.contains("port 9435"))
            .collect();
        ensure!(stale.is_empty(), "{file} still serves on 9435: {stale:?}");
    }
    Ok(())
}

/// `systemd-analyze verify`, with `ExecStart` pointed at the binary just built (the unit
/// names where it is installed).
pub fn unit(tool: &Path) -> Result<()> {
    setup::ensure_debs(&["systemd"])?;
    let text = std::fs::read_to_string(workspace_root().join(UNIT))?;
    let installed = "ExecStart=/usr/local/bin/copyup-trace ";
    ensure!(text.contains(installed), "{UNIT} lacks {installed:?}");
    // systemd-analyze wants the unit's own name.
    let dir = std::env::temp_dir().join(format!("copyup-trace-unit.{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let copy = dir.join("copyup-trace.service");
    std::fs::write(
        &copy,
        text.replace(installed, &format!("ExecStart={} ", tool.display())),
    )?;
    let o = outcome(Command::new("systemd-analyze").arg("verify").arg(&copy));
    let _ = std::fs::remove_dir_all(&dir);
    let o = o?;
    ensure!(
        o.code == 0 && o.stderr.trim().is_empty(),
        "systemd-analyze verify {UNIT}: exit {}\n{}",
        o.code,
        o.stderr
    );
    Ok(())
}
