//! Checks of layer attribution in a real 3-layer image built by podman and by docker:
//! each copy-up's layer index, id as the runtime's store names it and the image step that
//! created it, and `--by layer`'s bytes, layer sizes, shares and steps. The expected ids
//! and steps come from the runtime in the guest (`inspect`'s GraphDriver, its layer store,
//! its `history`), never from here. It judges what `guest/userland/imglayers.sh` saved.

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::{json, Value};

use super::super::{s, sorted, u, Artifacts, Check};

pub const CHECKS: &[Check] = &[
    (
        "podman 3-layer image: layer index, containers-storage id and image step of each copy-up, bytes and shares per layer",
        podman,
    ),
    (
        "docker 3-layer image: layer index, overlay2 id and image step of each copy-up, bytes and shares per layer",
        docker,
    ),
    (
        "containerd, the same image imported: snapshot and image step (from containerd's API) of each copy-up, bytes and shares per layer",
        containerd,
    ),
];

/// Image layers, bottom up.
const BASE: usize = 0;
const MID: usize = 1;
const TOP: usize = 2;

/// What the container copies up (path, kind, bytes, image layer it comes from): /both is
/// in the middle (1000 bytes) and the top layer (1500), and the top one wins. /both is
/// fchowned to the owner it has (a no-op chown); the others to 1000:1000.
const COPY_UPS: [(&str, &str, u64, usize); 7] = [
    ("/data", "dir", 0, BASE),
    ("/data/a", "file", 3000, BASE),
    ("/mid", "dir", 0, MID),
    ("/mid/m", "file", 2000, MID),
    ("/top", "dir", 0, TOP),
    ("/top/t", "file", 4000, TOP),
    ("/both", "file", 1500, TOP),
];

fn json_of(a: &Artifacts, name: &str) -> Result<Value> {
    let text = a.get(name)?;
    serde_json::from_str(text.trim()).with_context(|| format!("{name} is not JSON: {text:?}"))
}

/// The layer id in `<root>/<id>/diff`.
fn id_of(dir: &str) -> Result<String> {
    dir.strip_suffix("/diff")
        .and_then(|d| d.rsplit('/').next())
        .map(str::to_string)
        .ok_or_else(|| anyhow!("not a layer's diff directory: {dir:?}"))
}

/// A GraphDriver's lower directories, topmost first.
fn lowers(driver: &Value) -> Vec<String> {
    s(&driver["Data"]["LowerDir"])
        .split(':')
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect()
}

/// The image's layer directories, bottom up, from the image's GraphDriver (UpperDir is
/// its top layer), checked against the container's lower stack (the same, topmost first,
/// under `extra` layers of the runtime's own: docker's `-init`). Returns them and the
/// container's stack.
fn image_layers(a: &Artifacts, tool: &str, extra: usize) -> Result<(Vec<String>, Vec<String>)> {
    let image = json_of(a, &format!("img-{tool}.image-driver"))?;
    let mut dirs: Vec<String> = vec![s(&image["Data"]["UpperDir"]).to_string()];
    dirs.extend(lowers(&image));
    dirs.reverse();
    ensure!(dirs.len() == 3, "{tool} image has not 3 layers: {image}");
    let stack = lowers(&json_of(a, &format!("img-{tool}.driver"))?);
    let mut below: Vec<String> = stack.iter().skip(extra).cloned().collect();
    below.reverse();
    ensure!(
        stack.len() == 3 + extra && below == dirs,
        "container's lower stack {stack:?}, image's layers {dirs:?}"
    );
    Ok((dirs, stack))
}

/// The image step of each layer, bottom up, from the runtime's own history: the entries
/// that made a layer (podman: not `empty_layer`; docker's `history`, newest first: a size
/// other than 0B, which each of this image's layers has), their `created_by` (null where
/// empty, as for an imported base).
fn steps(a: &Artifacts, tool: &str) -> Result<Vec<Option<String>>> {
    let made = history_steps(a.get(&format!("img-{tool}.history"))?, tool)?;
    ensure!(
        made.len() == 3,
        "{tool} history has {} layers: {made:?}",
        made.len()
    );
    Ok(made)
}

/// The steps that made a layer, bottom up, from `tool`'s history output (see `steps`).
pub(super) fn history_steps(text: &str, tool: &str) -> Result<Vec<Option<String>>> {
    let made: Vec<String> = if tool == "podman" {
        let v: Value = serde_json::from_str(text.trim()).context("podman history")?;
        v.as_array()
            .ok_or_else(|| anyhow!("podman history: {v}"))?
            .iter()
            .filter(|h| h["empty_layer"] != true)
            .map(|h| s(&h["created_by"]).to_string())
            .collect()
    } else {
        let mut rows = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str::<Value>(l).context("docker history"))
            .collect::<Result<Vec<Value>>>()?;
        rows.reverse();
        rows.iter()
            .filter(|h| s(&h["Size"]) != "0B")
            .map(|h| s(&h["CreatedBy"]).to_string())
            .collect()
    };
    Ok(made
        .into_iter()
        .map(|c| (!c.is_empty()).then_some(c))
        .collect())
}

