//! Checks of the release as shipped (`cargo xtask dist`), in a userland boot of its own with
//! systemd as PID 1 (`guest/userland/systemd-boot.sh`, which `guest`'s userland /init hands
//! over to): the `.deb` installed by apt offline, its man pages and completions, its
//! service enabled and run by systemd as shipped, counting a podman container's copy-ups
//! in its metrics, `--stacks` and `-o json` (container, layer, host paths) under the
//! unit's sandbox, the capabilities it needs for them, a clean stop; the OCI archive
//! loaded by podman and docker. It judges what `guest/userland/deb.sh` saved; building the
//! artifacts is `dist`'s.

use std::path::Path;

use anyhow::{ensure, Result};
use serde_json::{json, Value};

use super::super::{Artifacts, Check};
use crate::{dist::Dist, guest::GuestFile};

/// The script of this boot: the userland helpers, then this family.
pub const SCRIPT: &str = concat!(
    include_str!("../../../guest/userland/lib.sh"),
    include_str!("../../../guest/userland/deb.sh"),
    "exit 0\n",
);

/// The kernel lines this boot runs on: one, the newest long-term line with a userland
/// guest (a boot adds about two minutes to `cargo xtask test`); 5.10 has no userland.
pub const SERIES: &[&str] = &["6.12"];

/// The boot's files: systemd's hand-over, guest-ops (the container's chowns, BPF object
/// counts), and the host architecture's `.deb` and the image archive in /root/dist. No
/// copyup-trace binary: the package brings it.
pub fn files(dist: &Dist, guest_ops: &Path) -> Vec<GuestFile> {
    let boot = crate::cmd::workspace_root().join("xtask/guest/userland/systemd-boot.sh");
    let mut files = vec![
        GuestFile {
            guest_path: "/usr/lib/copyup-guest/boot".into(),
            host_path: boot,
            mode: 0o755,
        },
        GuestFile {
            guest_path: "/bin/guest-ops".into(),
            host_path: guest_ops.to_path_buf(),
            mode: 0o755,
        },
    ];
    for f in [&dist.debs[0], &dist.oci] {
        let name = f.file_name().expect("a file").to_string_lossy();
        files.push(GuestFile {
            guest_path: format!("/root/dist/{name}"),
            host_path: f.clone(),
            mode: 0o644,
        });
    }
    files
}

pub const CHECKS: &[Check] = &[
    (
        "deb: systemd is PID 1, no copyup-trace before the package",
        pid1,
    ),
    (
        "deb: apt installs the .deb offline, alone, with its files",
        installed,
    ),
    ("deb: installed files are dist's, byte for byte", same_bytes),
    (
        "deb: the service is installed, not enabled, not started",
        not_enabled,
    ),
    ("deb: man pages and bash completion work", docs),
    (
        "deb: systemd runs the unit as shipped; its metrics count the container's copy-ups",
        metrics,
    ),
    (
        "deb: systemctl stop ends it cleanly, no programs left",
        stopped,
    ),
    ("deb: --stacks under the unit names kernel frames", stacks),
    (
        "deb: -o json under the unit: container, layer and host paths of each copy-up",
        records,
    ),
    (
        "deb: without CAP_SYS_PTRACE /proc/1 is closed to the unit (why it has it)",
        proc1,
    ),
    (
        "deb: without CAP_SYSLOG every kallsyms address is zero (why the unit has it)",
        kallsyms,
    ),
    (
        "deb: the OCI archive loads and runs in podman and docker",
        oci,
    ),
];

fn version() -> Result<String> {
    crate::dist::version()
}

fn pid1(a: &Artifacts) -> Result<()> {
    let comm = a.get("deb.pid1")?.trim();
    ensure!(comm == "systemd", "PID 1 is {comm:?}");
    let before = a.get("deb.preinstalled")?.trim();
    ensure!(before == "none", "copyup-trace was there before: {before}");
    Ok(())
}

