//! What tracing needs from this host, one `Item` a fact with where it came from:
//! privileges, kprobe support, BTF, the overlay module, lockdown, the memlock limit,
//! whole kernel stacks. `check` shows them all; `preflight` stops at the first missing.

use std::{fs, path::Path};

use copyup_trace_common::kver;
use serde::Serialize;

use crate::kernel::{facts, plan};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Present and usable.
    Ok,
    /// Tracing cannot work without it.
    Missing,
    /// Works, with a limitation worth knowing.
    Warn,
    /// A fact, neither good nor bad.
    Info,
}

/// One fact about the host.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub check: String,
    pub status: Status,
    pub fact: String,
    /// Where the fact came from.
    pub source: String,
}

pub fn item(check: &str, status: Status, fact: impl Into<String>, source: &str) -> Item {
    Item {
        check: check.to_string(),
        status,
        fact: fact.into(),
        source: source.to_string(),
    }
}

pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;
const STATUS: &str = "/proc/self/status";
const FILESYSTEMS: &str = "/proc/filesystems";
const LOCKDOWN: &str = "/sys/kernel/security/lockdown";
const OVERLAY_BTF: &str = "/sys/kernel/btf/overlay";
const KPROBE_PMU: &str = "/sys/bus/event_source/devices/kprobe";
const KPROBE_EVENTS: [&str; 2] = [
    "/sys/kernel/tracing/kprobe_events",
    "/sys/kernel/debug/tracing/kprobe_events",
];

/// Effective capability bits from a `/proc/self/status` text.
pub fn cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

pub fn has_caps(eff: u64) -> bool {
    let has = |c: u32| eff & (1u64 << c) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

pub const CAP_SYS_RESOURCE: u32 = 24;
const PERF_EVENT_PARANOID: &str = "/proc/sys/kernel/perf_event_paranoid";

/// What this host asks of the capabilities besides CAP_BPF + CAP_PERFMON.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asks {
    /// Overlay is a module with BTF of its own: fentry on its functions needs the
    /// module's BTF object, which only CAP_SYS_ADMIN may look up (BPF_BTF_GET_NEXT_ID).
    pub overlay_module_btf: bool,
    /// `kernel.perf_event_paranoid`: above 2 (Debian's and Ubuntu's default, a patch
    /// of theirs), perf events, kprobes included, need CAP_SYS_ADMIN.
    pub perf_event_paranoid: Option<i32>,
    /// The kernel charges BPF memory to RLIMIT_MEMLOCK (before 5.11) and the limit is
    /// not lifted: lifting it needs CAP_SYS_RESOURCE.
    pub memlock_low: bool,
}

/// Why the effective capabilities `eff` cannot trace on a host that `asks` this, if
/// they cannot.
pub fn lacking(eff: u64, asks: Asks) -> Option<String> {
    let has = |c: u32| eff & (1u64 << c) != 0;
    if !has_caps(eff) {
        return Some(format!(
            "permission denied: copyup-trace loads eBPF programs and needs root (or \
             CAP_BPF and CAP_PERFMON); try sudo (CapEff {eff:016x})"
        ));
    }
    if !has(CAP_SYS_ADMIN) && asks.overlay_module_btf && asks.perf_event_paranoid > Some(2) {
        return Some(format!(
            "CAP_BPF + CAP_PERFMON are not enough here, add CAP_SYS_ADMIN: fentry on the \
             overlay module's functions needs its BTF object, which only CAP_SYS_ADMIN may \
             look up (BPF_BTF_GET_NEXT_ID), and kernel.perf_event_paranoid={} refuses \
             kprobes without it (CapEff {eff:016x})",
            asks.perf_event_paranoid.unwrap_or_default()
        ));
    }
    if !has(CAP_SYS_RESOURCE) && asks.memlock_low {
        return Some(format!(
            "this kernel charges BPF memory to RLIMIT_MEMLOCK, which is too low here, and \
             raising it needs CAP_SYS_RESOURCE (CapEff {eff:016x})"
        ));
    }
    None
}

/// Why kprobes cannot be used by this process, where kernel.perf_event_paranoid above 2
/// (Debian's and Ubuntu's patch) reserves perf events to CAP_SYS_ADMIN.
pub fn kprobes_refused() -> Option<String> {
    let status = fs::read_to_string(STATUS).unwrap_or_default();
    let admin = cap_eff(&status).is_some_and(|e| e & (1u64 << CAP_SYS_ADMIN) != 0);
    let paranoid = asks().perf_event_paranoid?;
    (!admin && paranoid > 2).then(|| {
        format!(
            "kernel.perf_event_paranoid={paranoid} refuses kprobes without CAP_SYS_ADMIN, \
             which this process lacks"
        )
    })
}

