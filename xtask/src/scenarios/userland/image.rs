//! Checks of the container image: the repository's Containerfile built by podman, run as
//! deploy/kubernetes/daemonset.yaml's pod as written (`crate::pod`), tracing another
//! container's copy-ups with that container's name, paths on the host and exact sizes,
//! holding no mount the host has unmounted, and leaving nothing loaded after SIGTERM. It
//! judges what `guest/userland/image.sh` saved.

use anyhow::{anyhow, ensure, Result};
use serde_json::{json, Value};

use super::super::{s, u, Artifacts, Check};

pub const CHECKS: &[Check] = &[
    ("image: podman build of the Containerfile", build),
    ("image: the DaemonSet's pod starts as written", started),
    (
        "image: traces another container, named from podman's store",
        traces,
    ),
    (
        "image: traces a containerd pod's container, named and layered through the pod's mounts",
        k8s_container,
    ),
    (
        "image: an overlay unmounted on the host is gone from the pod",
        unmount_reaches_pod,
    ),
    ("image: SIGTERM ends it cleanly, no programs left", stopped),
];

fn build(a: &Artifacts) -> Result<()> {
    let rc = a.get("image.build_rc")?.trim();
    ensure!(
        rc == "0",
        "podman build exit {rc}\n{}",
        a.get("image.build")?
    );
    let config = a.get("image.config")?.trim();
    ensure!(
        config == "[/copyup-trace] [--metrics 0.0.0.0:29435]",
        "entrypoint and command {config:?}"
    );
    Ok(())
}

/// `run_pod` ran: kubelet's hostPath checks passed and podman accepted every option
/// (capabilities only, read-only root, the manifest's mounts).
fn started(a: &Artifacts) -> Result<()> {
    let rc = a.get("image.run_rc")?.trim();
    ensure!(rc == "0", "run_pod exit {rc}\n{}", a.get("image.run_err")?);
    Ok(())
}

/// An overlay under /var/lib mounted before the pod started: seen in the pod while it
/// ran (the pod's /var/lib is the host's), then gone from the host and from the pod once
/// the host unmounted it (the pod's mounts are slaves of the host's; a private copy
/// would keep the overlay mounted for as long as the pod runs).
fn unmount_reaches_pod(a: &Artifacts) -> Result<()> {
    let counts: Vec<&str> = a.get("image.early_in_pod")?.split_whitespace().collect();
    ensure!(
        counts == ["1", "0", "0"],
        "mounts of the early overlay (pod before the unmount, host after, pod after): {counts:?}"
    );
    Ok(())
}

/// Every copy-up as (path, kind, bytes, mount, host path, lower layer, container): the
/// traced container chowned /data/b, then /data/a, copying up /data first. Mount points and
/// layers are the host's, read through /proc/1 from the tracer's own mount namespace.
fn traces(a: &Artifacts) -> Result<()> {
    let r = a.run("image")?;
    let ids = a.get("image.ids")?;
    let (name, id, image_id) = match ids.split_whitespace().collect::<Vec<_>>()[..] {
        [n, id, img] => (n.to_string(), id.to_string(), img.to_string()),
        _ => return Err(anyhow!("image.ids: {ids:?}")),
    };
    ensure!(name == "copier", "image.ids: {ids:?}");
    let merged = a.get("image.merged")?.trim().to_string();
    ensure!(
        merged.starts_with("/var/lib/containers/storage/overlay/") && merged.ends_with("/merged"),
        "merged dir {merged:?}"
    );
    // The image's one layer, as containers/storage names it: `overlay/<id>/diff`.
    let lower = a.get("image.lower")?.trim().to_string();
    let layer_id = lower
        .strip_prefix("/var/lib/containers/storage/overlay/")
        .and_then(|l| l.strip_suffix("/diff"))
        .ok_or_else(|| anyhow!("lower dir {lower:?}"))?;
    let steps = super::imglayers::history_steps(a.get("image.history")?, "podman")?;
    let [Some(step)] = &steps[..] else {
        return Err(anyhow!("podman history of the one-layer image: {steps:?}"));
    };
    let layer = json!({
        "index": 0, "dir": lower, "store": "containers-storage", "id": layer_id,
        "created_by": step,
    });
    let container = json!({
        "runtime": "podman", "id": id, "name": name, "image": "localhost/files:1",
        "image_id": image_id,
    });
    let got: Vec<(String, String, u64, String, String, Value, Value)> = r
        .events
        .iter()
        .filter(|e| e["container"]["runtime"] == "podman")
        .map(|e| {
            (
                s(&e["path"]).to_string(),
                s(&e["kind"]).to_string(),
                u(&e["bytes"]),
                s(&e["mount"]).to_string(),
                s(&e["host_path"]).to_string(),
                e["layer"].clone(),
                e["container"].clone(),
            )
        })
        .collect();
    let want: Vec<_> = [
        ("/data", "dir", 0),
        ("/data/a", "file", 3000),
        ("/data/b", "file", 5000),
    ]
    .iter()
    .map(|(p, k, b)| {
        (
            p.to_string(),
            k.to_string(),
            *b,
            merged.clone(),
            format!("{merged}{p}"),
            layer.clone(),
            container.clone(),
        )
    })
    .collect();
    // Value is not Ord: sorted by path, which is unique here.
    let mut got = got;
    got.sort_by(|x, y| x.0.cmp(&y.0));
    ensure!(got == want, "copy-ups\n  got  {got:?}\n  want {want:?}");
    // The podman container's three and the containerd container's two.
    ensure!(u(&r.summary["copy_ups"]) == 5, "summary {}", r.summary);
    Ok(())
}