fn installed(a: &Artifacts) -> Result<()> {
    let v = version()?;
    let rc = a.get("deb.apt_rc")?.trim();
    let apt = a.get("deb.apt")?;
    ensure!(rc == "0", "apt install exit {rc}\n{apt}");
    for want in [
        "The following NEW packages will be installed:\n  copyup-trace\n\
         0 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.\n",
        "Need to get 0 B/",
        &format!("Setting up copyup-trace ({v}) ..."),
    ] {
        ensure!(apt.contains(want), "apt's output lacks {want:?}:\n{apt}");
    }
    let status = a.get("deb.status")?.trim();
    let want = format!("install ok installed|{v}|amd64|");
    ensure!(status == want, "dpkg-query: {status:?}, want {want:?}");
    // dpkg -L: the package's files and the directories above them.
    let mut want: Vec<String> = vec!["/.".into()];
    for (_, f) in crate::dist::DEB_FILES {
        let f = f.trim_start_matches('.');
        let mut dir = std::path::Path::new(f).parent();
        while let Some(d) = dir.filter(|d| *d != std::path::Path::new("/")) {
            want.push(d.display().to_string());
            dir = d.parent();
        }
        want.push(f.to_string());
    }
    want.sort();
    want.dedup();
    let got: Vec<&str> = a
        .get("deb.files")?
        .lines()
        .filter(|l| !l.is_empty())
        .collect();
    ensure!(got == want, "dpkg -L\n  got  {got:?}\n  want {want:?}");
    let modes = a.get("deb.modes")?.trim();
    ensure!(
        modes
            == "/usr/bin/copyup-trace 755 root:root\n\
                /lib/systemd/system/copyup-trace.service 644 root:root",
        "{modes}"
    );
    let shown = a.get("deb.version")?.trim();
    ensure!(shown == format!("copyup-trace {v}"), "--version: {shown:?}");
    Ok(())
}

/// The guest's sha256 of each installed file (man pages uncompressed) against the file
/// `cargo xtask dist` wrote.
fn same_bytes(a: &Artifacts) -> Result<()> {
    let v = version()?;
    let dist = crate::cmd::workspace_root().join("target/dist");
    let host = [
        (
            "/usr/bin/copyup-trace",
            format!("copyup-trace-{v}-x86_64-unknown-linux-musl"),
        ),
        (
            "/lib/systemd/system/copyup-trace.service",
            "systemd/copyup-trace.service".into(),
        ),
        (
            "/usr/share/bash-completion/completions/copyup-trace",
            "completions/copyup-trace.bash".into(),
        ),
        (
            "/usr/share/zsh/vendor-completions/_copyup-trace",
            "completions/_copyup-trace".into(),
        ),
        (
            "/usr/share/fish/vendor_completions.d/copyup-trace.fish",
            "completions/copyup-trace.fish".into(),
        ),
        (
            "/usr/share/man/man1/copyup-trace.1.gz",
            "man/copyup-trace.1".into(),
        ),
        (
            "/usr/share/man/man1/copyup-trace-check.1.gz",
            "man/copyup-trace-check.1".into(),
        ),
    ];
    let mut want = String::new();
    for (guest, file) in host {
        let data = std::fs::read(dist.join(&file))?;
        want.push_str(&format!("{} {guest}\n", crate::dist::sha256_hex(&data)));
    }
    let got = a.get("deb.sums")?;
    ensure!(got.trim() == want.trim(), "installed\n{got}\ndist\n{want}");
    Ok(())
}

fn not_enabled(a: &Artifacts) -> Result<()> {
    let enabled = a.get("deb.enabled")?.trim();
    let active = a.get("deb.active")?.trim();
    ensure!(
        (enabled, active) == ("disabled", "inactive"),
        "after install: {enabled}, {active}"
    );
    Ok(())
}

fn docs(a: &Artifacts) -> Result<()> {
    let v = version()?;
    let man = a.get("deb.man")?;
    for want in [
        format!(".TH copyup-trace 1  \"copyup-trace {v}\" \n.SH NAME\ncopyup\\-trace \\- Trace overlayfs copy\\-ups"),
        "\\fB\\-\\-metrics\\fR \\fI<ADDR>\\fR".to_string(),
        ".SH SUBCOMMANDS".to_string(),
    ] {
        ensure!(man.contains(&want), "copyup-trace.1 lacks {want:?}");
    }
    let man = a.get("deb.man_check")?;
    let want = format!(".TH copyup-trace-check 1  \"copyup-trace-check {v}\" \n.SH NAME\ncopyup\\-trace\\-check \\- Say whether this host can be traced");
    ensure!(
        man.contains(&want),
        "copyup-trace-check.1 lacks {want:?}:\n{man}"
    );
    // `copyup-trace --ou<TAB>`, then `copyup-trace -o <TAB>`.
    let bash = a.get("deb.bash")?.trim();
    ensure!(
        bash == "--output\ntable json csv",
        "bash completion: {bash:?}"
    );
    Ok(())
}

