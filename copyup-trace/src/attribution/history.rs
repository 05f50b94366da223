//! The image step that created a lower layer: the `created_by` of the image history
//! entry that made it, read from the runtime's own store (containers/storage's image and
//! layer lists, docker's overlay2 image and layer databases), or paired with a stack of
//! layers from an image config that containerd's API gave. It ends at one layer's step:
//! which layer a copy-up came from is `layers`', asking containerd `runtimes`'.

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
};

use base64::Engine;
use serde::{de::DeserializeOwned, Deserialize};

use crate::attribution::layers::RuntimeLayer;

/// The fields of an OCI / docker image config used here.
#[derive(Debug, Default, Deserialize)]
struct ImageConfig {
    #[serde(default)]
    history: Vec<HistoryEntry>,
    #[serde(default)]
    rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
struct HistoryEntry {
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    empty_layer: bool,
}

/// The history entry of layer `n` (0 = the bottom layer): the `n`th entry that is not an
/// empty layer, as `docker history` and `podman history` pair them. `None` when the
/// history has fewer such entries (an image written without history) or the entry says
/// nothing (an imported tarball).
fn step_of(history: &[HistoryEntry], n: usize) -> Option<String> {
    history
        .iter()
        .filter(|h| !h.empty_layer)
        .nth(n)
        .map(|h| h.created_by.clone())
        .filter(|s| !s.is_empty())
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Option<T> {
    let text = fs::read(path).ok()?;
    serde_json::from_slice(&text)
        .map_err(|e| log::debug!("{}: {e}", path.display()))
        .ok()
}

fn read_trimmed(path: &Path) -> Option<String> {
    let s = fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The steps that made a stack of `n` lower layers (topmost first, as an overlay lists
/// them) of the image whose config is `config`; `None` when the image has another number
/// of layers (the stack is not that image's).
pub fn stack_steps(config: &[u8], n: usize) -> Option<Vec<Option<String>>> {
    let c: ImageConfig = serde_json::from_slice(config).ok()?;
    (c.rootfs.diff_ids.len() == n).then(|| (0..n).map(|i| step_of(&c.history, n - 1 - i)).collect())
}

/// The image step that created `layer`, whose resolved directory is `dir`
/// (`<store root>/<driver dir>/<id>/diff`); `None` where the store has no image with that
/// layer, or no history for it. containerd's snapshots are numbered in a database only its
/// API reads: they are named from containerd's answer about a container instead
/// (`stack_steps`).
pub fn created_by(dir: &Path, layer: &RuntimeLayer) -> Option<String> {
    let root = dir.parent()?.parent()?.parent()?;
    match layer.store {
        "containers-storage" => containers_storage(root, &layer.id),
        "docker" => docker(root, &layer.id),
        _ => None,
    }
}

/// containers/storage's file name of an image's big-data item (`makeBigDataBaseName`):
/// the key itself when it is only `[.0-9a-z]`, else `=` and the key in base64.
fn big_data_file(key: &str) -> String {
    if key
        .bytes()
        .all(|b| b == b'.' || b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        key.to_string()
    } else {
        format!("={}", base64::engine::general_purpose::STANDARD.encode(key))
    }
}

#[derive(Deserialize)]
struct StorageLayer {
    id: String,
    #[serde(default)]
    parent: String,
}

#[derive(Deserialize)]
struct StorageImage {
    id: String,
    /// The image's top layer.
    #[serde(default)]
    layer: String,
    #[serde(default, rename = "big-data-names")]
    big_data_names: Vec<String>,
}

/// Walks `top` down through `parent` to the bottom layer: the chain, top first. Bounded by
/// the number of layers, so a store with a cycle cannot hold it.
fn chain<'a>(top: &'a str, parent: &HashMap<&'a str, &'a str>) -> Vec<&'a str> {
    let mut out = vec![];
    let mut cur = top;
    while !cur.is_empty() && out.len() <= parent.len() {
        out.push(cur);
        cur = parent.get(cur).copied().unwrap_or("");
    }
    out
}

/// containers/storage: the images (`overlay-images/images.json`) whose layer chain
/// (`overlay-layers/layers.json`, by `parent`) holds `id`; the step from the first one's
/// config (the big-data item named by its digest, `sha256:...`).
fn containers_storage(root: &Path, id: &str) -> Option<String> {
    let layers: Vec<StorageLayer> = read_json(&root.join("overlay-layers/layers.json"))?;
    let parent: HashMap<&str, &str> = layers
        .iter()
        .map(|l| (l.id.as_str(), l.parent.as_str()))
        .collect();
    let images: Vec<StorageImage> = read_json(&root.join("overlay-images/images.json"))?;
    images.iter().find_map(|image| {
        let chain = chain(&image.layer, &parent);
        let from_top = chain.iter().position(|&l| l == id)?;
        let n = chain.len() - 1 - from_top;
        let dir = root.join("overlay-images").join(&image.id);
        image
            .big_data_names
            .iter()
            .filter(|k| k.starts_with("sha256:"))
            .filter_map(|k| read_json::<ImageConfig>(&dir.join(big_data_file(k))))
            .find(|c| c.rootfs.diff_ids.len() == chain.len())
            .and_then(|c| step_of(&c.history, n))
    })
}

/// docker's overlay2 store: the layer whose `cache-id` is `cache_id`
/// (`image/overlay2/layerdb/sha256/<chain id>/`), its diff ids down its `parent`s, and the
/// first image config (`image/overlay2/imagedb/content/sha256/`) whose `rootfs` starts with
/// them.
fn docker(root: &Path, cache_id: &str) -> Option<String> {
    let db = root.join("image/overlay2/layerdb/sha256");
    let entries: Vec<PathBuf> = fs::read_dir(&db)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .collect();
    let mut cur = entries
        .iter()
        .find(|p| read_trimmed(&p.join("cache-id")).as_deref() == Some(cache_id))?
        .clone();
    let mut diffs = vec![];
    while diffs.len() <= entries.len() {
        diffs.push(read_trimmed(&cur.join("diff"))?);
        match read_trimmed(&cur.join("parent")) {
            Some(p) => cur = db.join(p.strip_prefix("sha256:")?),
            None => break,
        }
    }
    diffs.reverse();
    let n = diffs.len() - 1;
    fs::read_dir(root.join("image/overlay2/imagedb/content/sha256"))
        .ok()?
        .flatten()
        .filter_map(|e| read_json::<ImageConfig>(&e.path()))
        .find(|c| c.rootfs.diff_ids.starts_with(&diffs))
        .and_then(|c| step_of(&c.history, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// History of an image of three layers with an empty `ENV` step between them.
    const HISTORY: &str = r#"[
        {"created_by": "", "comment": "imported"},
        {"created_by": "/bin/sh -c #(nop) ENV A=1", "empty_layer": true},
        {"created_by": "/bin/sh -c #(nop) COPY dir:aa in / "},
        {"created_by": "/bin/sh -c #(nop) COPY dir:bb in / "}
    ]"#;

    fn config(diffs: &[&str]) -> String {
        format!(
            r#"{{"rootfs": {{"type": "layers", "diff_ids": {}}}, "history": {HISTORY}}}"#,
            serde_json::to_string(diffs).unwrap()
        )
    }

    fn layer(store: &'static str, id: &str) -> RuntimeLayer {
        RuntimeLayer {
            store,
            id: id.to_string(),
        }
    }

    #[test]
    fn empty_layers_are_skipped_and_empty_steps_are_none() {
        let h: Vec<HistoryEntry> = serde_json::from_str(HISTORY).unwrap();
        assert_eq!(step_of(&h, 0), None);
        assert_eq!(
            step_of(&h, 1).as_deref(),
            Some("/bin/sh -c #(nop) COPY dir:aa in / ")
        );
        assert_eq!(
            step_of(&h, 2).as_deref(),
            Some("/bin/sh -c #(nop) COPY dir:bb in / ")
        );
        assert_eq!(step_of(&h, 3), None);
    }

    #[test]
    fn a_stack_is_paired_with_the_image_bottom_up() {
        let c = config(&["sha256:1", "sha256:2", "sha256:3"]);
        assert_eq!(
            stack_steps(c.as_bytes(), 3),
            Some(vec![
                Some("/bin/sh -c #(nop) COPY dir:bb in / ".to_string()),
                Some("/bin/sh -c #(nop) COPY dir:aa in / ".to_string()),
                None
            ])
        );
        assert_eq!(stack_steps(c.as_bytes(), 2), None);
        assert_eq!(stack_steps(b"not json", 3), None);
    }

    #[test]
    fn big_data_names_as_containers_storage_writes_them() {
        assert_eq!(big_data_file("manifest"), "manifest");
        assert_eq!(
            big_data_file("sha256:ab"),
            format!(
                "={}",
                base64::engine::general_purpose::STANDARD.encode("sha256:ab")
            )
        );
    }

    #[test]
    fn containers_storage_layers_by_their_place_in_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("overlay-layers/layers.json"),
            r#"[{"id": "base"}, {"id": "mid", "parent": "base"}, {"id": "top", "parent": "mid"},
                {"id": "ctr", "parent": "top"}]"#,
        );
        write(
            &root.join("overlay-images/images.json"),
            r#"[{"id": "img", "layer": "top", "big-data-names": ["manifest", "sha256:img"]}]"#,
        );
        write(
            &root
                .join("overlay-images/img")
                .join(big_data_file("sha256:img")),
            &config(&["sha256:1", "sha256:2", "sha256:3"]),
        );
        let of = |id: &str| {
            created_by(
                &root.join("overlay").join(id).join("diff"),
                &layer("containers-storage", id),
            )
        };
        assert_eq!(of("base"), None);
        assert_eq!(
            of("mid").as_deref(),
            Some("/bin/sh -c #(nop) COPY dir:aa in / ")
        );
        assert_eq!(
            of("top").as_deref(),
            Some("/bin/sh -c #(nop) COPY dir:bb in / ")
        );
        // A container's own layer belongs to no image.
        assert_eq!(of("ctr"), None);
    }

