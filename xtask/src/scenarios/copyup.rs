//! Checks of what is copied up: objects, kinds, exact bytes, order, metadata-only copy-ups,
//! with the upper layer and a tracefs kprobe oracle as independent witnesses. It judges
//! what `guest/scenarios/copyup.sh` saved; reading the artifacts is `mod.rs`'s job.

use anyhow::{anyhow, ensure, Context, Result};

use super::{check_latencies, expect_objects, objects, s, sorted, u, Artifacts, Check};

pub const CHECKS: &[Check] = &[
    (
        "chown of one 8 MiB file: one 8388608-byte copy-up",
        single_file,
    ),
    ("second chown of a copied-up file: no copy-up", second_chown),
    ("chown -hR over a tree: every object, exact bytes", tree),
    (
        "tracefs kprobe oracle agrees on count and lengths",
        tracefs_oracle,
    ),
    ("deep file: ancestors copied up first", ancestors_first),
    (
        "metacopy=on: metadata-only, then the data on first write",
        metacopy,
    ),
];

pub(super) fn single_file(a: &Artifacts) -> Result<()> {
    let r = a.run("single")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    expect_objects(&r, &[("/big", "file", 8388608)])?;
    let e = &r.events[0];
    ensure!(s(&e["trigger"]) == "chown", "trigger {}", e["trigger"]);
    ensure!(s(&e["comm"]) == "chown", "comm {}", e["comm"]);
    ensure!(
        s(&e["filename"]) == "/tmp/ovl-single/merged/big",
        "filename {}",
        e["filename"]
    );
    ensure!(u(&r.summary["copy_ups"]) == 1 && u(&r.summary["bytes"]) == 8388608);
    ensure!(
        a.upper("single")? == ["/big"],
        "upper {:?}",
        a.upper("single")?
    );
    check_latencies(&r)
}

fn second_chown(a: &Artifacts) -> Result<()> {
    let r = a.run("again")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    ensure!(r.events.is_empty(), "events {:?}", r.events);
    ensure!(u(&r.summary["copy_ups"]) == 0);
    Ok(())
}

pub(super) fn tree(a: &Artifacts) -> Result<()> {
    let r = a.run("tree")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    let want = [
        ("/tree", "dir", 0),
        ("/tree/a.bin", "file", 4096),
        ("/tree/empty", "file", 0),
        ("/tree/link", "symlink", 0),
        ("/tree/sub", "dir", 0),
        ("/tree/sub/b.bin", "file", 123457),
        ("/tree/sub/deep", "dir", 0),
        ("/tree/sub/deep/c.bin", "file", 1048576),
    ];
    let got = sorted(&objects(&r));
    let want_v: Vec<_> = want
        .iter()
        .map(|(p, k, b)| (p.to_string(), k.to_string(), *b))
        .collect();
    ensure!(got == want_v, "copy-ups\n  got  {got:?}\n  want {want_v:?}");
    ensure!(
        s(&r.events[0]["path"]) == "/tree",
        "the directory is copied first"
    );
    ensure!(u(&r.summary["copy_ups"]) == 8);
    ensure!(u(&r.summary["bytes"]) == 4096 + 123457 + 1048576);
    // `chown -h` changes symlinks themselves: lchown(2) for every object.
    for e in &r.events {
        ensure!(s(&e["trigger"]) == "lchown", "trigger {e}");
    }
    let upper = a.upper("tree")?;
    let want_paths: Vec<_> = want.iter().map(|w| w.0.to_string()).collect();
    ensure!(upper == want_paths, "upper layer {upper:?}");
    check_latencies(&r)
}

pub(super) fn tracefs_oracle(a: &Artifacts) -> Result<()> {
    let r = a.run("tree")?;
    let oracle = a.get("tree.oracle")?;
    let ones = oracle.lines().filter(|l| l.contains("one:")).count();
    ensure!(
        ones == r.events.len(),
        "oracle saw {ones} ovl_copy_up_one, tool {}",
        r.events.len()
    );
    let mut lens: Vec<u64> = oracle
        .lines()
        .filter(|l| l.contains("file:"))
        .map(|l| {
            let v = l
                .split("len=")
                .nth(1)
                .ok_or_else(|| anyhow!("no len in {l:?}"))?;
            v.trim()
                .parse::<u64>()
                .with_context(|| format!("len in {l:?}"))
        })
        .collect::<Result<_>>()?;
    lens.retain(|&l| l > 0);
    lens.sort();
    let mut bytes: Vec<u64> = r
        .events
        .iter()
        .map(|e| u(&e["bytes"]))
        .filter(|&b| b > 0)
        .collect();
    bytes.sort();
    ensure!(lens == bytes, "oracle lengths {lens:?}, tool {bytes:?}");
    Ok(())
}

fn ancestors_first(a: &Artifacts) -> Result<()> {
    let r = a.run("deep")?;
    expect_objects(
        &r,
        &[
            ("/a", "dir", 0),
            ("/a/b", "dir", 0),
            ("/a/b/c", "dir", 0),
            ("/a/b/c/file.txt", "file", 5000),
        ],
    )?;
    for e in &r.events {
        ensure!(
            s(&e["filename"]) == "/tmp/ovl-deep/merged/a/b/c/file.txt",
            "each copy-up names the chown's argument: {e}"
        );
    }
    check_latencies(&r)
}

fn metacopy(a: &Artifacts) -> Result<()> {
    let r = a.run("meta")?;
    let got: Vec<_> = r
        .events
        .iter()
        .map(|e| {
            (
                s(&e["path"]),
                s(&e["trigger"]),
                u(&e["bytes"]),
                e["metacopy"].as_bool(),
                u(&e["size"]),
            )
        })
        .collect();
    let want = vec![
        ("/m", "chown", 0, Some(true), 5000),
        ("/m", "open-write", 5000, Some(false), 5000),
    ];
    ensure!(got == want, "got {got:?}\n    want {want:?}");
    Ok(())
}