/// The copy-up counters, `name{labels} value` lines, sorted.
fn counters(text: &str) -> Vec<&str> {
    let mut v: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("copyup_trace_copy_ups_total{")
                || l.starts_with("copyup_trace_copied_bytes_total{")
        })
        .collect();
    v.sort_unstable();
    v
}

fn metrics(a: &Artifacts) -> Result<()> {
    let enable = a.get("deb.enable")?.trim();
    ensure!(
        enable
            == "Created symlink /etc/systemd/system/multi-user.target.wants/copyup-trace.service \
                \u{2192} /lib/systemd/system/copyup-trace.service.\n0",
        "systemctl enable --now: {enable:?}"
    );
    let show = a.get("deb.show_running")?;
    for want in ["ActiveState=active", "SubState=running", "NRestarts=0"] {
        ensure!(show.lines().any(|l| l == want), "running: {show:?}");
    }
    // Default labels: trigger, kind, then container (podman's name); no namespace or pod.
    let got = counters(a.get("deb.metrics")?);
    let want = [
        r#"copyup_trace_copied_bytes_total{trigger="fchown",kind="dir",container="copier"} 0"#,
        r#"copyup_trace_copied_bytes_total{trigger="fchown",kind="file",container="copier"} 8000"#,
        r#"copyup_trace_copy_ups_total{trigger="fchown",kind="dir",container="copier"} 1"#,
        r#"copyup_trace_copy_ups_total{trigger="fchown",kind="file",container="copier"} 2"#,
    ];
    ensure!(got == want, "metrics\n  got  {got:#?}\n  want {want:#?}");
    Ok(())
}

fn stopped(a: &Artifacts) -> Result<()> {
    let show = a.get("deb.show_stopped")?;
    for want in [
        "ActiveState=inactive",
        "Result=success",
        "ExecMainStatus=0",
        "NRestarts=0",
    ] {
        ensure!(show.lines().any(|l| l == want), "after stop: {show:?}");
    }
    // The summary goes to the journal as it ends.
    let journal = a.get("deb.journal")?;
    ensure!(
        journal
            .lines()
            .any(|l| l.starts_with("3 copy-ups, 7.8 KiB copied, ")),
        "journal:\n{journal}"
    );
    ensure!(!journal.contains("panicked"), "{journal}");
    a.programs_detached("deb", "systemctl stop")?;
    Ok(())
}

/// One folded stack for the chown's two copy-ups (/data and /data/b): guest-ops (static,
/// no symbols), then the kernel's frames, each named through /proc/kallsyms.
fn stacks(a: &Artifacts) -> Result<()> {
    let show = a.get("deb.stacks_show")?;
    let journal = a.get("deb.stacks_journal")?;
    for want in ["Result=success", "ExecMainStatus=0"] {
        ensure!(show.lines().any(|l| l == want), "{show:?}\n{journal}");
    }
    let folded = a.get("deb.stacks")?.trim();
    let (frames, weight) = folded
        .rsplit_once(' ')
        .ok_or_else(|| anyhow::anyhow!("folded stacks: {folded:?}"))?;
    ensure!(
        frames
            == "guest-ops;[unknown];entry_SYSCALL_64_after_hwframe;do_syscall_64;\
                __x64_sys_fchown;ksys_fchown;chown_common;notify_change;ovl_setattr;\
                ovl_copy_up_flags;ovl_copy_up_one",
        "folded stacks: {folded:?}"
    );
    ensure!(weight.parse::<u64>()? > 0, "{folded:?}");
    Ok(())
}

