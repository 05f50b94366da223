//! Checks of container attribution from the real runtimes: names, images and ids from
//! podman and docker, pod, namespace and container name from containerd's CRI labels,
//! `--container`, `--by image`, a runtime that cannot be asked, and containers removed
//! while traced leaving no mount behind. It judges what
//! `guest/userland/runtimes.sh` saved.

use anyhow::{anyhow, ensure, Context, Result};
use serde_json::{json, Value};

use super::super::{s, sorted, u, Artifacts, Check, Run};

pub const CHECKS: &[Check] = &[
    ("podman: name, image and id of two containers", podman),
    ("podman: --container NAME keeps one container", podman_one),
    ("podman: --by image", podman_images),
    ("podman: store unreadable: ids, one warning", podman_broken),
    (
        "advice names each runtime's own metacopy setting (podman, docker, containerd)",
        runtime_advice,
    ),
    (
        "CRI-O: name, pod, namespace and image from its config in containers/storage",
        crio,
    ),
    ("docker: name, image and id of two containers", docker),
    ("docker: --container NAME keeps one container", docker_one),
    ("docker: --by container, --by image tables", docker_table),
    ("containerd: pod, namespace, container from CRI labels", cri),
    ("containerd down: ids, one warning", containerd_down),
    ("podman rm while tracing leaves no mount behind", podman_rm),
    ("docker rm while tracing leaves no mount behind", docker_rm),
    (
        "containerd: a container and its snapshot removed while tracing leave no mount behind",
        cri_rm,
    ),
];

/// The images' content (`mkimage`): the file each container chowns and its size.
const FILES: [(&str, u64); 2] = [("/data/a", 3000), ("/data/b", 5000)];

/// (name, id, image id) per line of `NAME.ids` (`inspect -f '{{.Name}} {{.Id}} {{.Image}}'`).
fn ids(a: &Artifacts, name: &str) -> Result<Vec<(String, String, String)>> {
    a.get(&format!("{name}.ids"))?
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w[..] {
                [n, id, img] => Ok((
                    n.trim_start_matches('/').to_string(),
                    id.to_string(),
                    img.trim_start_matches("sha256:").to_string(),
                )),
                _ => Err(anyhow!("{name}.ids: bad line {l:?}")),
            }
        })
        .collect()
}

/// (path, kind, bytes, container object as JSON text) of every event, sorted.
fn events(r: &Run) -> Vec<(String, String, u64, String)> {
    let v: Vec<_> = r
        .events
        .iter()
        .map(|e| {
            (
                s(&e["path"]).to_string(),
                s(&e["kind"]).to_string(),
                u(&e["bytes"]),
                e["container"].to_string(),
            )
        })
        .collect();
    sorted(&v)
}

/// Each container copied up /data and its own file, once.
fn want(containers: &[(Value, usize)]) -> Vec<(String, String, u64, String)> {
    let mut v = Vec::new();
    for (c, file) in containers {
        let (path, bytes) = FILES[*file];
        v.push(("/data".to_string(), "dir".to_string(), 0, c.to_string()));
        v.push((path.to_string(), "file".to_string(), bytes, c.to_string()));
    }
    sorted(&v)
}

fn expect(r: &Run, containers: &[(Value, usize)]) -> Result<()> {
    let got = events(r);
    let want = want(containers);
    ensure!(got == want, "copy-ups\n  got  {got:?}\n  want {want:?}");
    Ok(())
}

fn named(runtime: &str, (name, id, image_id): &(String, String, String), image: &str) -> Value {
    json!({"runtime": runtime, "id": id, "name": name, "image": image, "image_id": image_id})
}

fn two_named(a: &Artifacts, run: &str, runtime: &str, image: &str) -> Result<()> {
    let r = a.run(run)?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    let ids = ids(a, run)?;
    ensure!(ids.len() == 2, "{run}.ids: {ids:?}");
    expect(
        &r,
        &[
            (named(runtime, &ids[0], image), 0),
            (named(runtime, &ids[1], image), 1),
        ],
    )
}

fn podman(a: &Artifacts) -> Result<()> {
    two_named(a, "podman", "podman", "localhost/app:1")
}

fn docker(a: &Artifacts) -> Result<()> {
    two_named(a, "docker", "docker", "app:1")
}

fn one(
    a: &Artifacts,
    run: &str,
    ids_of: &str,
    runtime: &str,
    image: &str,
    which: usize,
) -> Result<()> {
    let r = a.run(run)?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    let ids = ids(a, ids_of)?;
    ensure!(ids.len() == 2, "{ids_of}.ids: {ids:?}");
    expect(&r, &[(named(runtime, &ids[which], image), which)])
}

fn podman_one(a: &Artifacts) -> Result<()> {
    one(a, "podman-one", "podman", "podman", "localhost/app:1", 0)
}