/// What this host asks of the tool's capabilities.
fn asks() -> Asks {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to a local.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    let old = facts::release()
        .ok()
        .and_then(|r| kver::parse(&r))
        .is_some_and(|v| v < kver::BPF_MEMCG_ACCOUNTING);
    Asks {
        overlay_module_btf: Path::new(OVERLAY_BTF).exists(),
        perf_event_paranoid: fs::read_to_string(PERF_EVENT_PARANOID)
            .ok()
            .and_then(|v| v.trim().parse().ok()),
        // The maps take tens of MiB: the tool lifts the limit (aya does), or cannot.
        memlock_low: old && lim.rlim_cur != libc::RLIM_INFINITY,
    }
}

pub fn privileges() -> Item {
    let status = fs::read_to_string(STATUS).unwrap_or_default();
    let asks = asks();
    match cap_eff(&status) {
        Some(eff) if lacking(eff, asks).is_none() => item(
            "privileges",
            Status::Ok,
            format!(
                "CapEff {eff:016x}: {}",
                if eff & (1u64 << CAP_SYS_ADMIN) != 0 {
                    "CAP_SYS_ADMIN"
                } else {
                    "CAP_BPF + CAP_PERFMON"
                }
            ),
            STATUS,
        ),
        Some(eff) => item(
            "privileges",
            Status::Missing,
            lacking(eff, asks).unwrap_or_default(),
            STATUS,
        ),
        eff => item(
            "privileges",
            Status::Missing,
            format!(
                "permission denied: copyup-trace loads eBPF programs and needs root (or \
                 CAP_BPF and CAP_PERFMON); try sudo (CapEff {})",
                eff.map_or("unknown".into(), |e| format!("{e:016x}"))
            ),
            STATUS,
        ),
    }
}

/// Whether the kernel was built with kprobes at all (the PMU or the legacy interface).
pub fn kprobe_support() -> Item {
    let pmu = Path::new(KPROBE_PMU).exists();
    let legacy = KPROBE_EVENTS.iter().find(|p| Path::new(p).exists());
    if pmu || legacy.is_some() {
        let how = if pmu {
            KPROBE_PMU
        } else {
            legacy.copied().unwrap_or_default()
        };
        return item("kprobe support", Status::Ok, format!("{how} exists"), how);
    }
    let release = facts::release().unwrap_or_else(|_| "?".into());
    item(
        "kprobe support",
        Status::Missing,
        format!(
            "kprobes are unavailable: kernel {release} has no kprobe support (CONFIG_KPROBES \
             is not set), so overlayfs copy-ups cannot be traced on it"
        ),
        KPROBE_PMU,
    )
}

/// Why nothing can trace `func` where fentry/fexit was refused and `kprobes` is the
/// missing kprobe support: the one sentence a start and `check` both give.
pub fn no_fallback(func: &str, kprobes: &Item) -> String {
    format!("{func}: fentry refused, and {}", kprobes.fact)
}

pub fn vmlinux_btf() -> Item {
    let src = facts::VMLINUX_BTF;
    match fs::metadata(src) {
        Ok(m) => item("vmlinux BTF", Status::Ok, format!("{} bytes", m.len()), src),
        Err(_) => item(
            "vmlinux BTF",
            Status::Missing,
            format!(
                "kernel BTF is unavailable ({src} is missing): copyup-trace needs a kernel \
                 built with CONFIG_DEBUG_INFO_BTF to find overlayfs struct layouts"
            ),
            src,
        ),
    }
}

fn overlay_loaded() -> bool {
    fs::read_to_string(FILESYSTEMS)
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
}

pub fn overlay() -> Item {
    if overlay_loaded() {
        return item("overlay", Status::Ok, "loaded", FILESYSTEMS);
    }
    let release = facts::release().unwrap_or_default();
    let dir = format!("/lib/modules/{release}/kernel/fs/overlayfs");
    let module = [
        "overlay.ko",
        "overlay.ko.xz",
        "overlay.ko.zst",
        "overlay.ko.gz",
    ]
    .iter()
    .map(|m| format!("{dir}/{m}"))
    .find(|p| Path::new(p).exists());
    let hint = match &module {
        Some(m) => format!("loadable from {m}"),
        None => "no module found".to_string(),
    };
    item(
        "overlay",
        Status::Missing,
        format!(
            "the overlay filesystem is not loaded (nothing to trace; try: modprobe overlay; {hint})"
        ),
        FILESYSTEMS,
    )
}