/// The image's layers in one container, as the runtime shows them.
struct Stack {
    /// The image's layer directories, bottom up.
    dirs: Vec<String>,
    /// The container's lower stack, topmost first.
    stack: Vec<String>,
    /// Each image layer's id as the store names it, bottom up.
    ids: Vec<String>,
    /// The image step that made each layer, bottom up.
    steps: Vec<Option<String>>,
}

/// podman's and docker's stacks: directories from `inspect`'s GraphDriver, each tied to
/// the id its store gives it (`ids`, bottom up, tied to `RootFS.Layers` by the caller).
fn graph_stack(a: &Artifacts, tool: &str, extra: usize, ids: Vec<String>) -> Result<Stack> {
    let (dirs, stack) = image_layers(a, tool, extra)?;
    for (l, dir) in dirs.iter().enumerate() {
        ensure!(
            id_of(dir)? == ids[l],
            "layer {l}: {dir} is not id {}",
            ids[l]
        );
    }
    Ok(Stack {
        dirs,
        stack,
        ids,
        steps: steps(a, tool)?,
    })
}

/// The checks the runtimes share, of the run `img-{tool}-layers`; returns the `--by
/// layer` rows its report has.
fn check(a: &Artifacts, tool: &str, store: &str, st: &Stack) -> Result<Vec<Value>> {
    let run = format!("img-{tool}-layers");
    let r = a.run(&run)?;
    ensure!(
        r.rc == 0,
        "exit {}: {}",
        r.rc,
        a.get(&format!("{run}.err"))?
    );
    let Stack {
        dirs,
        stack,
        ids,
        steps,
    } = st;
    ensure!(
        steps[MID].is_some() && steps[TOP].is_some(),
        "{tool}: the COPY steps have no created_by: {steps:?}"
    );
    let layer = |l: usize| {
        let index = stack.len() - 1 - l;
        let mut v = json!({"index": index, "dir": stack[index], "store": store, "id": ids[l]});
        if let Some(step) = &steps[l] {
            v["created_by"] = json!(step);
        }
        v
    };
    let got: Vec<(String, String, u64, String, bool)> = sorted(
        &r.events
            .iter()
            .map(|e| {
                (
                    s(&e["path"]).to_string(),
                    s(&e["kind"]).to_string(),
                    u(&e["bytes"]),
                    e["layer"].to_string(),
                    e["noop"] == true,
                )
            })
            .collect::<Vec<_>>(),
    );
    let want: Vec<(String, String, u64, String, bool)> = sorted(
        &COPY_UPS
            .iter()
            .map(|&(p, k, b, l)| {
                let noop = p == "/both";
                (p.to_string(), k.to_string(), b, layer(l).to_string(), noop)
            })
            .collect::<Vec<_>>(),
    );
    ensure!(got == want, "copy-ups\n  got  {got:?}\n  want {want:?}");

    // Layer sizes: the base holds /data/a, /data/b and /guest-ops; the middle /mid/m
    // and /both; the top /top/t and /both.
    let ops: u64 = a.get("img-guest-ops.size")?.trim().parse()?;
    let size = [3000 + 5000 + ops, 2000 + 1000, 4000 + 1500];
    let row = |l: usize| {
        let (copy_ups, bytes) = COPY_UPS
            .iter()
            .filter(|c| c.3 == l)
            .fold((0u64, 0u64), |(n, b), c| (n + 1, b + c.2));
        json!([
            format!("{store} {}", ids[l]),
            dirs[l],
            copy_ups,
            bytes,
            size[l],
            bytes as f64 / size[l] as f64,
            steps[l]
        ])
    };
    let report = json_of(a, &format!("{run}.report"))?;
    let rows: Vec<Value> = report["layers"]
        .as_array()
        .ok_or_else(|| anyhow!("no layers in the report"))?
        .iter()
        .map(|l| {
            json!([
                l["name"],
                l["dir"],
                l["copy_ups"],
                l["bytes"],
                l["layer_bytes"],
                l["share"],
                l["created_by"]
            ])
        })
        .collect();
    // Most bytes first: top 5500, base 3000, middle 2000.
    let want = vec![row(TOP), row(BASE), row(MID)];
    ensure!(rows == want, "layers\n  got  {rows:?}\n  want {want:?}");
    Ok(want)
}

