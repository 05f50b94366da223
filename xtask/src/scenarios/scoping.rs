//! Checks of whose copy-ups are reported: `-- COMMAND`'s process tree, `--pid`, `--comm`,
//! `--cgroup`, and container attribution. It judges what `guest/scenarios/scoping.sh`
//! saved; reading the artifacts is `mod.rs`'s job.

use anyhow::{ensure, Result};

use super::{expect_objects, s, u, Artifacts, Check};

pub const CHECKS: &[Check] = &[
    ("-- COMMAND: only the command's process tree", command_tree),
    ("--pid: only that process; SIGINT prints the summary", pid),
    ("--comm: only tasks with that name", comm),
    ("container id and cgroup; --cgroup keeps only it", cgroup),
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
