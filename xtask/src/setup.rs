//! Host prerequisites for building the eBPF side and for the qemu guest tests: Debian
//! packages, Rust toolchains and targets, bpf-linker. Installs what is missing and
//! nothing else; the guest kernels are `kernels`'.

use std::process::Command;

use anyhow::{Context, Result};
use copyup_trace_common::arch::Arch;

use crate::{
    cmd::{capture, outcome, run_quiet},
    progress::step,
};

/// Debian packages the guest harness needs on the host: qemu for amd64 and arm64
/// guests, the busybox guest's busybox (amd64's; arm64's is downloaded, `kernels`),
/// mmdebstrap for the userland guest's tree (`userland`), and protoc, which
/// the containerd client's build compiles containerd's API with.
const DEB_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-arm",
    "busybox-static",
    "cpio",
    "xz-utils",
    "mmdebstrap",
    "protobuf-compiler",
];

/// bpf-linker 0.10.4 links against rustc's own LLVM; newer releases need a system LLVM.
const BPF_LINKER_VERSION: &str = "0.10.4";

/// Idempotently installs what the guest tests and the eBPF build need, skipping anything
/// already present. Shows a step (progress) for each thing actually installed.
pub fn ensure_host_tools() -> Result<()> {
    ensure_deb_packages()?;
    ensure_rust_toolchains()?;
    ensure_bpf_linker()?;
    Ok(())
}

fn ensure_deb_packages() -> Result<()> {
    ensure_debs(DEB_PACKAGES)
}

/// Installs those of `packages` that are missing.
pub fn ensure_debs(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !deb_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    apt_get_update()?;
    let mut cmd = Command::new("apt-get");
    cmd.args(["install", "-y", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive");
    let what = format!("installing Debian packages {}", missing.join(" "));
    step(&what, || run_quiet(&mut cmd))
        .with_context(|| format!("{what} failed (apt-get needs root)"))
}

fn deb_installed(pkg: &str) -> bool {
    outcome(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]))
        .is_ok_and(|o| o.code == 0 && o.stdout.contains("ok installed"))
}

/// Refreshes apt's package lists; needed before installs or look-ups on a fresh machine.
pub(crate) fn apt_get_update() -> Result<()> {
    let mut cmd = Command::new("apt-get");
    cmd.args(["update", "-q"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    step("apt-get update", || run_quiet(&mut cmd))
        .context("`apt-get update` failed (apt-get needs root)")
}

fn ensure_rust_toolchains() -> Result<()> {
    let toolchains = capture(Command::new("rustup").args(["toolchain", "list"]))
        .context("is rustup installed and on PATH?")?;
    if !toolchains.lines().any(|l| l.starts_with("nightly-")) {
        step("installing the Rust nightly toolchain", || {
            run_quiet(Command::new("rustup").args([
                "toolchain",
                "install",
                "nightly",
                "--profile",
                "minimal",
            ]))
        })?;
    }

    // The eBPF crate is built with -Z build-std, which needs the nightly sources.
    let components = capture(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))?;
    // rust-src for -Z build-std; clippy for `cargo xtask lint` on the eBPF crate.
    for (component, installed_as) in [("rust-src", "rust-src"), ("clippy", "clippy-")] {
        if !components
            .lines()
            .any(|l| l.trim().starts_with(installed_as))
        {
            step(format!("installing {component} for nightly"), || {
                run_quiet(Command::new("rustup").args([
                    "component",
                    "add",
                    component,
                    "--toolchain",
                    "nightly",
                ]))
            })?;
        }
    }

    // The loader runs inside a busybox guest with no libc, so it is linked statically with
    // musl, for each architecture (aarch64 with rust-lld: .cargo/config.toml). No
    // --toolchain: this follows whatever toolchain builds the workspace.
    let targets = capture(Command::new("rustup").args(["target", "list", "--installed"]))?;
    for target in Arch::ALL.map(Arch::musl_target) {
        if !targets.lines().any(|l| l.trim() == target) {
            step(format!("installing the Rust target {target}"), || {
                run_quiet(Command::new("rustup").args(["target", "add", target]))
            })?;
        }
    }
    Ok(())
}

fn ensure_bpf_linker() -> Result<()> {
    let current = outcome(Command::new("bpf-linker").arg("--version"))
        .ok()
        .filter(|o| o.code == 0)
        .map(|o| o.stdout);
    let wanted = format!("bpf-linker {BPF_LINKER_VERSION}");
    if current.as_deref().map(str::trim) == Some(wanted.as_str()) {
        return Ok(());
    }
    // Use the cargo that runs us (if any) so the same toolchain builds bpf-linker.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    step(
        format!("installing bpf-linker {BPF_LINKER_VERSION} (cargo install)"),
        || {
            run_quiet(Command::new(cargo).args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
                "--force",
            ]))
        },
    )
}
