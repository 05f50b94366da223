//! Checks of whose copy-ups are reported: `-- COMMAND`'s process tree, `--pid`, `--comm`,
//! `--cgroup`, and container attribution. It judges what `guest/scenarios/scoping.sh`
//! saved; reading the artifacts is `mod.rs`'s job.

use anyhow::{ensure, Result};

use super::{expect_objects, s, skipped_runs_of, u, Artifacts, Check, Missing};

pub const CHECKS: &[Check] = &[
    ("-- COMMAND: only the command's process tree", command_tree),
    ("--pid: only that process; SIGINT prints the summary", pid),
    ("SIGINT: report printed, probes detached", sigint_detaches),
    ("--comm: only tasks with that name", comm),
    ("container id and cgroup; --cgroup keeps only it", cgroup),
    (
        "a runtime that never answers: nothing lost, containers marked unresolved",
        silent_runtime,
    ),
];

fn command_tree(a: &Artifacts) -> Result<()> {
    let r = a.run("scope")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    expect_objects(&r, &[("/x1", "file", 3), ("/x2", "file", 3)])?;
    let upper = a.upper("scope")?;
    ensure!(
        upper == ["/x1", "/x2", "/y1", "/y2"],
        "the other process did not copy up: {upper:?}"
    );
    Ok(())
}

fn pid(a: &Artifacts) -> Result<()> {
    let r = a.run("pid")?;
    ensure!(r.rc == 0, "exit {} after SIGINT", r.rc);
    let pid: u64 = a.get("pid.pid")?.trim().parse()?;
    expect_objects(&r, &[("/p1", "file", 3), ("/p2", "file", 3)])?;
    for e in &r.events {
        ensure!(u(&e["pid"]) == pid, "pid {} want {pid}", e["pid"]);
    }
    let upper = a.upper("pid")?;
    ensure!(upper == ["/p1", "/p2", "/q1"], "upper {upper:?}");
    Ok(())
}

fn comm(a: &Artifacts) -> Result<()> {
    let r = a.run("comm")?;
    expect_objects(&r, &[("/c1", "file", 3)])?;
    ensure!(
        a.upper("comm")? == ["/c1", "/c2"],
        "upper {:?}",
        a.upper("comm")?
    );
    Ok(())
}

fn cgroup(a: &Artifacts) -> Result<()> {
    let r = a.run("cg")?;
    let cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    expect_objects(&r, &[("/in", "file", 2)])?;
    let e = &r.events[0];
    ensure!(e["container"]["runtime"] == "docker", "{e}");
    ensure!(e["container"]["id"] == cid, "{e}");
    ensure!(
        s(&e["cgroup"]) == format!("/system.slice/docker-{cid}.scope"),
        "{e}"
    );
    ensure!(s(&e["mount"]) == "/tmp/ovl-cg/merged", "{e}");
    ensure!(
        a.upper("cg")? == ["/in", "/out"],
        "upper {:?}",
        a.upper("cg")?
    );
    Ok(())
}

/// containerd's socket never answers while three of its containers copy up 1000 files
/// each through a 256 KiB ring, about a third of their records: no record is lost (a
/// drain that waited on containerd, 2 s a question, would overflow the ring), each names its container by runtime and id, marked unresolved,
/// and the tool says once per container that containerd did not answer. A copy-up not
/// reported is one a skipped run of `ovl_copy_up_one`'s programs accounts for (7.x, with
/// copy-ups at once on both CPUs).
fn silent_runtime(a: &Artifacts) -> Result<()> {
    let r = a.run("slowrt")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    let files = r.events.iter().filter(|e| s(&e["kind"]) == "file").count() as u64;
    let skipped = skipped_runs_of(&r, Missing::Record);
    ensure!(
        files <= 3000 && files + skipped >= 3000,
        "{files} file copy-ups and {skipped} skipped runs of ovl_copy_up_one's programs, want 3000"
    );
    for n in 1..=3u32 {
        let id = format!("{n:064}");
        let mine: Vec<&serde_json::Value> = r
            .events
            .iter()
            .filter(|e| s(&e["path"]).starts_with(&format!("/c{n}/")))
            .collect();
        ensure!(
            mine.len() <= 1000 && mine.len() as u64 + skipped >= 1000,
            "container {n}: {} file copy-ups, {skipped} skipped runs",
            mine.len()
        );
        for e in &mine {
            let want = serde_json::json!({"runtime": "containerd", "id": id, "unresolved": true});
            ensure!(e["container"] == want, "container {n}: {e}");
        }
    }
    ensure!(r.summary["lost"] == 0, "lost: {}", r.summary);
    // Said on stderr: containerd did not answer (its client's own deadline, or the
    // lookup bound); never more than once per container.
    let err = a.get("slowrt.err")?;
    let said = err.lines().filter(|l| l.contains("did not answer")).count();
    ensure!((1..=4).contains(&said), "stderr: {err}");
    Ok(())
}

fn sigint_detaches(a: &Artifacts) -> Result<()> {
    // Our programs (kprobe or fentry) were loaded while tracing, and are gone after.
    a.programs_detached("pid", "SIGINT")?;
    let n = a.get("pid.kprobes_after")?.trim().to_string();
    ensure!(
        n == "0",
        "{n} overlay kprobes still registered after SIGINT"
    );
    Ok(())
}
