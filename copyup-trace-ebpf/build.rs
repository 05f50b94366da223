use which::which;

/// Rebuild the eBPF object when bpf-linker changes, since it does the final link.
/// `bpf_target_arch` (whose `pt_regs` the kprobes read) comes from aya-build, which
/// passes the user-space target's; built alone (`cargo xtask lint`), the object takes
/// `AYA_BPF_TARGET_ARCH`, else the host's, as aya-ebpf does.
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(_) => println!("cargo:warning=bpf-linker not found on PATH; run `cargo xtask setup`"),
    }
    // bpf-linker asks LLVM for its in-order memcpy expansion by default, which turns
    // every memset (a zeroed struct, a zeroed array) into a call of a byte-loop
    // `memset` subprogram; verifiers before 6.4 then mark every scalar precise at the
    // call and stop pruning states (6.1 verified the record-emitting programs six times
    // over: BENCHMARKS.md).
    // Without it LLVM expands memset and memcpy inline, as clang does for C programs.
    println!("cargo:rustc-link-arg=--disable-expand-memcpy-in-order");
    println!("cargo::rustc-check-cfg=cfg(bpf_target_arch, values(\"x86_64\", \"aarch64\"))");
    println!("cargo:rerun-if-env-changed=CARGO_CFG_BPF_TARGET_ARCH");
    println!("cargo:rerun-if-env-changed=AYA_BPF_TARGET_ARCH");
    if std::env::var_os("CARGO_CFG_BPF_TARGET_ARCH").is_none() {
        let arch = std::env::var("AYA_BPF_TARGET_ARCH").unwrap_or_else(|_| {
            let host = std::env::var("HOST").unwrap_or_default();
            host.split('-').next().unwrap_or_default().to_string()
        });
        println!("cargo:rustc-cfg=bpf_target_arch=\"{arch}\"");
    }
}
