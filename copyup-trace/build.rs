use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

/// Builds the eBPF object with the nightly toolchain and bpf-linker; the user-space
/// binary embeds it with `include_bytes_aligned!`.
fn main() -> anyhow::Result<()> {
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
