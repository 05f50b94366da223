//! Checks of which lower layer a copy-up came from (`--by layer`, `layer`, `host_path`)
//! and of the metacopy advice against what a metacopy=on overlay really saved. It judges
//! what `guest/scenarios/layers.sh` saved; reading the artifacts is `mod.rs`'s job.

use anyhow::{ensure, Context, Result};
use copyup_trace_common::kver;
use serde_json::{json, Value};

use super::{expect_objects, Artifacts, Check};

pub const CHECKS: &[Check] = &[
    (
        "--by layer: each copy-up from the topmost lower layer holding it; sizes and shares exact",
        by_layer,
    ),
    (
        "metacopy advice on a metacopy=off overlay equals the bytes a metacopy=on overlay did not copy",
        metacopy_advice,
    ),
    ("chown -R over a tree: the advice points at idmapped mounts", chown_r),
    (
        "teardown while tracing: every layer mount unmounts, each copy-up names its layer",
        teardown,
    ),
    (
        "a renamed directory's content names the layer it was copied from (redirect_dir)",
        redirect,
    ),
    (
        "a metacopy file's data copy-up names the layer of its data, a data-only one from 6.5",
        metacopy_data,
    ),
];

const ID0: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn report(a: &Artifacts, name: &str) -> Result<Value> {
    let text = a.get(&format!("{name}.report"))?;
    serde_json::from_str(text).with_context(|| format!("{name}.report is not JSON: {text:?}"))
}

fn by_layer(a: &Artifacts) -> Result<()> {
    let r = a.run("layers")?;
    ensure!(r.rc == 0, "exit {}: {}", r.rc, a.get("layers.err")?);
    expect_objects(
        &r,
        &[
            ("/t0", "file", 1000),
            ("/shadow", "file", 500),
            ("/m1", "file", 2000),
            ("/b2", "file", 4000),
            ("/dir", "dir", 0),
            ("/dir/deep", "file", 3000),
        ],
    )?;
    let d = "/tmp/ovl-layers";
    let l0 = json!({"index": 0, "dir": format!("{d}/docker/overlay2/{ID0}/diff"),
                    "store": "docker", "id": ID0});
    let l1 = json!({"index": 1, "dir": format!("{d}/plain dir")});
    let l2 = json!({"index": 2,
                    "dir": format!("{d}/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs"),
                    "store": "containerd", "id": "12"});
    let want = [&l0, &l0, &l1, &l2, &l1, &l2];
    for (e, want) in r.events.iter().zip(want) {
        ensure!(
            &e["layer"] == want,
            "{}: layer {} want {want}\nmountinfo: {}",
            e["path"],
            e["layer"],
            a.get("layers.mountinfo")?
        );
        let host = format!("{d}/merged{}", e["path"].as_str().unwrap_or("?"));
        ensure!(e["host_path"] == host.as_str(), "host_path {e}");
    }
    let rep = report(a, "layers")?;
    let rows: Vec<Value> = rep["layers"]
        .as_array()
        .context("report has no layers")?
        .iter()
        .map(|l| {
            json!([
                l["name"],
                l["copy_ups"],
                l["bytes"],
                l["layer_bytes"],
                l["share"]
            ])
        })
        .collect();
    let want = vec![
        json!(["containerd 12", 2, 7000, 8000, 0.875]),
        json!([format!("{d}/plain dir"), 2, 2000, 8000, 0.25]),
        json!([format!("docker {ID0}"), 2, 1500, 3000, 0.5]),
    ];
    ensure!(rows == want, "layers\n  got  {rows:?}\n  want {want:?}");
    Ok(())
}

