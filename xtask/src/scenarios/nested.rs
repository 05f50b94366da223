//! Checks of copy-ups nested in others (`guest/scenarios/nested.sh`): an overlay whose
//! lower layer is another overlay exported with nfs_export=on, where each outer
//! directory copy-up makes the lower overlay copy that directory up first. Each nested
//! copy-up is its own record, marked with its depth and carrying the outer one's
//! trigger, filename and cause; the outer records keep their exact paths and bytes.

use anyhow::{ensure, Result};
use serde_json::Value;

use super::{expect_objects, s, u, Artifacts, Check};

/// Mount points of the two overlays in nested.sh.
const INNER: &str = "/tmp/nest/l1/merged";
const OUTER: &str = "/tmp/nest/l2/merged";

/// The `op` records of run `name`: (trigger, copy_ups).
fn ops(a: &Artifacts, name: &str) -> Result<Vec<(String, u64)>> {
    Ok(a.get(&format!("{name}.out"))?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "op")
        .map(|v| (s(&v["trigger"]).to_string(), u(&v["copy_ups"])))
        .collect())
}

/// Run `name` copied up `want` (path, kind, bytes, nest depth) in that order, all with
/// `trigger`; nested ones on the lower overlay, each with the cause (filename, start of
/// the call) of the outer copy-up that follows it.
fn nested_run(
    a: &Artifacts,
    name: &str,
    trigger: &str,
    want: &[(&str, &str, u64, u64)],
) -> Result<()> {
    let r = a.run(name)?;
    ensure!(r.rc == 0, "{name}: exit {}", r.rc);
    let objects: Vec<(&str, &str, u64)> = want.iter().map(|w| (w.0, w.1, w.2)).collect();
    expect_objects(&r, &objects)?;
    for (i, (e, w)) in r.events.iter().zip(want).enumerate() {
        let depth = w.3;
        ensure!(
            e["nested"] == (depth > 0) && u(&e["nest_depth"]) == depth,
            "{name}: {} nested {} depth {}, want depth {depth}",
            w.0,
            e["nested"],
            e["nest_depth"]
        );
        ensure!(s(&e["trigger"]) == trigger, "{name}: {e} is not {trigger}");
        let mount = if depth > 0 { INNER } else { OUTER };
        ensure!(s(&e["mount"]) == mount, "{name}: {e} not on {mount}");
        ensure!(e["waited"] == false, "{name}: {e}");
        if depth > 0 {
            let outer = r.events.get(i + 1).filter(|o| o["nest_depth"] == 0);
            let outer =
                outer.ok_or_else(|| anyhow::anyhow!("{name}: no outer copy-up after {e}"))?;
            for field in ["filename", "cause_ts_ns", "tid"] {
                ensure!(
                    e[field] == outer[field],
                    "{name}: {field} of {e} differs from {outer}"
                );
            }
            ensure!(
                u(&e["cause_ts_ns"]) > 0,
                "{name}: nested copy-up without a cause: {e}"
            );
        }
    }
    ensure!(r.summary["missed_returns"] == 0, "{name}: {}", r.summary);
    ensure!(r.summary["state_entries"] == 0, "{name}: {}", r.summary);
    ensure!(
        u(&r.summary["copy_ups"]) == want.len() as u64,
        "{name}: summary {}",
        r.summary
    );
    Ok(())
}

/// `chown -R` over two outer directories (busybox: lchown, children first) and an
/// open for write: each outer directory copy-up nests one of the lower overlay.
pub(super) fn chown_and_open(a: &Artifacts) -> Result<()> {
    nested_run(
        a,
        "nest.chown",
        "lchown",
        &[
            ("/x/d1", "dir", 0, 1),
            ("/d1", "dir", 0, 0),
            ("/d1/f1", "file", 5000, 0),
            ("/x/d3", "dir", 0, 1),
            ("/d3", "dir", 0, 0),
            // x/d3 is now an indexed upper directory: encoding e copies nothing.
            ("/d3/e", "dir", 0, 0),
            ("/d3/e/g", "file", 3000, 0),
        ],
    )?;
    let got = ops(a, "nest.chown")?;
    let want = [("lchown".to_string(), 3), ("lchown".to_string(), 4)];
    ensure!(got == want, "nest.chown op records {got:?}, want {want:?}");
    // The file copy-up reads its lower file through the lower overlay (an `ovl_open`
    // nested in it): the open stays the trigger.
    nested_run(
        a,
        "nest.open",
        "open-write",
        &[
            ("/x/d2", "dir", 0, 1),
            ("/d2", "dir", 0, 0),
            ("/d2/f", "file", 12288, 0),
        ],
    )?;
    let got = ops(a, "nest.open")?;
    ensure!(
        got == [("open-write".to_string(), 3)],
        "nest.open op records {got:?}"
    );
    Ok(())
}

/// CSV rows carry `nested` and `nest_depth`; both layers hold what was copied up.
fn csv_and_layers(a: &Artifacts) -> Result<()> {
    let out = a.get("nest.csv.out")?;
    let mut lines = out.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(path), Some(trig), Some(nested), Some(depth), Some(bytes)) = (
        col("path"),
        col("trigger"),
        col("nested"),
        col("nest_depth"),
        col("bytes"),
    ) else {
        anyhow::bail!("CSV header lacks a column: {header:?}");
    };
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let got: Vec<(&str, &str, &str, &str, &str)> = rows
        .iter()
        .map(|r| (r[path], r[trig], r[bytes], r[nested], r[depth]))
        .collect();
    let want = [
        ("/x/d4", "chmod", "0", "true", "1"),
        ("/d4", "chmod", "0", "false", "0"),
        ("/d4/h", "chmod", "100", "false", "0"),
    ];
    ensure!(got == want, "CSV rows\n  got  {got:?}\n  want {want:?}");
    let upper = a.upper("nest")?;
    let want = [
        "/d1", "/d1/f1", "/d2", "/d2/f", "/d3", "/d3/e", "/d3/e/g", "/d4", "/d4/h",
    ];
    ensure!(upper == want, "outer upper layer {upper:?}");
    let inner: Vec<&str> = a.get("nest.inner")?.lines().collect();
    let want = ["x", "x/d1", "x/d2", "x/d3", "x/d4"];
    ensure!(inner == want, "lower overlay's upper layer {inner:?}");
    Ok(())
}

pub const CHECKS: &[Check] = &[
    (
        "nested overlay: chown -R and open for write, nested copy-ups exact",
        chown_and_open,
    ),
    (
        "nested overlay: CSV marks nested copy-ups; both upper layers exact",
        csv_and_layers,
    ),
];
