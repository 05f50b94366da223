//! The lower layers copy-ups copy from: an overlay's lower stack and options from its
//! mountinfo superblock options, each layer directory named as the container runtime
//! names it, and each layer's total size, walked once when an output shows it. Which
//! layer of the stack a copy-up came from is the kernel side's answer; the totals per
//! layer are `output::aggregate::layers`', advice from the options `output::advice`'s.

use std::{
    borrow::Cow,
    collections::HashMap,
    ffi::OsStr,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
    thread::JoinHandle,
};

use serde::Serialize;

use crate::{
    attribution::mounts::unescape_octal,
    escape::escape_cow,
    hashing::{IdMap, IdSet},
};

/// Where the overlay module keeps the defaults that mountinfo leaves out.
pub const MODULE_PARAMETERS: &str = "/sys/module/overlay/parameters";

/// The overlay options that decide what a copy-up costs, as in effect on one mount.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OverlayOptions {
    pub metacopy: bool,
    /// `on`, `follow`, `nofollow` or `off`.
    pub redirect_dir: String,
    pub index: bool,
    pub userxattr: bool,
    pub volatile: bool,
    pub nfs_export: bool,
    /// Options given explicitly at mount time, as the kernel shows them (it shows only
    /// those that differ from the module defaults).
    #[serde(skip)]
    pub shown: Vec<String>,
}

/// The module defaults, for options that mountinfo shows only when they differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleDefaults {
    pub metacopy: bool,
    pub redirect_dir: bool,
    pub redirect_always_follow: bool,
    pub index: bool,
    pub nfs_export: bool,
}

impl ModuleDefaults {
    /// Reads `/sys/module/overlay/parameters`; a parameter that cannot be read is "N", as
    /// with a kernel built without that feature.
    pub fn load() -> ModuleDefaults {
        Self::load_from(Path::new(MODULE_PARAMETERS))
    }

    pub fn load_from(dir: &Path) -> ModuleDefaults {
        let yes = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .map(|s| s.trim() == "Y")
                .unwrap_or(false)
        };
        ModuleDefaults {
            metacopy: yes("metacopy"),
            redirect_dir: yes("redirect_dir"),
            redirect_always_follow: yes("redirect_always_follow"),
            index: yes("index"),
            nfs_export: yes("nfs_export"),
        }
    }

    fn redirect_mode(&self) -> &'static str {
        // fs/overlayfs: ovl_redirect_mode_def().
        match (self.redirect_dir, self.redirect_always_follow) {
            (true, _) => "on",
            (false, true) => "follow",
            (false, false) => "nofollow",
        }
    }
}

/// A lower layer directory as one overlay mount lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerDir {
    pub dir: Vec<u8>,
    /// Listed after `::` or as `datadir+`: holds data for metacopy files only, never a
    /// visible path.
    pub data_only: bool,
}

/// What an overlay's superblock options (mountinfo's last field) say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuperOptions {
    /// Topmost first.
    pub lowers: Vec<LowerDir>,
    pub upper: Option<Vec<u8>>,
    /// Every other option, unescaped: `metacopy=on` as ("metacopy", Some("on")).
    pub other: Vec<(String, Option<String>)>,
}

