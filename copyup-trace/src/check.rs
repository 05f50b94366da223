//! `copyup-trace check`: what tracing needs on this host and what was found, one row a
//! fact with where it came from. The same checks guard a normal start (`preflight`),
//! which stops at the first that fails. Rendering the rows is here too; tracing is not.

use std::{fs, io::Write, path::Path};

use anyhow::Result;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use copyup_trace_common::hooks;
use procfs::process::MountInfo;
use serde::Serialize;

use crate::{
    escape::escape,
    kernel,
    mounts::MOUNTINFO,
    plan,
    plan::{LayoutFrom, Mechanism},
    probes,
};

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

#[derive(Debug, Serialize)]
pub struct Report {
    /// No row is `missing`: copy-ups can be traced here.
    pub traceable: bool,
    pub items: Vec<Item>,
}

fn item(check: &str, status: Status, fact: impl Into<String>, source: &str) -> Item {
    Item {
        check: check.to_string(),
        status,
        fact: fact.into(),
        source: source.to_string(),
    }
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
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

pub fn privileges() -> Item {
    let status = fs::read_to_string(STATUS).unwrap_or_default();
    match cap_eff(&status) {
        Some(eff) if has_caps(eff) => item(
            "privileges",
            Status::Ok,
            format!("CapEff {eff:016x}: CAP_SYS_ADMIN or CAP_BPF + CAP_PERFMON"),
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
    let release = kernel::release().unwrap_or_else(|_| "?".into());
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

pub fn vmlinux_btf() -> Item {
    let src = kernel::VMLINUX_BTF;
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
    let release = kernel::release().unwrap_or_default();
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

fn overlay_btf() -> Item {
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

fn lockdown() -> Item {
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

fn mounted(fs_type: &str, mounts: &[MountInfo]) -> Item {
    let what = format!("{fs_type} mounted");
    match mounts.iter().find(|m| m.fs_type == fs_type) {
        Some(m) => item(
            &what,
            Status::Ok,
            escape(m.mount_point.as_os_str().as_encoded_bytes()),
            MOUNTINFO,
        ),
        None => item(
            &what,
            Status::Warn,
            format!(
                "not mounted: tracepoint formats cannot be read (try: mount -t {fs_type} \
                 {fs_type} /sys/kernel/{})",
                if fs_type == "tracefs" {
                    "tracing"
                } else {
                    "debug"
                }
            ),
            MOUNTINFO,
        ),
    }
}

fn memlock() -> Item {
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
    let old = kernel::release()
        .ok()
        .and_then(|r| plan::parse_release(&r))
        .is_some_and(|v| v < (5, 11));
    let fact = format!(
        "soft {}, hard {}; {}",
        show(lim.rlim_cur),
        show(lim.rlim_max),
        if old {
            "this kernel charges BPF memory to it: raised at start-up"
        } else {
            "not used for BPF memory since 5.11"
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
fn stacks() -> Item {
    let release = kernel::release().unwrap_or_default();
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

/// Probe targets and mechanisms, from the same facts and plan a start-up uses
/// (`--probes auto`). fentry/fexit is tried for real when `can_try`.
fn probe_targets(kprobes: bool, can_try: bool, out: &mut Vec<Item>) {
    let facts = match kernel::facts() {
        Ok(f) => f,
        Err(e) => {
            out.push(item(
                "probe plan",
                Status::Missing,
                format!("{e:#}"),
                "/proc/kallsyms, BTF",
            ));
            return;
        }
    };
    let plan = plan::decide(&facts, plan::ProbeMode::Auto);
    let fentry = fentry_attach(plan.as_ref().ok(), can_try);
    let fentry_works = fentry.status == Status::Ok;
    for hook in hooks::FUNCS {
        let attachable = facts.funcs.get(hook.func).is_some_and(|f| f.attachable);
        let kprobe = match hook.ret {
            Some(_) => "kprobe + kretprobe",
            None => "kprobe",
        };
        let fentry_name = match hook.fexit {
            Some(_) => "fentry + fexit",
            None => "fentry",
        };
        let mechanism = plan.as_ref().ok().and_then(|p| p.mechanisms.get(hook.func));
        let (status, fact) = match (attachable, mechanism) {
            (true, Some(Mechanism::Fentry(_))) if fentry_works => {
                (Status::Ok, fentry_name.to_string())
            }
            (true, Some(Mechanism::Fentry(_))) if kprobes => (
                Status::Ok,
                format!("{kprobe} (fentry refused here, see fentry/fexit)"),
            ),
            (true, Some(Mechanism::Kprobe { why_not_fentry })) if kprobes => (
                Status::Ok,
                format!("{kprobe} (not fentry: {why_not_fentry})"),
            ),
            (true, Some(_)) => (
                Status::Warn,
                format!("would get a {kprobe}, but this kernel has no kprobes"),
            ),
            (true, None) => (Status::Info, "present, not needed here".to_string()),
            (false, _) => (
                Status::Info,
                "absent (inlined, renamed or not loaded)".to_string(),
            ),
        };
        out.push(item(hook.func, status, fact, "/proc/kallsyms, BTF"));
    }
    out.push(match facts.lower_stack_from {
        LayoutFrom::Btf => item(
            "source layer",
            Status::Ok,
            "read from the kernel's lower stack (layout from overlay BTF)",
            "BTF",
        ),
        LayoutFrom::KnownLine => item(
            "source layer",
            Status::Ok,
            "read from the kernel's lower stack (the 5.7-6.4 layout: overlay has no BTF)",
            "kernel release",
        ),
        LayoutFrom::Unknown => item(
            "source layer",
            Status::Warn,
            "not named: overlay has no BTF and the kernel is not of a known line",
            "BTF, kernel release",
        ),
    });
    out.push(match plan {
        Ok(_) => item(
            "probe plan",
            Status::Ok,
            "every copy-up can be seen and measured",
            "BTF, /proc/kallsyms",
        ),
        Err(e) => item(
            "probe plan",
            Status::Missing,
            format!("{e:#}"),
            "BTF, /proc/kallsyms",
        ),
    });
    out.push(fentry);
}

/// Loads and attaches fentry and fexit on `do_fchownat` (vmlinux BTF) and
/// `ovl_copy_up_one` (the overlay module's BTF, where it has its own) where the plan
/// gives them fentry, then detaches them: tried, not guessed.
fn fentry_attach(plan: Option<&plan::ProbePlan>, can_try: bool) -> Item {
    const ROW: &str = "fentry/fexit";
    let Some(plan) = plan else {
        return item(ROW, Status::Info, "no probe plan", "plan");
    };
    let mut tried = Vec::new();
    let mut why_not = Vec::new();
    for hook in [&hooks::FCHOWNAT, &hooks::COPY_UP_ONE] {
        match plan.mechanisms.get(hook.func) {
            Some(Mechanism::Fentry(btf)) => tried.push((hook, btf.clone())),
            Some(Mechanism::Kprobe { why_not_fentry }) => {
                why_not.push(format!("{}: {why_not_fentry}", hook.func))
            }
            None => {}
        }
    }
    if tried.is_empty() {
        return item(
            ROW,
            Status::Info,
            format!("not used: {}; kprobes instead", why_not.join("; ")),
            "BTF, kernel version",
        );
    }
    let names: Vec<String> = tried
        .iter()
        .map(|(h, b)| match &b.module {
            Some(m) => format!("{} ({m} module BTF)", h.func),
            None => format!("{} (vmlinux BTF)", h.func),
        })
        .collect();
    if !can_try {
        return item(
            ROW,
            Status::Info,
            format!(
                "planned for {}; not tried: needs privileges",
                names.join(", ")
            ),
            "attach",
        );
    }
    match probes::Probes::try_fentry(&tried) {
        Ok(()) => item(
            ROW,
            Status::Ok,
            format!(
                "fentry and fexit attached to {} and detached",
                names.join(", ")
            ),
            "attach",
        ),
        Err(e) => item(
            ROW,
            Status::Warn,
            format!("refused ({e:#}): kprobes are used instead"),
            "attach",
        ),
    }
}

/// Attaches a kprobe and a kretprobe for real and detaches them: tried, not guessed.
fn kprobe_attach(can_try: bool) -> Item {
    if !can_try {
        return item(
            "kprobe attach",
            Status::Info,
            "not tried: needs privileges and kprobe support",
            "attach",
        );
    }
    match probes::Probes::try_attach() {
        Ok(func) => item(
            "kprobe attach",
            Status::Ok,
            format!("kprobe and kretprobe attached to {func} and detached"),
            "attach",
        ),
        Err(e) => item("kprobe attach", Status::Missing, format!("{e:#}"), "attach"),
    }
}

/// Container runtimes: (name, API socket, metadata directory).
const RUNTIMES: &[(&str, &str, &str)] = &[
    (
        "podman",
        "/run/podman/podman.sock",
        "/var/lib/containers/storage",
    ),
    ("docker", "/run/docker.sock", "/var/lib/docker"),
    (
        "containerd",
        "/run/containerd/containerd.sock",
        "/var/lib/containerd",
    ),
    (
        "cri-o",
        "/run/crio/crio.sock",
        "/var/lib/containers/storage",
    ),
];

fn runtimes(out: &mut Vec<Item>) {
    for (name, socket, dir) in RUNTIMES {
        let sock = Path::new(socket).exists();
        let meta = fs::read_dir(dir).is_ok();
        let (status, fact) = match (sock, meta) {
            (false, false) => (Status::Info, "not found".to_string()),
            (s, m) => (
                Status::Ok,
                format!(
                    "socket {}, metadata {}",
                    if s { "present" } else { "absent" },
                    if m { "readable" } else { "unreadable" }
                ),
            ),
        };
        out.push(item(
            &format!("runtime {name}"),
            status,
            fact,
            &format!("{socket}, {dir}"),
        ));
    }
}

/// Overlay mounts now, with the options that decide what a copy-up costs.
fn overlay_mounts(mounts: &[MountInfo], out: &mut Vec<Item>) {
    const OPTS: [&str; 5] = ["metacopy", "redirect_dir", "index", "userxattr", "volatile"];
    let overlays: Vec<&MountInfo> = mounts.iter().filter(|m| m.fs_type == "overlay").collect();
    if overlays.is_empty() {
        out.push(item("overlay mounts", Status::Info, "none", MOUNTINFO));
    }
    for m in overlays {
        let opts: Vec<String> = OPTS
            .iter()
            .filter_map(|o| match m.super_options.get(*o) {
                Some(Some(v)) => Some(format!("{o}={v}")),
                Some(None) => Some(o.to_string()),
                None => None,
            })
            .collect();
        let fact = if opts.is_empty() {
            "defaults".to_string()
        } else {
            opts.join(",")
        };
        out.push(item(
            &format!(
                "overlay {}",
                escape(m.mount_point.as_os_str().as_encoded_bytes())
            ),
            Status::Info,
            escape(fact.as_bytes()),
            MOUNTINFO,
        ));
    }
}

/// Every check, in the order a reader needs them.
pub fn run() -> Report {
    let mounts: Vec<MountInfo> = fs::read_to_string(MOUNTINFO)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| MountInfo::from_line(l).ok())
        .collect();
    let mut items = vec![
        item(
            "kernel",
            Status::Info,
            kernel::release().unwrap_or_else(|e| format!("{e:#}")),
            "/proc/sys/kernel/osrelease",
        ),
        privileges(),
        lockdown(),
        kprobe_support(),
    ];
    let can_try = items.iter().all(|i| i.status != Status::Missing);
    items.extend([
        vmlinux_btf(),
        overlay(),
        overlay_btf(),
        mounted("tracefs", &mounts),
        mounted("debugfs", &mounts),
        memlock(),
        stacks(),
    ]);
    let kprobes = items
        .iter()
        .any(|i| i.check == "kprobe support" && i.status == Status::Ok);
    let can_try_fentry = items
        .iter()
        .filter(|i| i.check == "privileges" || i.check == "lockdown")
        .all(|i| i.status != Status::Missing);
    probe_targets(kprobes, can_try_fentry, &mut items);
    items.push(kprobe_attach(can_try));
    runtimes(&mut items);
    overlay_mounts(&mounts, &mut items);
    Report {
        traceable: items.iter().all(|i| i.status != Status::Missing),
        items,
    }
}

pub fn write_table(out: &mut impl Write, r: &Report) -> Result<()> {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(["CHECK", "RESULT", "FACT", "SOURCE"]);
    for i in &r.items {
        let status = serde_json::to_value(i.status)?;
        t.add_row([
            i.check.as_str(),
            status.as_str().unwrap_or("?"),
            i.fact.as_str(),
            i.source.as_str(),
        ]);
    }
    writeln!(out, "{t}")?;
    let missing: Vec<&str> = r
        .items
        .iter()
        .filter(|i| i.status == Status::Missing)
        .map(|i| i.check.as_str())
        .collect();
    if missing.is_empty() {
        writeln!(out, "This host can be traced.")?;
    } else {
        writeln!(
            out,
            "This host cannot be traced: missing {}.",
            missing.join(", ")
        )?;
    }
    Ok(())
}

pub fn write_json(out: &mut impl Write, r: &Report) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, r)?;
    writeln!(out)?;
    Ok(())
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

    #[test]
    fn traceable_only_without_missing_rows() {
        let r = Report {
            traceable: false,
            items: vec![
                item("a", Status::Ok, "x", "s"),
                item("b", Status::Missing, "y", "s"),
            ],
        };
        let mut buf = Vec::new();
        write_table(&mut buf, &r).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.contains("cannot be traced: missing b."), "{text}");
        let mut buf = Vec::new();
        write_json(&mut buf, &r).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["items"][1]["status"], "missing");
        assert_eq!(v["traceable"], false);
    }
}
