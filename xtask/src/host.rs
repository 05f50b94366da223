//! Checks that run on the build machine itself. The project's build machines run a
//! kernel built without CONFIG_KPROBES, so the tool must refuse to start there, clearly.
//! Checks that need a tracing kernel are the guest's (`scenarios`).

use std::{path::Path, process::Command};

use anyhow::{ensure, Result};

use crate::cmd::{outcome, Outcome};

fn one_line(o: &Outcome, code: i32, needle: &str) -> Result<()> {
    ensure!(
        o.code == code,
        "exit {}, want {code}; stderr {:?}",
        o.code,
        o.stderr
    );
    ensure!(
        o.stderr.lines().count() == 1,
        "stderr is not one line: {:?}",
        o.stderr
    );
    ensure!(o.stderr.starts_with("copyup-trace: "), "{:?}", o.stderr);
    ensure!(o.stderr.contains(needle), "{:?} lacks {needle:?}", o.stderr);
    Ok(())
}

pub type Check = (&'static str, fn(&Path) -> Result<()>);

pub const CHECKS: &[Check] = &[
    ("kernel without kprobes: fails fast, says so", |tool| {
        ensure!(
            !Path::new("/sys/bus/event_source/devices/kprobe").exists(),
            "this machine has a kprobe PMU; the check expects the project's build machines, \
             whose kernel is built without CONFIG_KPROBES"
        );
        let o = outcome(&mut Command::new(tool))?;
        one_line(&o, 1, "kprobes are unavailable")?;
        ensure!(o.stderr.contains("CONFIG_KPROBES"), "{:?}", o.stderr);
        Ok(())
    }),
    ("without privileges: asks for root", |tool| {
        let o = outcome(
            Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
                .arg(tool),
        )?;
        one_line(&o, 1, "needs root (or CAP_BPF and CAP_PERFMON)")
    }),
    ("bad option value: one line, exit 2", |tool| {
        let o = outcome(Command::new(tool).args(["-o", "xml"]))?;
        one_line(&o, 2, "'xml'")
    }),
    ("check: exit 1, names what is missing and why", |tool| {
        let o = outcome(Command::new(tool).args(["check", "-o", "json"]))?;
        ensure!(
            o.code == 1,
            "exit {}, want 1; stderr {:?}",
            o.code,
            o.stderr
        );
        let report: serde_json::Value = serde_json::from_str(&o.stdout)?;
        ensure!(report["traceable"] == false, "{report}");
        let kprobes = report["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["check"] == "kprobe support"))
            .ok_or_else(|| anyhow::anyhow!("no kprobe support row: {report}"))?;
        ensure!(kprobes["status"] == "missing", "{kprobes}");
        ensure!(
            kprobes["fact"]
                .as_str()
                .unwrap_or("")
                .contains("CONFIG_KPROBES"),
            "{kprobes}"
        );
        let table = outcome(Command::new(tool).arg("check"))?;
        ensure!(table.code == 1, "table exit {}", table.code);
        ensure!(
            table
                .stdout
                .contains("This host cannot be traced: missing kprobe support, probe plan."),
            "{}",
            table.stdout
        );
        Ok(())
    }),
    (
        "-i or --events with a machine format: refused, one line, exit 2",
        |tool| {
            let o = outcome(Command::new(tool).args(["-o", "json", "-i", "5"]))?;
            one_line(&o, 2, "--interval prints tables")?;
            let o = outcome(Command::new(tool).args(["-o", "csv", "--events"]))?;
            one_line(&o, 2, "--events prints text lines")
        },
    ),
    (
        "-- COMMAND and check give the same reason nothing can trace here",
        |tool| {
            let run = outcome(Command::new(tool).args(["--", "true"]))?;
            let o = outcome(Command::new(tool).args(["check", "-o", "json"]))?;
            let report: serde_json::Value = serde_json::from_str(&o.stdout)?;
            let plan = report["items"]
                .as_array()
                .and_then(|items| items.iter().find(|i| i["check"] == "probe plan"))
                .ok_or_else(|| anyhow::anyhow!("no probe plan row: {report}"))?;
            ensure!(plan["status"] == "missing", "probe plan: {plan}");
            let why = plan["fact"].as_str().unwrap_or("");
            ensure!(!why.is_empty(), "{plan}");
            // The same sentence, whichever way the kernel refused.
            one_line(&run, 1, why)
        },
    ),
    ("check's table fits COLUMNS=100", |tool| {
        let o = outcome(Command::new(tool).arg("check").env("COLUMNS", "100"))?;
        let widest = o.stdout.lines().map(|l| l.chars().count()).max();
        ensure!(
            widest.is_some_and(|w| w <= 100),
            "widest line {widest:?} columns:\n{}",
            o.stdout
        );
        Ok(())
    }),
    ("unknown option: one line, exit 2", |tool| {
        let o = outcome(Command::new(tool).arg("--frobnicate"))?;
        one_line(&o, 2, "--frobnicate")
    }),
    (
        "deploy/kubernetes/daemonset.yaml: valid against the Kubernetes schema (strict)",
        crate::deploy::manifest,
    ),
    (
        "deploy/systemd/copyup-trace.service: systemd-analyze verify",
        crate::deploy::unit,
    ),
    (
        "deploy files, Containerfile and README serve metrics on METRICS_PORT only",
        crate::deploy::port,
    ),
    (
        "--metrics without an address, bad --metrics-labels: one line, exit 2",
        |tool| {
            let o = outcome(Command::new(tool).args(["--metrics", "nowhere:port"]))?;
            one_line(&o, 2, "nowhere:port")?;
            let o = outcome(Command::new(tool).args(["--metrics-labels", "trigger,path"]))?;
            one_line(&o, 2, "unknown label \"path\"")
        },
    ),
];