/// Parses mountinfo's superblock options of an overlay. The kernel writes each option
/// with `seq_show_option`, which escapes `,= \t\n\\` as `\ooo`: splitting on a raw comma
/// is safe. The legacy `lowerdir=` is the string given at mount time, where `:` separates
/// layers, `::` starts the data-only layers and a backslash escapes the next character;
/// newer kernels (6.7+) show layers added one by one as `lowerdir+=` and `datadir+=`.
pub fn parse_super_options(raw: &[u8]) -> SuperOptions {
    let mut out = SuperOptions::default();
    for opt in raw.split(|&b| b == b',').filter(|o| !o.is_empty()) {
        let (key, value) = match opt.iter().position(|&b| b == b'=') {
            Some(n) => (&opt[..n], Some(unescape_octal(&opt[n + 1..]))),
            None => (opt, None),
        };
        let key = String::from_utf8_lossy(&unescape_octal(key)).into_owned();
        match (key.as_str(), value) {
            ("lowerdir", Some(v)) => out.lowers.extend(split_lowerdir(&v)),
            ("lowerdir+", Some(v)) => out.lowers.push(LowerDir {
                dir: v,
                data_only: false,
            }),
            ("datadir+", Some(v)) => out.lowers.push(LowerDir {
                dir: v,
                data_only: true,
            }),
            ("upperdir", Some(v)) => out.upper = Some(v),
            (_, v) => out
                .other
                .push((key, v.map(|v| String::from_utf8_lossy(&v).into_owned()))),
        }
    }
    out
}

fn split_lowerdir(v: &[u8]) -> Vec<LowerDir> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut data_only = false;
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'\\' if i + 1 < v.len() => {
                cur.push(v[i + 1]);
                i += 2;
                continue;
            }
            b':' => {
                out.push(LowerDir {
                    dir: std::mem::take(&mut cur),
                    data_only,
                });
                if v.get(i + 1) == Some(&b':') {
                    data_only = true;
                    i += 1;
                }
            }
            b => cur.push(b),
        }
        i += 1;
    }
    out.push(LowerDir {
        dir: cur,
        data_only,
    });
    out.retain(|l| !l.dir.is_empty());
    out
}

impl OverlayOptions {
    /// The options in effect: those shown, else the module defaults, with the kernel's
    /// own resolution (fs/overlayfs/params.c, `ovl_fs_params_verify`): metacopy turns
    /// redirect_dir on unless redirect_dir was given; userxattr turns both off.
    pub fn effective(shown: &[(String, Option<String>)], defaults: &ModuleDefaults) -> Self {
        let get = |k: &str| shown.iter().find(|(key, _)| key == k);
        let on = |k: &str, def: bool| match get(k) {
            Some((_, Some(v))) => v == "on",
            Some((_, None)) => true,
            None => def,
        };
        let mut o = OverlayOptions {
            metacopy: on("metacopy", defaults.metacopy),
            redirect_dir: match get("redirect_dir") {
                Some((_, Some(v))) => v.clone(),
                _ => defaults.redirect_mode().to_string(),
            },
            index: on("index", defaults.index),
            userxattr: get("userxattr").is_some(),
            volatile: get("volatile").is_some(),
            nfs_export: on("nfs_export", defaults.nfs_export),
            shown: shown
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "rw" | "ro" | "workdir"))
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect(),
        };
        if o.metacopy && get("redirect_dir").is_none() {
            o.redirect_dir = "on".to_string();
        }
        if o.userxattr {
            o.metacopy = false;
        }
        o
    }
}

/// A layer as its container runtime names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuntimeLayer {
    /// `docker` (overlay2), `containers-storage` (podman, CRI-O, buildah) or `containerd`.
    pub store: &'static str,
    /// The layer's directory name there: docker's and containers/storage's layer id
    /// (docker's `-init` layer keeps its suffix), containerd's snapshot number.
    pub id: String,
}

/// The runtime's name of a layer, from its resolved directory:
/// `.../overlay2/<id>/diff` (docker), `.../overlay/<id>/diff` (containers/storage) and
/// `.../io.containerd.snapshotter.v1.overlayfs/snapshots/<n>/fs` (containerd).
pub fn runtime_layer(dir: &[u8]) -> Option<RuntimeLayer> {
    let parts: Vec<&[u8]> = dir
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    let [.., store, id, leaf] = parts[..] else {
        return None;
    };
    let id_ok = !id.is_empty()
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    if !id_ok {
        return None;
    }
    let owner = parts.len().checked_sub(4).map(|i| parts[i]);
    let store = match (store, leaf) {
        (b"overlay2", b"diff") => "docker",
        (b"overlay", b"diff") if id != b"l" => "containers-storage",
        (b"snapshots", b"fs")
            if owner == Some(b"io.containerd.snapshotter.v1.overlayfs")
                && id.iter().all(u8::is_ascii_digit) =>
        {
            "containerd"
        }
        _ => return None,
    };
    Some(RuntimeLayer {
        store,
        id: String::from_utf8_lossy(id).into_owned(),
    })
}