fn docker_one(a: &Artifacts) -> Result<()> {
    one(a, "docker-one", "docker", "docker", "app:1", 1)
}

/// Each report's advice for the containers' overlays names the store that mounted them
/// and that runtime's own way to metacopy=on: containers-storage's storage.conf,
/// containerd's snapshotter option, and for docker's overlay2, which takes none, the
/// module default.
fn runtime_advice(a: &Artifacts) -> Result<()> {
    for (run, store, needle) in [
        (
            "podman",
            "containers-storage",
            "/etc/containers/storage.conf",
        ),
        (
            "docker",
            "docker",
            "docker's overlay2 driver takes no mount options",
        ),
        (
            "cri",
            "containerd",
            "io.containerd.snapshotter.v1.overlayfs",
        ),
    ] {
        let report: Value = serde_json::from_str(a.get(&format!("{run}.report"))?)?;
        let advice = report["advice"]
            .as_array()
            .ok_or_else(|| anyhow!("{run}: no advice in {report}"))?;
        ensure!(!advice.is_empty(), "{run}: no mount advised");
        for m in advice {
            ensure!(
                m["store"] == store && s(&m["metacopy_how"]).contains(needle),
                "{run}: advice {m}"
            );
        }
    }
    Ok(())
}

/// The report's image rows: one image, two containers, four copy-ups, 8000 bytes.
fn images(a: &Artifacts, run: &str, image: &str) -> Result<()> {
    let report: Value = serde_json::from_str(a.get(&format!("{run}.report"))?)?;
    let ids = ids(a, run)?;
    let rows: Vec<(String, String, u64, u64, u64)> = report["images"]
        .as_array()
        .ok_or_else(|| anyhow!("no images in {report}"))?
        .iter()
        .map(|r| {
            let st = &r["row"]["stats"];
            (
                s(&r["image"]).to_string(),
                s(&r["image_id"]).to_string(),
                u(&r["containers"]),
                u(&st["copy_ups"]),
                u(&st["bytes"]),
            )
        })
        .collect();
    let want = vec![(image.to_string(), ids[0].2.clone(), 2, 4, 8000)];
    ensure!(rows == want, "images\n  got  {rows:?}\n  want {want:?}");
    Ok(())
}

fn podman_images(a: &Artifacts) -> Result<()> {
    images(a, "podman", "localhost/app:1")
}

/// The table run's container and image tables, row by row (name, runtime, image, pod,
/// copy-ups, bytes; image, id, containers, copy-ups, bytes).
fn docker_table(a: &Artifacts) -> Result<()> {
    images(a, "docker", "app:1")?;
    let out = a.get("docker-table.out")?;
    ensure!(a.rc("docker-table")? == 0, "exit {}", a.rc("docker-table")?);
    let ids = ids(a, "docker")?;
    // "│ a ┆  ┆ c │": the cells between the outer borders, empty ones kept.
    let cells = |l: &str| -> Vec<String> {
        let v: Vec<String> = l.split(['│', '┆']).map(|c| c.trim().to_string()).collect();
        v[1..v.len().saturating_sub(1).max(1)].to_vec()
    };
    let section = |title: &str| -> Vec<Vec<String>> {
        out.split("\nCopy-ups by ")
            .find(|p| p.starts_with(title))
            .map(|p| {
                p.lines()
                    .filter(|l| l.starts_with('│'))
                    .skip(1) // the header
                    .map(cells)
                    .collect()
            })
            .unwrap_or_default()
    };
    let containers: Vec<Vec<String>> = section("container")
        .into_iter()
        .map(|r| r[..r.len().min(6)].to_vec())
        .collect();
    let row = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // Ordered by copy-up time, which varies: compare as a set.
    let want = vec![
        row(&["dweb1", "docker", "app:1", "", "2", "2.9 KiB"]),
        row(&["dweb2", "docker", "app:1", "", "2", "4.9 KiB"]),
    ];
    ensure!(
        sorted(&containers) == want,
        "container table {containers:?}\n{out}"
    );
    let images: Vec<Vec<String>> = section("image")
        .into_iter()
        .map(|r| r[..r.len().min(5)].to_vec())
        .collect();
    let want = vec![row(&["app:1", &ids[0].2[..12], "2", "4", "7.8 KiB"])];
    ensure!(images == want, "image table {images:?}\n{out}");
    Ok(())
}

/// stderr of a run whose runtime could not be asked: the start line and one warning.
fn one_warning(a: &Artifacts, run: &str, needle: &str) -> Result<()> {
    let err = a.get(&format!("{run}.err"))?;
    let warnings: Vec<&str> = err.lines().filter(|l| !l.starts_with("Tracing")).collect();
    ensure!(
        warnings.len() == 1 && warnings[0].contains(needle),
        "want one warning with {needle:?}, got {err:?}"
    );
    ensure!(!err.contains("panicked"), "{err:?}");
    Ok(())
}

