//! Debian's Prometheus server for the guest test that scrapes `--metrics` with the real
//! thing: the `prometheus` package of the machine's own apt sources, downloaded once into
//! the cache (keyed by its version) and unpacked, plus the libc it links to; for an arm64
//! guest the same versions of `prometheus` and `libc6` for arm64. What the guest does
//! with it is `guest/scenarios/fleet.sh`'s.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{anyhow, Context, Result};

use copyup_trace_common::arch::Arch;

use crate::{
    cmd::{capture, run_quiet},
    guest::GuestFile,
    kernels::cache_dir,
    progress::step,
    setup,
};

/// Where the guest finds it.
pub const GUEST_PATH: &str = "/usr/bin/prometheus";

fn candidate_version() -> Result<String> {
    let show =
        || capture(Command::new("apt-cache").args(["show", "--no-all-versions", "prometheus"]));
    let text = match show() {
        Ok(t) if t.contains("Version: ") => t,
        // A fresh machine has no package lists yet.
        _ => {
            setup::apt_get_update()?;
            show()?
        }
    };
    text.lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| anyhow!("apt knows no prometheus package"))
}

/// The unpacked server binary, downloading the package the first time.
fn binary() -> Result<PathBuf> {
    let version = candidate_version()?;
    let dir = cache_dir()?
        .join("prometheus")
        .join(version.replace([':', '/'], "_"));
    let bin = dir.join("usr/bin/prometheus");
    if bin.exists() {
        return Ok(bin);
    }
    let work = dir.with_extension("partial");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    step(format!("downloading prometheus {version}"), || {
        run_quiet(
            Command::new("apt-get")
                .args(["download", "-q"])
                .arg(format!("prometheus={version}"))
                .current_dir(&work),
        )
    })?;
    let deb = fs::read_dir(&work)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| anyhow!("apt-get download left no .deb in {}", work.display()))?;
    let unpacked = work.join("root");
    run_quiet(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    // Another run may have finished first; either copy is the same package.
    if fs::rename(&unpacked, &dir).is_err() && !bin.exists() {
        return Err(anyhow!(
            "could not move {} to {}",
            unpacked.display(),
            dir.display()
        ));
    }
    let _ = fs::remove_dir_all(&work);
    Ok(bin)
}

/// The server and the shared libraries it needs (Debian builds it against glibc), for a
/// guest of `arch`.
pub fn guest_files(arch: Arch) -> Result<Vec<GuestFile>> {
    if arch != Arch::X86_64 {
        return foreign_guest_files(arch)
            .with_context(|| format!("Debian's prometheus for the {} guest", arch.debian()));
    }
    let bin = binary().context("Debian's prometheus for the guest")?;
    let mut files = vec![GuestFile {
        guest_path: GUEST_PATH.into(),
        host_path: bin.clone(),
        mode: 0o755,
    }];
    files.extend(crate::guest::shared_libs(&bin)?);
    Ok(files)
}

/// Another architecture's server: the machine's version of `prometheus`, and of `libc6`
/// for its loader and libc (the only libraries it links to, as `ldd` shows on amd64;
/// this machine's `ldd` cannot run another architecture's loader).
fn foreign_guest_files(arch: Arch) -> Result<Vec<GuestFile>> {
    let pkgs = [
        format!("prometheus={}", candidate_version()?),
        format!("libc6={}", crate::kernels::host_version("libc6")?),
    ];
    let root = crate::kernels::foreign_debs(arch, "prometheus", &pkgs)?;
    let triplet = format!("{}-linux-gnu", arch.name());
    let loader = match arch {
        Arch::Aarch64 => "ld-linux-aarch64.so.1",
        Arch::X86_64 => "ld-linux-x86-64.so.2",
    };
    let file = |guest: String, rel: String, mode| -> Result<GuestFile> {
        let host = root.join(&rel);
        Ok(GuestFile {
            guest_path: guest,
            host_path: fs::canonicalize(&host)
                .with_context(|| format!("{} is not in {}", rel, pkgs.join(" ")))?,
            mode,
        })
    };
    Ok(vec![
        file(GUEST_PATH.into(), "usr/bin/prometheus".into(), 0o755)?,
        file(
            format!("/lib/{loader}"),
            format!("lib/{triplet}/{loader}"),
            0o755,
        )?,
        file(
            format!("/lib/{triplet}/libc.so.6"),
            format!("lib/{triplet}/libc.so.6"),
            0o755,
        )?,
    ])
}