/// A layer's total size, walked once in a thread of its own.
#[derive(Default)]
pub struct SizeCell {
    walk: Mutex<Option<JoinHandle<Option<u64>>>>,
    done: OnceLock<Option<u64>>,
}

/// Shared by every mount that stacks the same layer directory.
#[derive(Clone, Default)]
pub struct LayerSize(Arc<SizeCell>);

impl PartialEq for LayerSize {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LayerSize {}

impl std::fmt::Debug for LayerSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LayerSize({:?})", self.0.done.get())
    }
}

impl LayerSize {
    /// Starts the walk of `dir` unless it has started.
    pub fn start(&self, dir: &Path) {
        let mut walk = self.0.walk.lock().unwrap_or_else(|e| e.into_inner());
        if walk.is_none() && self.0.done.get().is_none() {
            let owned = dir.to_path_buf();
            *walk = std::thread::Builder::new()
                .name("layer-size".into())
                .spawn(move || tree_bytes(&owned))
                .map_err(|e| log::warn!("cannot walk layer {}: {e}", dir.display()))
                .ok();
        }
    }

    /// The size, waiting for the walk if it is still running; `None` if it never
    /// started or could not read the layer's root.
    pub fn wait(&self) -> Option<u64> {
        if let Some(done) = self.0.done.get() {
            return *done;
        }
        let handle = self.0.walk.lock().unwrap_or_else(|e| e.into_inner()).take();
        let size = handle.and_then(|h| h.join().ok()).flatten();
        *self.0.done.get_or_init(|| size)
    }

    #[cfg(test)]
    pub fn known(bytes: u64) -> LayerSize {
        let s = LayerSize::default();
        let _ = s.0.done.set(Some(bytes));
        s
    }
}

/// Bytes of the regular files under `dir` (apparent sizes, each hard-linked inode once),
/// without leaving its filesystem or following symlinks. What a copy-up copies is a
/// file's data, so this is the measure of how much of a layer has been copied up.
pub fn tree_bytes(dir: &Path) -> Option<u64> {
    std::fs::symlink_metadata(dir).ok()?;
    let mut total = 0u64;
    let mut linked: IdSet<(u64, u64)> = IdSet::default();
    for entry in walkdir::WalkDir::new(dir).same_file_system(true) {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(m) = entry.metadata() else { continue };
        if m.nlink() > 1 && !linked.insert((m.dev(), m.ino())) {
            continue;
        }
        total += m.len();
    }
    Some(total)
}

/// One lower layer of one overlay mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Position in this mount's lower stack, 0 = topmost.
    pub index: u32,
    /// The directory as the mount lists it.
    pub dir: Vec<u8>,
    /// The directory with symlinks resolved (docker's and containers/storage's
    /// `l/<short>` links name the layer's `diff`); the key of `--by layer`.
    pub resolved: Vec<u8>,
    pub runtime: Option<RuntimeLayer>,
    pub data_only: bool,
    pub size: LayerSize,
    /// The image step that created the layer (its history's `created_by`), where the
    /// runtime's store says; shared by every mount that stacks the directory, and filled
    /// in later for a layer only a runtime's answer names (containerd's).
    pub created_by: LayerStep,
}

/// The image step that created a layer directory, once known.
#[derive(Clone, Default)]
pub struct LayerStep(Arc<OnceLock<Arc<str>>>);

impl LayerStep {
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(|s| &s[..])
    }

    fn set(&self, step: &str) {
        let _ = self.0.set(Arc::from(step));
    }

    #[cfg(test)]
    pub fn known(step: &str) -> LayerStep {
        let s = LayerStep::default();
        s.set(step);
        s
    }
}