/// The containerd container of a Kubernetes pod chowned /data/a: /data and /data/a, named
/// from its CRI labels through containerd's socket in the pod's /run, mounted where
/// containerd mounts its rootfs, their layer the image's one snapshot, as the host's
/// mount table lists it, found in the pod's /var/lib.
fn k8s_container(a: &Artifacts) -> Result<()> {
    let r = a.run("image")?;
    let kid = "9e4d2c1b0a7f48e5b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0";
    let mount = format!("/run/containerd/io.containerd.runtime.v2.task/k8s.io/{kid}/rootfs");
    let [lower] = &super::imglayers::lowerdirs(a.get("image.k8s_mount")?)?[..] else {
        return Err(anyhow!(
            "not one lower layer: {}",
            a.get("image.k8s_mount")?
        ));
    };
    let snapshot = lower
        .strip_prefix("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/")
        .and_then(|l| l.strip_suffix("/fs"))
        .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| anyhow!("not one containerd snapshot: {lower:?}"))?;
    let steps = super::imglayers::history_steps(a.get("image.history")?, "podman")?;
    let [Some(step)] = &steps[..] else {
        return Err(anyhow!("podman history of the one-layer image: {steps:?}"));
    };
    let layer = json!({
        "index": 0, "dir": lower, "store": "containerd", "id": snapshot, "created_by": step,
    });
    let got: Vec<(String, u64, String, String, Value, Vec<String>)> = r
        .events
        .iter()
        .filter(|e| e["container"]["runtime"] == "containerd")
        .map(|e| {
            let c = &e["container"];
            (
                s(&e["path"]).to_string(),
                u(&e["bytes"]),
                s(&e["mount"]).to_string(),
                s(&e["host_path"]).to_string(),
                e["layer"].clone(),
                ["id", "name", "pod", "namespace", "image"]
                    .iter()
                    .map(|k| s(&c[k]).to_string())
                    .collect(),
            )
        })
        .collect();
    let names: Vec<String> = [kid, "nginx", "web-0", "shop", "localhost/files:1"]
        .iter()
        .map(|x| x.to_string())
        .collect();
    let want: Vec<_> = [("/data", 0), ("/data/a", 3000)]
        .iter()
        .map(|(p, b)| {
            (
                p.to_string(),
                *b,
                mount.clone(),
                format!("{mount}{p}"),
                layer.clone(),
                names.clone(),
            )
        })
        .collect();
    let mut got = got;
    got.sort_by(|x, y| x.0.cmp(&y.0));
    ensure!(got == want, "copy-ups\n  got  {got:?}\n  want {want:?}");
    Ok(())
}

fn stopped(a: &Artifacts) -> Result<()> {
    let rc = a.rc("image")?;
    ensure!(
        rc == 0,
        "exit {rc} after podman stop (SIGTERM)\n{}",
        a.get("image.err")?
    );
    let err = a.get("image.err")?;
    ensure!(!err.contains("panicked"), "{err:?}");
    a.programs_detached("image", "podman stop")?;
    Ok(())
}
