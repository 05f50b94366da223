//! Checks of why a copy-up happened: every operation that copies up is named, and each call
//! that copied up reports its own latency. It judges what `guest/scenarios/triggers.sh`
//! saved; reading the artifacts is `mod.rs`'s job.

use anyhow::{anyhow, ensure, Result};
use serde_json::Value;

use super::{s, u, Artifacts, Check};

pub const CHECKS: &[Check] = &[
    ("every trigger named, with exact bytes", every_trigger),
    (
        "each call that copied up reports its own latency",
        op_latency,
    ),
    (
        "chown, lchown, fchown and chmod to what the file has: no-op, exactly those",
        noop,
    ),
];

/// Each copy-up is marked no-op exactly when its call asked for the owner or mode the
/// file already had (the lower files are root's, mode 644); the summary counts them and
/// their bytes.
fn noop(a: &Artifacts) -> Result<()> {
    let r = a.run("noop")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    let mut got: Vec<(String, String, u64, bool)> = r
        .events
        .iter()
        .map(|e| {
            (
                s(&e["path"]).to_string(),
                s(&e["trigger"]).to_string(),
                u(&e["bytes"]),
                e["noop"] == true,
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String, u64, bool)> = [
        ("/fother", "fchown", 6000, false),
        ("/fsame", "fchown", 5000, true),
        ("/lsame", "lchown", 0, true),
        ("/mode", "chmod", 3000, true),
        ("/other", "chown", 2000, false),
        ("/othermode", "chmod", 4000, false),
        ("/same", "chown", 1000, true),
    ]
    .iter()
    .map(|(p, t, b, n)| (p.to_string(), t.to_string(), *b, *n))
    .collect();
    want.sort();
    ensure!(got == want, "copy-ups\n  got  {got:?}\n  want {want:?}");
    ensure!(
        r.summary["noop_copy_ups"] == 4 && r.summary["noop_bytes"] == 1000 + 3000 + 5000,
        "summary: {}",
        r.summary
    );
    Ok(())
}

pub(super) fn every_trigger(a: &Artifacts) -> Result<()> {
    let r = a.run("trig")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    let want = [
        ("/chmod", "chmod", "file", 3000),
        ("/chown", "chown", "file", 3000),
        ("/dcreate", "create", "dir", 0),
        ("/dlink", "link", "dir", 0),
        ("/dlink/a", "link", "file", 4000),
        ("/dmkdir", "mkdir", "dir", 0),
        ("/dmknod", "mknod", "dir", 0),
        ("/drename", "rename", "dir", 0),
        ("/drename/a", "rename", "file", 2000),
        ("/drmdir", "rmdir", "dir", 0),
        ("/dsymlink", "symlink", "dir", 0),
        ("/dunlink", "unlink", "dir", 0),
        ("/fchown", "fchown", "file", 3000),
        ("/lnk", "lchown", "symlink", 0),
        ("/otrunc", "open-trunc", "file", 0),
        ("/owrite", "open-write", "file", 3000),
        ("/rmx", "removexattr", "file", 3000),
        ("/setx", "setxattr", "file", 3000),
        ("/truncate", "truncate", "file", 3000),
        ("/utimes", "utimes", "file", 3000),
    ];
    let mut got: Vec<(String, String, String, u64)> = r
        .events
        .iter()
        .map(|e| {
            (
                s(&e["path"]).to_string(),
                s(&e["trigger"]).to_string(),
                s(&e["kind"]).to_string(),
                u(&e["bytes"]),
            )
        })
        .collect();
    got.sort();
    let want: Vec<_> = want
        .iter()
        .map(|(p, t, k, b)| (p.to_string(), t.to_string(), k.to_string(), *b))
        .collect();
    let missing: Vec<_> = want.iter().filter(|w| !got.contains(w)).collect();
    let extra: Vec<_> = got.iter().filter(|g| !want.contains(g)).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}\n    unexpected {extra:?}"
    );
    Ok(())
}

pub(super) fn op_latency(a: &Artifacts) -> Result<()> {
    let r = a.run("trig")?;
    let out = a.get("trig.out")?;
    let ops: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "op")
        .collect();
    for e in &r.events {
        let cause = u(&e["cause_ts_ns"]);
        let op = ops
            .iter()
            .find(|o| o["tid"] == e["tid"] && u(&o["ts_ns"]) == cause)
            .ok_or_else(|| anyhow!("no op record for {e}"))?;
        ensure!(
            op["trigger"] == e["trigger"] || e["trigger"] == "lchown",
            "{op} vs {e}"
        );
        ensure!(
            u(&op["duration_ns"]) >= u(&e["copy_ns"]),
            "call shorter than its copy-up: {op} {e}"
        );
    }
    Ok(())
}