impl PartialEq for LayerStep {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for LayerStep {}

impl std::fmt::Debug for LayerStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LayerStep({:?})", self.get())
    }
}

/// An overlay mount: where it is, its options and its lower stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayInfo {
    pub mount_point: Arc<[u8]>,
    pub options: OverlayOptions,
    pub lowers: Vec<Arc<Layer>>,
}

/// A relative layer directory, as docker's overlay2 mounts a long lower stack (relative
/// to its `overlay2` directory, from which it mounts): resolved against the mount point's
/// grandparent (`<root>/overlay2/<id>/merged`) when it exists there. Other relative
/// directories cannot be resolved: the mounting process's working directory is gone.
fn relative_base(mount_point: &[u8], dir: &[u8]) -> Option<PathBuf> {
    if dir.starts_with(b"/") {
        return None;
    }
    let base = Path::new(OsStr::from_bytes(mount_point))
        .parent()?
        .parent()?;
    let joined = base.join(OsStr::from_bytes(dir));
    joined.exists().then_some(joined)
}

/// Builds and keeps, per overlay, its options and lower stack, and the per-directory
/// layer sizes. Which layer a copy-up came from is the kernel side's answer (an index
/// into the stack): nothing here opens or holds any layer while the host is traced, so
/// every layer mount can be unmounted as if untraced.
pub struct Layers {
    defaults: ModuleDefaults,
    /// By device, with the mount point it was built for.
    by_dev: IdMap<u32, Arc<OverlayInfo>>,
    sizes: HashMap<Vec<u8>, LayerSize>,
    /// Image steps, by directory: a layer's never changes. One not found is asked again
    /// for the next mount that stacks it (its image may not have been written yet).
    steps: HashMap<Vec<u8>, LayerStep>,
}

impl Layers {
    pub fn new(defaults: ModuleDefaults) -> Layers {
        Layers {
            defaults,
            by_dev: IdMap::default(),
            sizes: HashMap::new(),
            steps: HashMap::new(),
        }
    }

    /// The overlay `dev` mounted at `mount_point` with `super_options` (raw, escaped);
    /// rebuilt when the mount point changes.
    pub fn overlay(
        &mut self,
        dev: u32,
        mount_point: &Arc<[u8]>,
        super_options: &[u8],
    ) -> Arc<OverlayInfo> {
        let stale = self
            .by_dev
            .get(&dev)
            .is_none_or(|o| !Arc::ptr_eq(&o.mount_point, mount_point));
        if stale {
            let info = Arc::new(self.build(mount_point.clone(), super_options));
            self.by_dev.insert(dev, info);
        }
        self.by_dev[&dev].clone()
    }

    fn build(&mut self, mount_point: Arc<[u8]>, super_options: &[u8]) -> OverlayInfo {
        let parsed = parse_super_options(super_options);
        let mut lowers = Vec::new();
        for (i, l) in parsed.lowers.iter().enumerate() {
            // A relative directory that cannot be anchored keeps its name as listed:
            // resolving it against our own working directory would name the wrong one.
            let path = match relative_base(&mount_point, &l.dir) {
                Some(p) => Some(p),
                None if l.dir.starts_with(b"/") => Some(PathBuf::from(OsStr::from_bytes(&l.dir))),
                None => None,
            };
            // Resolved once per mount; no descriptor is kept.
            let resolved = path
                .as_ref()
                .and_then(|p| std::fs::canonicalize(p).ok())
                .map(|p| p.as_os_str().as_bytes().to_vec())
                .unwrap_or_else(|| l.dir.clone());
            let size = self.sizes.entry(resolved.clone()).or_default().clone();
            let runtime = runtime_layer(&resolved);
            let created_by = self.steps.entry(resolved.clone()).or_default().clone();
            if let (None, Some(r)) = (created_by.get(), &runtime) {
                let dir = Path::new(OsStr::from_bytes(&resolved));
                if let Some(found) = crate::attribution::history::created_by(dir, r) {
                    created_by.set(&found);
                }
            }
            lowers.push(Arc::new(Layer {
                index: i as u32,
                runtime,
                created_by,
                dir: l.dir.clone(),
                resolved,
                data_only: l.data_only,
                size,
            }));
        }
        OverlayInfo {
            mount_point,
            options: OverlayOptions::effective(&parsed.other, &self.defaults),
            lowers,
        }
    }
    /// The image step of the layer directory `dir`, as a runtime's answer names it: for
    /// the mounts that stack it now and later. `dir` is resolved as the mounts' are.
    pub fn learn_step(&mut self, dir: &Path, step: &str) {
        let resolved = std::fs::canonicalize(dir)
            .map(|p| p.as_os_str().as_bytes().to_vec())
            .unwrap_or_else(|_| dir.as_os_str().as_bytes().to_vec());
        self.steps.entry(resolved).or_default().set(step);
    }
}