pub fn overlay_btf() -> Item {
    if Path::new(OVERLAY_BTF).exists() {
        item(
            "overlay BTF",
            Status::Ok,
            "module BTF: argument positions from prototypes",
            OVERLAY_BTF,
        )
    } else if overlay_loaded() {
        item(
            "overlay BTF",
            Status::Info,
            "no module BTF (built in, or CONFIG_DEBUG_INFO_BTF_MODULES off): argument \
             positions from vmlinux BTF or the kernel version",
            OVERLAY_BTF,
        )
    } else {
        item(
            "overlay BTF",
            Status::Info,
            "overlay not loaded",
            OVERLAY_BTF,
        )
    }
}

pub fn lockdown() -> Item {
    match fs::read_to_string(LOCKDOWN) {
        // "none [integrity] confidentiality": the bracketed word is in force.
        Ok(text) => {
            let mode = text
                .split_whitespace()
                .find_map(|w| w.strip_prefix('[')?.strip_suffix(']'))
                .unwrap_or("unknown")
                .to_string();
            let status = if mode == "confidentiality" {
                Status::Missing
            } else {
                Status::Ok
            };
            let fact = if status == Status::Missing {
                "confidentiality: eBPF programs may not read kernel memory".to_string()
            } else {
                mode
            };
            item("lockdown", status, fact, LOCKDOWN)
        }
        Err(_) => item("lockdown", Status::Info, "no lockdown LSM", LOCKDOWN),
    }
}

pub fn memlock() -> Item {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to a local.
    unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    let show = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            format!("{v} bytes")
        }
    };
    let old = facts::release()
        .ok()
        .and_then(|r| kver::parse(&r))
        .is_some_and(|v| v < kver::BPF_MEMCG_ACCOUNTING);
    let fact = format!(
        "soft {}, hard {}; {}",
        show(lim.rlim_cur),
        show(lim.rlim_max),
        if old {
            "this kernel charges BPF memory to it: raised at start-up"
        } else {
            "not used for BPF memory on this kernel"
        }
    );
    item(
        "memlock limit",
        Status::Info,
        fact,
        "getrlimit(RLIMIT_MEMLOCK)",
    )
}

/// Whether `--stacks` sees whole kernel stacks here.
pub fn stacks() -> Item {
    let release = facts::release().unwrap_or_default();
    match plan::stack_limit(&release) {
        Some(why) => item("kernel stacks", Status::Warn, why, "kernel release"),
        None => item(
            "kernel stacks",
            Status::Ok,
            "the unwinder sees through kretprobe trampolines",
            "kernel release",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each capability set lacks where: found by running the tool as a user with
    /// only those capabilities in the guests (Debian's perf_event_paranoid is 3).
    #[test]
    fn what_capabilities_lack() {
        let caps = |c: &[u32]| c.iter().fold(0u64, |b, c| b | 1 << c);
        let debian = Asks {
            overlay_module_btf: true,
            perf_event_paranoid: Some(3),
            memlock_low: false,
        };
        let bpf = caps(&[CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE]);
        let e = lacking(bpf, debian).unwrap();
        assert!(
            e.contains("add CAP_SYS_ADMIN") && e.contains("perf_event_paranoid=3"),
            "{e}"
        );
        assert_eq!(lacking(caps(&[CAP_SYS_ADMIN]), debian), None);
        // Where kprobes are allowed, CAP_BPF + CAP_PERFMON are enough.
        let upstream = Asks {
            perf_event_paranoid: Some(2),
            ..debian
        };
        assert_eq!(lacking(bpf, upstream), None);
        // Before 5.11, with the limit not lifted: CAP_SYS_RESOURCE.
        let old = Asks {
            overlay_module_btf: false,
            perf_event_paranoid: Some(3),
            memlock_low: true,
        };
        let e = lacking(caps(&[CAP_SYS_ADMIN]), old).unwrap();
        assert!(e.contains("CAP_SYS_RESOURCE"), "{e}");
        assert_eq!(lacking(caps(&[CAP_SYS_ADMIN, CAP_SYS_RESOURCE]), old), None);
        assert!(lacking(0, upstream).unwrap().contains("needs root"));
    }

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