fn metacopy_advice(a: &Artifacts) -> Result<()> {
    let rc = a.rc("advice")?;
    let out = a.get("advice.out")?;
    ensure!(rc == 0, "exit {rc}: {}", a.get("advice.err")?);
    let rep = report(a, "advice")?;
    let adv = rep["advice"].as_array().context("report has no advice")?;
    ensure!(adv.len() == 2, "advice for {} mounts: {adv:?}", adv.len());
    let (off, on) = (&adv[0], &adv[1]);
    let ctx = || {
        format!(
            "mountinfo {}\nmodule {}",
            a.get("advice.mountinfo").unwrap_or(""),
            a.get("advice.params").unwrap_or("")
        )
    };
    ensure!(off["mount"] == "/tmp/ovl-advoff/merged", "{off}");
    ensure!(on["mount"] == "/tmp/ovl-advon/merged", "{on}");
    ensure!(
        off["options"]["metacopy"] == false && on["options"]["metacopy"] == true,
        "options {} / {}\n{}",
        off["options"],
        on["options"],
        ctx()
    );
    ensure!(on["options"]["redirect_dir"] == "on", "{}", on["options"]);
    // c, m, u, x, r by chown, chmod, utimes, setxattr, removexattr; w written; t
    // truncated; d a directory.
    let got = |v: &Value| {
        json!([
            v["copy_ups"],
            v["bytes"],
            v["metacopies"],
            v["metadata_only_bytes"],
            v["metacopy_would_avoid"],
            v["metadata_only_bytes_by_trigger"]
        ])
    };
    let want_off = json!([8, 75000, 0, 39000, 39000,
        {"chown": 3000, "chmod": 5000, "utimes": 7000, "setxattr": 11000, "removexattr": 13000}]);
    let want_on = json!([8, 36000, 5, 0, 0, {}]);
    ensure!(got(off) == want_off, "off mount: {off}\n{}", ctx());
    ensure!(got(on) == want_on, "on mount: {on}\n{}", ctx());
    ensure!(off["metacopy_blocked_by"].is_null(), "{off}");
    ensure!(
        on["metacopy_blocked_by"] == "metacopy is already on",
        "{on}"
    );
    // The prediction made on the off mount is exactly what the on mount did not copy.
    let saved = off["bytes"].as_u64().unwrap_or(0) - on["bytes"].as_u64().unwrap_or(0);
    ensure!(
        off["metacopy_would_avoid"] == saved,
        "predicted {} saved {saved}",
        off["metacopy_would_avoid"]
    );
    for needle in [
        "Copy-ups by lower layer",
        "Overlay /tmp/ovl-advoff/merged: metacopy=off,",
        "Overlay /tmp/ovl-advon/merged: metacopy=on, redirect_dir=on,",
        "metadata-only operations copied 38.1 KiB (39000 bytes) of file data in 5 copy-ups",
        "advice: mount with metacopy=on (and redirect_dir=on) to copy only their metadata: 39000 bytes less",
        "metacopy=on at work: 5 copy-ups copied metadata only",
    ] {
        ensure!(out.contains(needle), "table lacks {needle:?}:\n{out}");
    }
    Ok(())
}

fn chown_r(a: &Artifacts) -> Result<()> {
    let r = a.run("chownr")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    ensure!(
        r.events.len() == 21,
        "{} copy-ups, want the tree and 20 files",
        r.events.len()
    );
    let rep = report(a, "chownr")?;
    let adv = &rep["advice"][0];
    let got = json!([
        adv["mount"],
        adv["copy_ups"],
        adv["chown_copy_ups"],
        adv["chown_r_shaped"],
        adv["metadata_only_bytes"],
        adv["metadata_only_bytes_by_trigger"],
    ]);
    let want = json!(["/tmp/ovl-chownr/merged", 21, 21, true, 2000, {"lchown": 2000}]);
    ensure!(got == want, "advice\n  got  {got}\n  want {want}");
    Ok(())
}

/// The layer a record names: `[index, dir]`, or null.
fn layer_of(e: &Value, key: &str) -> Value {
    match &e[key] {
        Value::Null => Value::Null,
        l => json!([l["index"], l["dir"]]),
    }
}

/// Records of one run as `[path, kind, bytes, [layer index, dir], mount]`.
fn with_layers(r: &super::Run) -> Vec<Value> {
    r.events
        .iter()
        .map(|e| {
            json!([
                e["path"],
                e["kind"],
                e["bytes"],
                layer_of(e, "layer"),
                e["mount"]
            ])
        })
        .collect()
}