/// A copy-up's layer as JSON records show it: `{"index","dir","store","id"}`, the last
/// two only for a runtime's layer.
#[derive(Debug, Serialize)]
pub struct LayerRecord<'a> {
    pub index: u32,
    pub dir: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Cow<'a, str>>,
    /// The image step that created the layer, as its history says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Cow<'a, str>>,
}

impl Layer {
    /// Borrowed where nothing needs escaping, as most layers: no allocation per record.
    pub fn record(&self) -> LayerRecord<'_> {
        LayerRecord {
            index: self.index,
            dir: escape_cow(&self.resolved),
            store: self.runtime.as_ref().map(|r| r.store),
            id: self.runtime.as_ref().map(|r| escape_cow(r.id.as_bytes())),
            created_by: self.created_by.get().map(|s| escape_cow(s.as_bytes())),
        }
    }

    /// Starts the walk that sizes this layer, once per directory.
    pub fn start_sizing(&self) {
        self.size
            .start(&PathBuf::from(OsStr::from_bytes(&self.resolved)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(o: &SuperOptions) -> Vec<(String, bool)> {
        o.lowers
            .iter()
            .map(|l| (String::from_utf8_lossy(&l.dir).into_owned(), l.data_only))
            .collect()
    }

    #[test]
    fn legacy_lowerdir_with_escapes_and_data_layers() {
        // Kernel text: a space in a path is \040, a backslash \134, a comma \054.
        let raw = br"rw,lowerdir=/l\0401:/l\134:2:/l3\054x::/d1::/d2,upperdir=/u,workdir=/w,redirect_dir=on,metacopy=on,userxattr";
        let o = parse_super_options(raw);
        assert_eq!(
            dirs(&o),
            [
                ("/l 1".to_string(), false),
                ("/l:2".to_string(), false),
                ("/l3,x".to_string(), false),
                ("/d1".to_string(), true),
                ("/d2".to_string(), true),
            ]
        );
        assert_eq!(o.upper.as_deref(), Some(&b"/u"[..]));
        let keys: Vec<&str> = o.other.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["rw", "workdir", "redirect_dir", "metacopy", "userxattr"]
        );
    }

    #[test]
    fn lowerdir_plus_and_datadir_plus() {
        let raw = b"rw,lowerdir+=/a:b,lowerdir+=/c,datadir+=/d,upperdir=/u,workdir=/w";
        let o = parse_super_options(raw);
        assert_eq!(
            dirs(&o),
            [
                ("/a:b".to_string(), false),
                ("/c".to_string(), false),
                ("/d".to_string(), true)
            ]
        );
    }

    #[test]
    fn read_only_overlay_without_upper() {
        let o = parse_super_options(b"ro,lowerdir=/a:/b");
        assert_eq!(dirs(&o).len(), 2);
        assert_eq!(o.upper, None);
    }

    fn opts(raw: &[u8], d: &ModuleDefaults) -> OverlayOptions {
        OverlayOptions::effective(&parse_super_options(raw).other, d)
    }

    #[test]
    fn effective_options_follow_the_kernel() {
        let debian = ModuleDefaults {
            redirect_always_follow: true,
            ..Default::default()
        };
        let o = opts(b"rw,lowerdir=/l,upperdir=/u,workdir=/w", &debian);
        assert_eq!(
            (o.metacopy, o.redirect_dir.as_str(), o.index, o.userxattr),
            (false, "follow", false, false)
        );
        let o = opts(b"rw,lowerdir=/l,redirect_dir=on,metacopy=on", &debian);
        assert!(o.metacopy);
        assert_eq!(o.redirect_dir, "on");
        // Default metacopy=Y in the module: mountinfo says nothing, redirect follows.
        let meta = ModuleDefaults {
            metacopy: true,
            ..debian.clone()
        };
        let o = opts(b"rw,lowerdir=/l", &meta);
        assert!(o.metacopy);
        assert_eq!(o.redirect_dir, "on");
        // userxattr silently turns the defaults off.
        let o = opts(b"rw,lowerdir=/l,userxattr", &meta);
        assert!(!o.metacopy && o.userxattr);
        let o = opts(b"rw,lowerdir=/l,index=on,volatile,metacopy=off", &meta);
        assert!(o.index && o.volatile && !o.metacopy);
        assert_eq!(o.shown, ["index=on", "volatile", "metacopy=off"]);
    }

    #[test]
    fn runtime_layer_names() {
        let id = "9c1f5e2b3a4d9c1f5e2b3a4d9c1f5e2b3a4d9c1f5e2b3a4d9c1f5e2b3a4d9c1f";
        let r = |p: &str| runtime_layer(p.as_bytes()).map(|l| (l.store, l.id));
        assert_eq!(
            r(&format!("/var/lib/docker/overlay2/{id}/diff")),
            Some(("docker", id.to_string()))
        );
        assert_eq!(
            r(&format!("/data/docker/overlay2/{id}-init/diff/")),
            Some(("docker", format!("{id}-init")))
        );
        assert_eq!(
            r(&format!("/var/lib/containers/storage/overlay/{id}/diff")),
            Some(("containers-storage", id.to_string()))
        );
        assert_eq!(
            r(&format!(
                "/home/u/.local/share/containers/storage/overlay/{id}/diff"
            )),
            Some(("containers-storage", id.to_string()))
        );
        assert_eq!(
            r("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs"),
            Some(("containerd", "12".to_string()))
        );
        // Unresolved short links, other layouts and odd ids are not named.
        assert_eq!(
            r("/var/lib/docker/overlay2/l/7GQX5ZXOD7CYDC3NZHE2RN2JKM"),
            None
        );
        assert_eq!(r("/var/lib/containers/storage/overlay/l/diff"), None);
        assert_eq!(
            r("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/x/fs"),
            None
        );
        assert_eq!(r("/other/snapshots/12/fs"), None);
        assert_eq!(r("/var/lib/docker/overlay2/a b/diff"), None);
        assert_eq!(r("/tmp/lower"), None);
        assert_eq!(r("diff"), None);
    }

    /// docker's lowerdir lists `l/<short>` links; resolved, they name the layer.
    #[test]
    fn short_links_are_resolved() {
        let root = tempfile::tempdir().unwrap();
        let o2 = root.path().join("overlay2");
        let id = "ab".repeat(32);
        std::fs::create_dir_all(o2.join(&id).join("diff/etc")).unwrap();
        std::fs::write(o2.join(&id).join("diff/etc/passwd"), b"root:x:0:0\n").unwrap();
        std::fs::create_dir_all(o2.join("l")).unwrap();
        std::os::unix::fs::symlink(format!("../{id}/diff"), o2.join("l/SHORT")).unwrap();
        let lower = o2.join("l/SHORT");
        let raw = format!("rw,lowerdir={}", lower.display());
        let mut layers = Layers::new(ModuleDefaults::default());
        let mp: Arc<[u8]> = Arc::from(&b"/merged"[..]);
        let l = layers.overlay(1, &mp, raw.as_bytes());
        let layer = l.lowers[0].clone();
        assert_eq!(
            layer.runtime,
            Some(RuntimeLayer {
                store: "docker",
                id: id.clone()
            })
        );
        assert!(layer.resolved.ends_with(format!("{id}/diff").as_bytes()));
        layer.start_sizing();
        assert_eq!(layer.size.wait(), Some(11));
    }

    /// docker mounts a long stack with `l/<short>` relative to its overlay2 directory.
    #[test]
    fn relative_docker_links_are_resolved() {
        let root = tempfile::tempdir().unwrap();
        let o2 = root.path().join("overlay2");
        let id = "cd".repeat(32);
        std::fs::create_dir_all(o2.join(&id).join("diff")).unwrap();
        std::fs::write(o2.join(&id).join("diff/f"), b"x").unwrap();
        std::fs::create_dir_all(o2.join("l")).unwrap();
        std::fs::create_dir_all(o2.join("ctr/merged")).unwrap();
        std::os::unix::fs::symlink(format!("../{id}/diff"), o2.join("l/REL")).unwrap();
        let mp = o2.join("ctr/merged");
        let mp: Arc<[u8]> = Arc::from(mp.as_os_str().as_bytes());
        let mut layers = Layers::new(ModuleDefaults::default());
        let l = layers.overlay(3, &mp, b"rw,lowerdir=l/REL:l/GONE,upperdir=ctr/diff");
        assert_eq!(l.lowers[0].runtime.as_ref().unwrap().id, id);
        assert_eq!(l.lowers[1].runtime, None);
        assert_eq!(l.lowers[1].resolved, b"l/GONE");
    }

    /// The stack as listed, data-only layers last; one build per mount point.
    #[test]
    fn stacks_are_built_once_per_mount() {
        let raw = b"rw,lowerdir=/top:/mid::/data,upperdir=/u";
        let mut layers = Layers::new(ModuleDefaults::default());
        let mp: Arc<[u8]> = Arc::from(&b"/m"[..]);
        let l = layers.overlay(7, &mp, raw);
        let got: Vec<(u32, &[u8], bool)> = l
            .lowers
            .iter()
            .map(|l| (l.index, &l.dir[..], l.data_only))
            .collect();
        assert_eq!(
            got,
            [
                (0, &b"/top"[..], false),
                (1, &b"/mid"[..], false),
                (2, &b"/data"[..], true)
            ]
        );
        // The same mount point is the same overlay; another one rebuilds it.
        assert!(Arc::ptr_eq(&l, &layers.overlay(7, &mp, b"")));
        let other: Arc<[u8]> = Arc::from(&b"/m"[..]);
        assert!(layers.overlay(7, &other, b"").lowers.is_empty());
    }

    #[test]
    fn tree_bytes_counts_hard_links_once() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        std::fs::create_dir(p.join("d")).unwrap();
        std::fs::write(p.join("d/a"), vec![0u8; 1000]).unwrap();
        std::fs::write(p.join("b"), vec![0u8; 24]).unwrap();
        std::fs::hard_link(p.join("d/a"), p.join("a2")).unwrap();
        std::os::unix::fs::symlink("d/a", p.join("sym")).unwrap();
        assert_eq!(tree_bytes(p), Some(1024));
        assert_eq!(tree_bytes(&p.join("nope")), None);
    }

    #[test]
    fn module_defaults_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("metacopy"), "Y\n").unwrap();
        std::fs::write(dir.path().join("redirect_dir"), "N\n").unwrap();
        std::fs::write(dir.path().join("redirect_always_follow"), "Y\n").unwrap();
        let d = ModuleDefaults::load_from(dir.path());
        assert!(d.metacopy && !d.redirect_dir && d.redirect_always_follow && !d.index);
        assert_eq!(d.redirect_mode(), "follow");
    }
}