/// The `--by layer` table of the run beside: the report's rows, sizes in IEC units
/// (the base's size is that of this build's guest-ops: its cell is only checked to be
/// known) and the share in percent to one decimal.
fn table(a: &Artifacts, tool: &str, report_rows: &[Value]) -> Result<()> {
    let run = format!("img-{tool}-table");
    ensure!(a.rc(&run)? == 0, "exit {}", a.rc(&run)?);
    let out = a.get(&format!("{run}.out"))?;
    let section = out
        .split("\nCopy-ups by lower layer")
        .nth(1)
        .ok_or_else(|| anyhow!("no layer table in {out}"))?;
    let rows: Vec<Vec<String>> = section
        .lines()
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.starts_with('│'))
        .skip(1) // the header
        .map(|l| {
            let v: Vec<String> = l.split(['│', '┆']).map(|c| c.trim().to_string()).collect();
            v[1..v.len().saturating_sub(1).max(1)].to_vec()
        })
        .collect();
    let sizes = ["5.4 KiB", "2.9 KiB", "2.0 KiB"];
    let layer_sizes = [Some("5.4 KiB"), None, Some("2.9 KiB")];
    let want: Vec<Vec<String>> = report_rows
        .iter()
        .zip(sizes.iter().zip(layer_sizes))
        .map(|(r, (bytes, size))| {
            vec![
                s(&r[0]).to_string(),
                s(&r[1]).to_string(),
                r[2].to_string(),
                bytes.to_string(),
                size.unwrap_or("").to_string(),
                format!("{:.1}%", r[5].as_f64().unwrap_or(f64::NAN) * 100.0),
                r[6].as_str().unwrap_or("").trim().to_string(),
            ]
        })
        .collect();
    let masked: Vec<Vec<String>> = rows
        .iter()
        .zip(&layer_sizes)
        .map(|(r, size)| {
            let mut r = r.clone();
            if size.is_none() && r.len() > 4 && r[4].ends_with("KiB") {
                r[4].clear();
            }
            r
        })
        .collect();
    ensure!(
        masked == want,
        "layer table {rows:?}\n  want {want:?}\n{out}"
    );
    Ok(())
}

/// `RootFS.Layers` (diff ids, bottom up).
fn rootfs(a: &Artifacts, tool: &str) -> Result<Vec<String>> {
    let v = json_of(a, &format!("img-{tool}.rootfs"))?;
    let ids: Vec<String> = v
        .as_array()
        .ok_or_else(|| anyhow!("{tool}.rootfs: {v}"))?
        .iter()
        .map(|d| s(d).to_string())
        .collect();
    ensure!(ids.len() == 3, "{tool} image has {} layers: {v}", ids.len());
    Ok(ids)
}

/// containers/storage's ids: the layer whose `diff-digest` (layers.json) is the diff id
/// at that place in `RootFS.Layers`.
fn podman(a: &Artifacts) -> Result<()> {
    let store = json_of(a, "img-podman.layers")?;
    let ids = rootfs(a, "podman")?
        .iter()
        .map(|diff| {
            let found: Vec<&Value> = store
                .as_array()
                .into_iter()
                .flatten()
                .filter(|l| s(&l["diff-digest"]) == diff)
                .collect();
            match found[..] {
                [l] => Ok(s(&l["id"]).to_string()),
                _ => Err(anyhow!("{} layers with diff {diff}", found.len())),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let want = check(
        a,
        "podman",
        "containers-storage",
        &graph_stack(a, "podman", 0, ids)?,
    )?;
    table(a, "podman", &want)
}

/// docker's overlay2 ids: the `cache-id` of the layer whose `diff` is the diff id at that
/// place in `RootFS.Layers` (its layer db, `diff cache-id` a line); the container's
/// `-init` layer sits above the image's.
fn docker(a: &Artifacts) -> Result<()> {
    let db = a.get("img-docker.layers")?;
    let ids = rootfs(a, "docker")?
        .iter()
        .map(|diff| {
            let found: Vec<&str> = db
                .lines()
                .filter_map(|l| l.split_once(' '))
                .filter(|(d, _)| d == diff)
                .map(|(_, c)| c.trim())
                .collect();
            match found[..] {
                [c] => Ok(c.to_string()),
                _ => Err(anyhow!("{} layers with diff {diff}", found.len())),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let want = check(a, "docker", "docker", &graph_stack(a, "docker", 1, ids)?)?;
    table(a, "docker", &want)
}

/// The `lowerdir=` stack (topmost first) of an overlay's mountinfo line.
pub(super) fn lowerdirs(line: &str) -> Result<Vec<String>> {
    let lowerdir = line
        .split_whitespace()
        .last()
        .into_iter()
        .flat_map(|o| o.split(','))
        .find_map(|o| o.strip_prefix("lowerdir="))
        .ok_or_else(|| anyhow!("no lowerdir in the container's mount: {line:?}"))?;
    Ok(lowerdir.split(':').map(str::to_string).collect())
}

/// containerd's snapshots: the container's rootfs mount as the guest's mountinfo lists it
/// (`lowerdir=` of `.../snapshots/<n>/fs`, topmost first); the image is podman's, imported,
/// so its steps are those of podman's history.
fn containerd(a: &Artifacts) -> Result<()> {
    let stack = lowerdirs(a.get("img-containerd.mount")?)?;
    ensure!(stack.len() == 3, "containerd stack {stack:?}");
    let dirs: Vec<String> = stack.iter().rev().cloned().collect();
    let ids = dirs
        .iter()
        .map(|d| {
            d.strip_suffix("/fs")
                .and_then(|d| d.rsplit_once("/snapshots/"))
                .map(|(_, n)| n.to_string())
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| anyhow!("not a containerd snapshot: {d:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let st = Stack {
        dirs,
        stack,
        ids,
        steps: steps(a, "podman")?,
    };
    check(a, "containerd", "containerd", &st).map(|_| ())
}
