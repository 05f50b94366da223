//! Checks, before anything is loaded, that this host can be traced, so the user gets
//! one clear sentence instead of a verifier dump or a raw errno.

use std::{fs, path::Path};

use anyhow::{bail, Result};

use crate::kernel::{self, VMLINUX_BTF};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

pub fn check() -> Result<()> {
    privileges()?;
    kprobes()?;
    btf()?;
    overlay()?;
    Ok(())
}

/// Effective capability bits from a `/proc/self/status` text.
fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

fn has_caps(eff: u64) -> bool {
    let has = |c: u32| eff & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

fn privileges() -> Result<()> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    if cap_eff(&status).is_some_and(has_caps) {
        return Ok(());
    }
    bail!("permission denied: copyup-trace loads eBPF programs and needs root (or CAP_BPF and CAP_PERFMON); try sudo")
}

fn kprobes() -> Result<()> {
    // The kprobe PMU (4.17+) is how kprobes are attached; without it, the legacy
    // tracefs interface is the only other way.
    let pmu = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    let legacy = [
        "/sys/kernel/tracing/kprobe_events",
        "/sys/kernel/debug/tracing/kprobe_events",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    if pmu || legacy {
        return Ok(());
    }
    let release = kernel::release().unwrap_or_else(|_| "?".into());
    bail!(
        "kprobes are unavailable: kernel {release} has no kprobe support (CONFIG_KPROBES is not \
         set), so overlayfs copy-ups cannot be traced on it"
    )
}

fn btf() -> Result<()> {
    if Path::new(VMLINUX_BTF).exists() {
        return Ok(());
    }
    bail!("kernel BTF is unavailable ({VMLINUX_BTF} is missing): copyup-trace needs a kernel built with CONFIG_DEBUG_INFO_BTF to find overlayfs struct layouts")
}

fn overlay() -> Result<()> {
    let fss = fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if fss
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        return Ok(());
    }
    bail!("the overlay filesystem is not loaded (nothing to trace; try: modprobe overlay)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_rules() {
        assert_eq!(
            cap_eff("Name:\tx\nCapEff:\t000001ffffffffff\n"),
            Some(0x1ff_ffff_ffff)
        );
        assert!(has_caps(0x1ff_ffff_ffff));
        assert!(has_caps(1 << CAP_SYS_ADMIN));
        assert!(has_caps((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert!(!has_caps(1 << CAP_BPF));
        assert!(!has_caps(0));
        assert_eq!(cap_eff("nothing here"), None);
    }
}
