use std::{env, fs, path::PathBuf, process::Command};

use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

/// Set when this build script runs itself to do the eBPF build.
const INNER: &str = "COPYUP_TRACE_EBPF_BUILD";

/// Builds the eBPF object with the nightly toolchain and bpf-linker; the user-space
/// binary embeds it with `include_bytes_aligned!`.
///
/// aya-build relays every line of the inner cargo as a `cargo:warning`, whether or not
/// it succeeds. So it runs in a second process of this script, whose output is kept in
/// `OUT_DIR/ebpf-build.log` and shown, whole, only when the build fails; cargo's
/// instructions (`rerun-if-changed` on the eBPF crate, ...) are passed on as they are.
fn main() -> anyhow::Result<()> {
    if env::var_os(INNER).is_some() {
        return build_ebpf();
    }
    let out = Command::new(env::current_exe().context("locating the build script")?)
        .env(INNER, "1")
        // The inner build's error says what failed; a backtrace of this script would not.
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .context("running the build script for the eBPF build")?;
    let mut log = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        match line.strip_prefix("cargo:warning=") {
            // Not an error: say that the object is not being built.
            Some(w) if w.starts_with("AYA_BUILD_SKIP") => println!("{line}"),
            Some(w) => {
                log.push_str(w);
                log.push('\n');
            }
            None => println!("{line}"),
        }
    }
    log.push_str(&String::from_utf8_lossy(&out.stderr));
    let log_path =
        PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?).join("ebpf-build.log");
    fs::write(&log_path, &log).with_context(|| format!("writing {}", log_path.display()))?;
    if !out.status.success() {
        eprint!("{log}");
        eprintln!(
            "building the eBPF object failed ({}); its output is above and in {}",
            out.status,
            log_path.display()
        );
        std::process::exit(1);
    }
    Ok(())
}

fn build_ebpf() -> anyhow::Result<()> {
    let meta = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = meta
        .packages
        .iter()
        .find(|p| p.name.as_str() == "copyup-trace-ebpf")
        .ok_or_else(|| anyhow!("copyup-trace-ebpf package not found"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    aya_build::build_ebpf(
        [Package {
            name: ebpf.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