/// The drop-in's run with `-o json`: container `stacker` chowned /data/b, copying up
/// /data and /data/b, each with its container, its overlay mount and host path, and the
/// image's one layer, all seen from the unit's own mount namespace through /proc/1.
fn records(a: &Artifacts) -> Result<()> {
    let ids = a.get("deb.stacker")?;
    let [id, merged, lower] = ids.split_whitespace().collect::<Vec<_>>()[..] else {
        return Err(anyhow::anyhow!("deb.stacker: {ids:?}"));
    };
    let layer_id = lower
        .strip_prefix("/var/lib/containers/storage/overlay/")
        .and_then(|l| l.strip_suffix("/diff"))
        .ok_or_else(|| anyhow::anyhow!("lower dir {lower:?}"))?;
    let journal = a.get("deb.stacks_journal")?;
    let lines: Vec<Value> = journal
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let got: Vec<Value> = lines
        .iter()
        .filter(|r| r["type"] == "copy_up")
        .map(|r| {
            json!([
                r["path"],
                r["kind"],
                r["bytes"],
                r["mount"],
                r["host_path"],
                r["container"]["runtime"],
                r["container"]["id"],
                r["container"]["name"],
                r["container"]["image"],
                r["layer"]["index"],
                r["layer"]["dir"],
                r["layer"]["store"],
                r["layer"]["id"],
            ])
        })
        .collect();
    let want: Vec<Value> = [("/data", "dir", 0), ("/data/b", "file", 5000)]
        .iter()
        .map(|(p, k, b)| {
            json!([
                p,
                k,
                b,
                merged,
                format!("{merged}{p}"),
                "podman",
                id,
                "stacker",
                "localhost/files:1",
                0,
                lower,
                "containers-storage",
                layer_id,
            ])
        })
        .collect();
    ensure!(got == want, "records\n  got  {got:?}\n  want {want:?}");
    let summary = lines
        .iter()
        .find(|r| r["type"] == "summary")
        .ok_or_else(|| anyhow::anyhow!("no summary:\n{journal}"))?;
    ensure!(
        (&summary["copy_ups"], &summary["bytes"]) == (&json!(2), &json!(5000)),
        "summary {summary}"
    );
    Ok(())
}

/// With the unit's capabilities save CAP_SYS_PTRACE, PID 1's mount namespace and root are
/// refused (its mountinfo is readable: it is world-readable); with it, all three open.
fn proc1(a: &Artifacts) -> Result<()> {
    let got = a.get("deb.proc1")?.trim();
    let want = "Permission denied\nmountinfo ok\nPermission denied\n--\n\
                ns ok\nmountinfo ok\nroot ok\n--";
    ensure!(got == want, "/proc/1 under the unit's capabilities:\n{got}");
    Ok(())
}

fn kallsyms(a: &Artifacts) -> Result<()> {
    let out = a.get("deb.kallsyms_nosyslog")?;
    let n: Vec<u64> = out
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{out:?}: {e}"))?;
    let [zero, all] = n[..] else {
        return Err(anyhow::anyhow!("{out:?}"));
    };
    ensure!(
        all > 10_000 && zero == all,
        "{zero} of {all} lines with a zero address"
    );
    Ok(())
}

fn oci(a: &Artifacts) -> Result<()> {
    let v = version()?;
    let load = a.get("deb.podman_load")?;
    let want = format!("Loaded image: docker.io/library/copyup-trace:{v}");
    ensure!(load.lines().last() == Some(&want), "podman load:\n{load}");
    let image = a.get("deb.podman_image")?.trim();
    ensure!(
        image == "amd64 [/copyup-trace] [--metrics 0.0.0.0:29435]",
        "podman image inspect: {image:?}"
    );
    let want = format!("copyup-trace {v}");
    for (what, out) in [("podman", "deb.podman_run"), ("docker", "deb.docker_run")] {
        let got = a.get(out)?.trim();
        ensure!(got == want, "{what} run --version: {got:?}");
    }
    let load = a.get("deb.docker_load")?.trim();
    // docker before 25 reads manifest.json: every architecture's tag, and the first's
    // plain one.
    let mut want = format!("Loaded image: copyup-trace:{v}");
    for t in crate::dist::TARGETS {
        want.push_str(&format!("\nLoaded image: copyup-trace:{v}-{}", t.oci_arch));
    }
    ensure!(load == want, "docker load: {load:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_own_script_and_check_names() {
        assert!(SCRIPT.starts_with("# Guest-side half of the userland"));
        assert!(SCRIPT.ends_with("\nexit 0\n"));
        assert!(SCRIPT.contains("apt install -y ./copyup-trace_*.deb"));
        let mut names: Vec<&str> = CHECKS.iter().map(|c| c.0).collect();
        names.extend(super::super::checks().map(|c| c.0));
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a check name is used twice");
        assert!(CHECKS.iter().all(|c| c.0.starts_with("deb: ")));
    }

    #[test]
    fn the_counters_of_a_scrape() {
        let text = "# HELP x\ncopyup_trace_copy_ups_total{a=\"b\"} 2\n\
                    copyup_trace_copy_up_duration_seconds_count{a=\"b\"} 2\n\
                    copyup_trace_copied_bytes_total{a=\"b\"} 8000\n";
        assert_eq!(
            counters(text),
            [
                "copyup_trace_copied_bytes_total{a=\"b\"} 8000",
                "copyup_trace_copy_ups_total{a=\"b\"} 2"
            ]
        );
    }
}