fn podman_broken(a: &Artifacts) -> Result<()> {
    let r = a.run("podman-broken")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    let id = a.get("podman-broken.id")?.trim().to_string();
    // The store could not be read: the name is unknown, not absent.
    expect(
        &r,
        &[(
            json!({"runtime": "podman", "id": id, "unresolved": true}),
            0,
        )],
    )?;
    one_warning(
        a,
        "podman-broken",
        "podman containers are reported by id only: parsing /var/lib/containers/storage/overlay-containers/containers.json",
    )
}

const CID: &str = "4f1c0a9e2b7d43c58e6a1f0b9c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d";
const CID2: &str = "5a2d1b0f3c8e54d69f7b2a1c0d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";
const CID3: &str = "6b3e2c1a4d9f65e7a08c3b2d1e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f";

/// The container a CRI-O config names: kubelet's labels and CRI-O's image annotations,
/// the id and image id as podman created them.
fn crio(a: &Artifacts) -> Result<()> {
    let r = a.run("crio")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    let ids = a.get("crio.ids")?;
    let (id, image_id) = ids
        .split_once(' ')
        .ok_or_else(|| anyhow!("crio.ids: {ids:?}"))?;
    let want = json!({
        "runtime": "cri-o", "id": id.trim(), "name": "api", "image": "localhost/app:1",
        "image_id": image_id.trim().trim_start_matches("sha256:"), "pod": "shop-0",
        "namespace": "prod",
    });
    expect(&r, &[(want, 0)])
}

fn cri(a: &Artifacts) -> Result<()> {
    let r = a.run("cri")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    let pod = json!({
        "runtime": "containerd", "id": CID, "name": "nginx", "image": "localhost/app:1",
        "pod": "web-0", "namespace": "shop",
    });
    expect(&r, &[(pod, 0)])?;
    // Series are keyed by namespace and pod by default, with the values containerd has.
    let samples = super::super::fleet::samples(a.get("cri.metrics")?)?;
    let copy_ups = r
        .events
        .iter()
        .filter(|e| e["container"]["id"] == CID)
        .count() as f64;
    let keyed = super::super::fleet::sum(
        &samples,
        "copyup_trace_copy_ups_total",
        &[
            ("namespace", "shop"),
            ("pod", "web-0"),
            ("container", "nginx"),
        ],
    );
    ensure!(
        copy_ups > 0.0 && keyed == copy_ups,
        "copyup_trace_copy_ups_total of shop/web-0/nginx: {keyed}, {copy_ups} copy-ups"
    );
    let err = a.get("cri.err")?;
    ensure!(
        err.lines()
            .all(|l| l.starts_with("Tracing") || l.starts_with("Serving metrics")),
        "stderr {err:?}"
    );
    Ok(())
}

fn containerd_down(a: &Artifacts) -> Result<()> {
    let r = a.run("down")?;
    ensure!(r.rc == 0, "exit {}", r.rc);
    expect(
        &r,
        &[
            (
                json!({"runtime": "kubernetes", "id": CID2, "unresolved": true}),
                0,
            ),
            (
                json!({"runtime": "kubernetes", "id": CID3, "unresolved": true}),
                1,
            ),
        ],
    )?;
    one_warning(
        a,
        "down",
        "containerd containers are reported by id only: connecting to /run/containerd/containerd.sock",
    )
}

/// Containers removed while traced (`NAME.rm_rc`) went with their overlays: as many
/// overlay mounts as before they ran, plus `running` still up.
fn removed_while_traced(a: &Artifacts, name: &str, running: u64) -> Result<()> {
    let rc = a.get(&format!("{name}.rm_rc"))?.trim();
    ensure!(
        rc == "0",
        "{name}: rm exit {rc}: {}",
        a.get(&format!("{name}.rm"))?
    );
    let count = |when: &str| -> Result<u64> {
        let t = a.get(&format!("{name}.overlays_{when}"))?;
        t.trim()
            .parse()
            .with_context(|| format!("{name}.overlays_{when} = {t:?}"))
    };
    let (before, after) = (count("before")?, count("after")?);
    ensure!(
        after == before + running,
        "{name}: {after} overlay mounts after rm, {before} before the containers ran \
         and {running} still running"
    );
    Ok(())
}

fn podman_rm(a: &Artifacts) -> Result<()> {
    removed_while_traced(a, "podman", 0)
}

fn docker_rm(a: &Artifacts) -> Result<()> {
    removed_while_traced(a, "docker", 0)
}

/// Two of the pod's three containers still run; the removed one's snapshot is gone.
fn cri_rm(a: &Artifacts) -> Result<()> {
    removed_while_traced(a, "cri", 2)?;
    let left = a.get("cri.snapshot_left")?.trim();
    ensure!(
        left == "0",
        "{left} snapshots of the removed container left"
    );
    Ok(())
}