/// `sc_teardown` in `layers.sh`, in the mode whose artifacts `a` holds: the layers are
/// the kernel's answer, and the tool holds nothing that keeps a layer mounted.
pub(super) fn teardown(a: &Artifacts) -> Result<()> {
    let r = a.run("teardown")?;
    ensure!(r.rc == 0, "exit {}: {}", r.rc, a.get("teardown.err")?);
    let d = "/tmp/ovl-teardown";
    let (m1, m2) = (format!("{d}/merged"), format!("{d}/merged2"));
    let layer = |i: u32, dir: &str| json!([i, format!("{d}/{dir}")]);
    let want = vec![
        json!(["/m", "file", 2000, layer(0, "mid"), m1]),
        json!(["/l", "file", 1000, layer(1, "low"), m1]),
        json!(["/d", "dir", 0, layer(1, "low"), m1]),
        json!(["/d/deep", "file", 3000, layer(1, "low"), m1]),
        json!(["/fa", "file", 100, layer(0, "stack/a"), m2]),
        json!(["/fb", "file", 200, layer(1, "stack/b"), m2]),
        json!(["/fc", "file", 300, layer(2, "stack/c"), m2]),
    ];
    let got = with_layers(&r);
    ensure!(got == want, "copy-ups\n  got  {got:?}\n  want {want:?}");
    let umounts = a.get("teardown.umounts")?;
    let failed: Vec<&str> = umounts.lines().filter(|l| !l.ends_with(" 0")).collect();
    ensure!(
        umounts.lines().count() == 6 && failed.is_empty(),
        "umount while tracing failed: {failed:?} ({})",
        a.get("teardown.umount_err").unwrap_or("").trim()
    );
    let left = a.get("teardown.left")?.trim();
    ensure!(left == "0", "{left} mounts left under {d}");
    Ok(())
}

/// The content of a directory renamed with `redirect_dir=on` lives in the lower layer
/// under the old name: no search by the new path finds it; the kernel knows it.
fn redirect(a: &Artifacts) -> Result<()> {
    let r = a.run("redirect")?;
    ensure!(r.rc == 0, "exit {}: {}", r.rc, a.get("redirect.err")?);
    let d = "/tmp/ovl-redirect";
    let want = vec![json!([
        "/new/f",
        "file",
        4000,
        json!([1, format!("{d}/l1")]),
        format!("{d}/merged")
    ])];
    let got = with_layers(&r);
    ensure!(got == want, "copy-ups\n  got  {got:?}\n  want {want:?}");
    let upper = a.upper("redirect")?;
    ensure!(upper.contains(&"/new/f".to_string()), "upper {upper:?}");
    Ok(())
}

/// A data copy-up of a metacopy file copies metadata from the layer holding the
/// metacopy file and data from the one holding the data: the record names both, and
/// `--by layer` counts the bytes where the data was.
fn metacopy_data(a: &Artifacts) -> Result<()> {
    let r = a.run("mdata")?;
    ensure!(r.rc == 0, "exit {}: {}", r.rc, a.get("mdata.err")?);
    let d = "/tmp/ovl-mdata";
    // Data-only lower layers (`lowerdir=A::B`) came in 6.5.
    let mount_rc = a.get("mdata.mount3_rc")?.trim();
    let data_only = mount_rc == "0";
    ensure!(
        data_only == super::release_at_least(&a.kernel, kver::DATA_ONLY_LAYERS),
        "the data-only mount on {}: exit {mount_rc}, {}",
        a.kernel,
        a.get("mdata.mount3_err")?
    );
    let (meta, data) = (
        json!([0, format!("{d}/meta")]),
        json!([1, format!("{d}/data")]),
    );
    let mut want = vec![json!(["/big", 5000, &meta, &data, format!("{d}/merged2")])];
    if data_only {
        want.push(json!(["/big", 5000, &meta, &data, format!("{d}/merged3")]));
    }
    let got: Vec<Value> = r
        .events
        .iter()
        .map(|e| {
            json!([
                e["path"],
                e["bytes"],
                layer_of(e, "layer"),
                layer_of(e, "data_layer"),
                e["mount"]
            ])
        })
        .collect();
    ensure!(got == want, "copy-ups\n  got  {got:?}\n  want {want:?}");
    let rep = report(a, "mdata")?;
    let rows: Vec<Value> = rep["layers"]
        .as_array()
        .context("report has no layers")?
        .iter()
        .map(|l| json!([l["dir"], l["copy_ups"], l["bytes"]]))
        .collect();
    let n = want.len() as u64;
    let want = vec![
        json!([format!("{d}/data"), 0, 5000 * n]),
        json!([format!("{d}/meta"), n, 0]),
    ];
    ensure!(rows == want, "layers\n  got  {rows:?}\n  want {want:?}");
    Ok(())
}
