//! `copyup-trace check`: what tracing needs on this host and what was found, one row a
//! fact with where it came from: the host's facts (`kernel::host`, which also guard a
//! normal start through `preflight`), the probe plan and trial attaches, runtimes and
//! overlay mounts. Rendering the rows is here too; tracing is not.

use std::{fs, io::Write, path::Path};

use anyhow::Result;
use copyup_trace_common::hooks;
use procfs::process::MountInfo;
use serde::Serialize;

use crate::{
    attribution::mounts::MOUNTINFO,
    escape::escape,
    kernel::facts,
    kernel::host::{
        self, item, kprobe_support, lockdown, memlock, overlay, overlay_btf, privileges, stacks,
        vmlinux_btf, Item, Status,
    },
    kernel::plan,
    kernel::plan::{LayoutFrom, Mechanism},
    kernel::{idmap, probes},
    output::render::new_table,
};

#[derive(Debug, Serialize)]
pub struct Report {
    /// No row is `missing`: copy-ups can be traced here.
    pub traceable: bool,
    pub items: Vec<Item>,
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

/// Probe targets and mechanisms, from the same facts and plan a start-up uses
/// (`--probes auto`). fentry/fexit is tried for real when `can_try`.
fn probe_targets(kprobes: bool, can_try: bool, out: &mut Vec<Item>) {
    let facts = match facts::facts() {
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
    let (fentry, refused) = fentry_attach(plan.as_ref().ok(), can_try, kprobes);
    let fentry_works = fentry.status == Status::Ok;
    for hook in hooks::FUNCS {
        let attachable = facts.funcs.get(hook.func).is_some_and(|f| f.attachable);
        let mechanism = plan.as_ref().ok().and_then(|p| p.mechanisms.get(hook.func));
        out.push(hook_row(hook, attachable, mechanism, fentry_works, kprobes));
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
        // What a start says when fentry is refused with no kprobes to fall back on.
        Ok(_) if !kprobes && refused.is_some() => {
            let (func, e) = refused.unwrap_or_default();
            item(
                "probe plan",
                Status::Missing,
                format!("{}: {e}", host::no_fallback(func, &host::kprobe_support())),
                "BTF, /proc/kallsyms, attach",
            )
        }
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

/// One probe target's row: whether it exists, and the mechanism it gets here.
fn hook_row(
    hook: &hooks::FuncHook,
    attachable: bool,
    mechanism: Option<&Mechanism>,
    fentry_works: bool,
    kprobes: bool,
) -> Item {
    let kprobe = match hook.ret {
        Some(_) => "kprobe + kretprobe",
        None => "kprobe",
    };
    let fentry_name = match hook.fexit {
        Some(_) => "fentry + fexit",
        None => "fentry",
    };
    let (status, fact) = match (attachable, mechanism) {
        (true, Some(Mechanism::Fentry(_))) if fentry_works => (Status::Ok, fentry_name.to_string()),
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
    item(hook.func, status, fact, "/proc/kallsyms, BTF")
}

/// Loads and attaches fentry and fexit on `do_fchownat` (vmlinux BTF) and
/// `ovl_copy_up_one` (the overlay module's BTF, where it has its own) where the plan
/// gives them fentry, then detaches them: tried, not guessed.
fn fentry_attach(
    plan: Option<&plan::ProbePlan>,
    can_try: bool,
    kprobes: bool,
) -> (Item, Option<(&'static str, String)>) {
    const ROW: &str = "fentry/fexit";
    let Some(plan) = plan else {
        return (item(ROW, Status::Info, "no probe plan", "plan"), None);
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
        let row = item(
            ROW,
            Status::Info,
            format!("not used: {}; kprobes instead", why_not.join("; ")),
            "BTF, kernel version",
        );
        return (row, None);
    }
    let names: Vec<String> = tried
        .iter()
        .map(|(h, b)| match &b.module {
            Some(m) => format!("{} ({m} module BTF)", h.func),
            None => format!("{} (vmlinux BTF)", h.func),
        })
        .collect();
    if !can_try {
        let row = item(
            ROW,
            Status::Info,
            format!(
                "planned for {}; not tried: needs privileges",
                names.join(", ")
            ),
            "attach",
        );
        return (row, None);
    }
    match probes::Probes::try_fentry(plan, &tried) {
        Ok(()) => {
            let row = item(
                ROW,
                Status::Ok,
                format!(
                    "fentry and fexit attached to {} and detached",
                    names.join(", ")
                ),
                "attach",
            );
            (row, None)
        }
        Err(e) => {
            let e = format!("{e:#}");
            let row = item(
                ROW,
                Status::Warn,
                if kprobes {
                    format!("refused ({e}): kprobes are used instead")
                } else {
                    format!("refused ({e}), and no kprobes to use instead")
                },
                "attach",
            );
            (row, Some((tried[0].0.func, e)))
        }
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
    for m in &overlays {
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
    layer_idmap(mounts, &overlays, out);
}

/// Whether the kernel can idmap the filesystems the overlays' layers are on: where it
/// can, a container given its own ids (podman --userns=auto, Kubernetes hostUsers:
/// false) is idmapped; where it cannot, its runtime chowns, which copies everything up.
fn layer_idmap(mounts: &[MountInfo], overlays: &[&MountInfo], out: &mut Vec<Item>) {
    use std::os::unix::fs::MetadataExt;
    // One row per filesystem (device) that holds an upper or the top lower layer.
    let mut seen = std::collections::BTreeMap::new();
    for m in overlays {
        let dirs = ["upperdir", "lowerdir"].into_iter().filter_map(|k| {
            let v = m.super_options.get(k)?.as_deref()?;
            v.split(':').next().filter(|d| d.starts_with('/'))
        });
        for dir in dirs {
            let Ok(md) = fs::metadata(dir) else { continue };
            let dev = md.dev();
            let (major, minor) = (libc::major(dev), libc::minor(dev));
            let Some(fs_mount) = mounts
                .iter()
                .find(|x| x.majmin == format!("{major}:{minor}") && x.fs_type != "overlay")
            else {
                continue;
            };
            seen.entry(dev)
                .or_insert((dir.to_string(), fs_mount.fs_type.clone()));
        }
    }
    let dirs: Vec<(String, String)> = seen.into_values().collect();
    let paths: Vec<&Path> = dirs.iter().map(|(d, _)| Path::new(d.as_str())).collect();
    for ((dir, fs_type), answer) in dirs.iter().zip(idmap::idmappable(&paths)) {
        let (status, fact) = match answer {
            Ok(idmap::Idmap::Yes) => (
                Status::Ok,
                format!(
                    "{fs_type}: the kernel idmaps it, so a container given its own ids \
                     (podman --userns=auto, Kubernetes hostUsers: false) is not chowned"
                ),
            ),
            Ok(idmap::Idmap::No(why)) => (
                Status::Info,
                format!(
                    "{fs_type}: {why}; a container given its own ids is chowned by its \
                     runtime instead, which copies every file up"
                ),
            ),
            Err(e) => (Status::Info, format!("{fs_type}: not tried: {e}")),
        };
        out.push(item(
            &format!("idmap {}", escape(dir.as_bytes())),
            status,
            escape(fact.as_bytes()),
            "open_tree + mount_setattr(MOUNT_ATTR_IDMAP) on a detached copy",
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
            facts::release().unwrap_or_else(|e| format!("{e:#}")),
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
    let mut t = new_table(&["CHECK", "RESULT", "FACT", "SOURCE"]);
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