    #[test]
    fn docker_layers_by_their_diff_ids() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let db = root.join("image/overlay2/layerdb/sha256");
        for (chain, cache, diff, parent) in [
            ("c1", "cache1", "sha256:1", None),
            ("c2", "cache2", "sha256:2", Some("sha256:c1")),
            ("c3", "cache3", "sha256:3", Some("sha256:c2")),
        ] {
            write(&db.join(chain).join("cache-id"), cache);
            write(&db.join(chain).join("diff"), diff);
            if let Some(p) = parent {
                write(&db.join(chain).join("parent"), p);
            }
        }
        let images = root.join("image/overlay2/imagedb/content/sha256");
        write(&images.join("other"), &config(&["sha256:9"]));
        write(
            &images.join("img"),
            &config(&["sha256:1", "sha256:2", "sha256:3"]),
        );
        let of = |id: &str| {
            created_by(
                &root.join("overlay2").join(id).join("diff"),
                &layer("docker", id),
            )
        };
        assert_eq!(of("cache1"), None);
        assert_eq!(
            of("cache2").as_deref(),
            Some("/bin/sh -c #(nop) COPY dir:aa in / ")
        );
        assert_eq!(
            of("cache3").as_deref(),
            Some("/bin/sh -c #(nop) COPY dir:bb in / ")
        );
        assert_eq!(of("cache3-init"), None);
    }
}
