//! Cgroup attribution: turns the cgroup id seen in the kernel (`bpf_get_current_cgroup_id()`,
//! the inode number of the cgroup2 directory) into a cgroup path, resolves user-given cgroup
//! paths to ids for filtering, and recognises container runtimes from cgroup paths.

use std::{
    collections::HashMap,
    ffi::CString,
    io,
    os::unix::ffi::OsStrExt,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

pub const CGROUP2_ROOT: &str = "/sys/fs/cgroup";

const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;

const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// Maps cgroup ids to paths relative to the cgroup2 root (`/` for the root itself,
/// `/system.slice/docker-<id>.scope`, ...).
///
/// Names that are not UTF-8 are shown with U+FFFD in place of the invalid bytes.
pub struct CgroupResolver {
    root: PathBuf,
    cache: HashMap<u64, String>,
    last_scan: Option<Instant>,
    rescan_interval: Duration,
}

impl CgroupResolver {
    /// A resolver for the hierarchy mounted at `root` (normally [`CGROUP2_ROOT`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            cache: HashMap::new(),
            last_scan: None,
            rescan_interval: RESCAN_INTERVAL,
        }
    }

    /// Scans the hierarchy now: cgroups that exist when tracing starts are known before
    /// their first copy-up, even if they are gone by the time it is read.
    pub fn scanned(mut self) -> Self {
        self.scan();
        self
    }

    #[cfg(test)]
    /// Sets the minimum time between two scans of the hierarchy (1 s by default).
    pub fn with_rescan_interval(mut self, interval: Duration) -> Self {
        self.rescan_interval = interval;
        self
    }

    /// The path of cgroup `id`. Answers from the cache; on a miss rescans the hierarchy, but
    /// not more often than the rescan interval, so a flood of unknown ids costs little. Ids
    /// that stay unknown (e.g. cgroups removed before they were seen) give `None`.
    pub fn resolve(&mut self, id: u64) -> Option<&str> {
        if !self.cache.contains_key(&id) {
            let due = self
                .last_scan
                .is_none_or(|t| t.elapsed() >= self.rescan_interval);
            if due {
                self.scan();
            }
        }
        self.cache.get(&id).map(String::as_str)
    }

    /// The path of cgroup `id`, as the kernel named it when it was made: known even if
    /// the cgroup is gone before a scan could see it.
    pub fn learn(&mut self, id: u64, path: String) {
        if id != 0 && !path.is_empty() {
            self.cache.entry(id).or_insert(path);
        }
    }

    /// Walks the hierarchy and adds every directory to the cache. Entries of removed cgroups
    /// are kept: events from them may still be in flight, and cgroup ids are not reused.
    fn scan(&mut self) {
        self.last_scan = Some(Instant::now());
        let cache = &mut self.cache;
        walk(&self.root, |id, rel| {
            let path = if rel.is_empty() { "/" } else { rel };
            cache.insert(id, path.to_string());
        });
    }
}

/// Calls `visit(inode, path relative to root)` for `root` (with an empty path) and every
/// directory below it on the same filesystem. Relative paths start with `/`.
fn walk(root: &Path, mut visit: impl FnMut(u64, &str)) {
    let Ok(meta) = std::fs::metadata(root) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let root_dev = meta.dev();
    visit(meta.ino(), "");

    // An explicit stack rather than recursion: depth is untrusted.
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        // Cgroups come and go during the walk; unreadable or vanished ones are skipped.
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // `file_type` does not follow symlinks, so a link cannot send the walk in circles.
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Ok(meta) = entry.metadata() else {
                continue;
            };
            // Inode numbers are only ids within the cgroup filesystem itself.
            if meta.dev() != root_dev {
                continue;
            }
            let child = format!("{rel}/{}", entry.file_name().to_string_lossy());
            visit(meta.ino(), &child);
            stack.push((entry.path(), child));
        }
    }
}

/// The ids of a user-given cgroup (see [`cgroup_id_of`]) and of all cgroups below it, the
/// given cgroup first. Cgroups created later are not included.
pub fn subtree_ids(path: &str) -> Result<Vec<u64>> {
    let (id, dir) = cgroup_id_of(path)?;
    Ok(ids_below(id, &dir))
}

fn ids_below(id: u64, dir: &Path) -> Vec<u64> {
    let mut ids = vec![id];
    walk(dir, |child, rel| {
        // The walk reports `dir` itself too; it is already first.
        if !rel.is_empty() {
            ids.push(child);
        }
    });
    ids
}

/// Every cgroup that belongs to a container now, with the container (a container's
/// subgroups resolve to it too).
pub fn container_cgroups() -> Vec<(u64, Container)> {
    let mut out = Vec::new();
    walk(Path::new(CGROUP2_ROOT), |id, rel| {
        if let Some(c) = container_of(rel) {
            out.push((id, c));
        }
    });
    out
}

/// The cgroup id to filter on for a user-given cgroup path, and the directory it names.
///
/// A relative path is taken relative to [`CGROUP2_ROOT`]. An absolute path is used as is if it
/// is a cgroup2 directory, and otherwise also tried relative to [`CGROUP2_ROOT`], so paths as
/// printed by [`CgroupResolver`] (`/system.slice/...`) work too.
pub fn cgroup_id_of(path: &str) -> Result<(u64, PathBuf)> {
    cgroup_id_under(Path::new(CGROUP2_ROOT), path, is_cgroup2)
}

fn cgroup_id_under(
    root: &Path,
    path: &str,
    is_cgroup2: impl Fn(&Path) -> io::Result<bool>,
) -> Result<(u64, PathBuf)> {
    let given = Path::new(path);
    let mut candidates = Vec::with_capacity(2);
    if given.is_absolute() {
        candidates.push(given.to_path_buf());
    }
    let rel = path.trim_start_matches('/');
    candidates.push(if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    });

    let mut not_cgroup = None;
    for candidate in candidates {
        let meta = match std::fs::metadata(&candidate) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("cgroup {}", candidate.display()));
            }
        };
        let is_cg = meta.is_dir()
            && is_cgroup2(&candidate).with_context(|| format!("cgroup {}", candidate.display()))?;
        if is_cg {
            return Ok((meta.ino(), candidate));
        }
        not_cgroup.get_or_insert(candidate);
    }
    match not_cgroup {
        Some(p) => bail!("{}: not a cgroup2 directory", p.display()),
        None => bail!("{path}: no such cgroup (relative paths are under {CGROUP2_ROOT})"),
    }
}

/// Whether `path` lies on a cgroup2 filesystem.
fn is_cgroup2(path: &Path) -> io::Result<bool> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: all-zero bytes are a valid `statfs` (plain integers and arrays).
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `buf` is a writable `statfs` that outlives the call.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // `f_type`'s integer type differs between architectures.
    #[allow(clippy::unnecessary_cast)]
    Ok(buf.f_type as u64 == CGROUP2_SUPER_MAGIC)
}

/// A container recognised from its cgroup path, with what its runtime tells of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Container {
    /// One of "docker", "containerd", "cri-o", "podman", "kubernetes" (a Kubernetes pod's
    /// container whose runtime the path does not tell).
    pub runtime: &'static str,
    /// The 64-hex-digit container id.
    pub id: String,
    /// From the runtime (`runtimes`), escaped; absent when it does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its runtime could not be asked, or did not answer in time
    /// (`enrich::LOOKUP_BOUND`): name, image and pod are unknown, not absent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unresolved: bool,
}

impl Container {
    /// The runtime's details on this container, escaped for output.
    pub fn with_details(mut self, d: crate::attribution::runtimes::Details) -> Container {
        let esc = |v: Option<String>| v.map(|s| crate::escape::escape(s.as_bytes()));
        self.name = esc(d.name);
        self.image = esc(d.image);
        self.image_id = esc(d.image_id);
        self.pod = esc(d.pod);
        self.namespace = esc(d.namespace);
        if let Some(r) = d.runtime {
            self.runtime = r;
        }
        self
    }

    /// What tables show for it: the name, else the id.
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }
}

/// The container a cgroup belongs to, from the cgroup naming of common runtimes:
///
/// - docker: `docker-<id>.scope` (systemd driver), `/docker/<id>` (cgroupfs driver)
/// - containerd CRI: `cri-containerd-<id>.scope`, also under a `kubepods-...-pod<uid>.slice`
/// - CRI-O: `crio-<id>.scope` (`crio-conmon-<id>.scope` is the monitor, not the container)
/// - podman: `libpod-<id>.scope`, `/libpod_parent/libpod-<id>` (`libpod-conmon-...` is the
///   monitor)
/// - Kubernetes with the cgroupfs driver: `/kubepods/<qos>/pod<uid>/<id>` or
///   `/kubepods/pod<uid>/<id>`, reported as "kubernetes" since the runtime is not named
///
/// The innermost match wins, so nested containers (a kind node inside docker, a container in a
/// podman scope's `container` subgroup) resolve to the innermost container.
pub fn container_of(cgroup_path: &str) -> Option<Container> {
    let segments: Vec<&str> = cgroup_path.split('/').filter(|s| !s.is_empty()).collect();
    (0..segments.len())
        .rev()
        .find_map(|i| container_in(&segments[..i], segments[i]))
}

/// Whether `segment` names a container, given the segments above it.
fn container_in(ancestors: &[&str], segment: &str) -> Option<Container> {
    const PREFIXED: [(&str, &str); 4] = [
        ("docker-", "docker"),
        ("cri-containerd-", "containerd"),
        ("crio-", "cri-o"),
        ("libpod-", "podman"),
    ];
    let found = |runtime, id: &str| {
        Some(Container {
            runtime,
            id: id.to_string(),
            ..Default::default()
        })
    };

    for (prefix, runtime) in PREFIXED {
        if let Some(rest) = segment.strip_prefix(prefix) {
            // The systemd driver names a scope; cgroupfs drivers use the bare name. Monitor
            // processes ("crio-conmon-", "libpod-conmon-") fail the id check.
            let id = rest.strip_suffix(".scope").unwrap_or(rest);
            if is_container_id(id) {
                return found(runtime, id);
            }
        }
    }

    if is_container_id(segment) {
        let parent = ancestors.last().copied().unwrap_or("");
        if parent == "docker" {
            return found("docker", segment);
        }
        if parent.starts_with("pod") && ancestors.iter().any(|a| a.starts_with("kubepods")) {
            return found("kubernetes", segment);
        }
    }
    None
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4c1d2bd4e7a8f6b3c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6";
    const ID2: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    const POD: &str = "pod8f2c7a1e-3b4d-4e5f-9a0b-1c2d3e4f5a6b";
    const POD_SLICE: &str = "kubepods-burstable-pod8f2c7a1e_3b4d_4e5f_9a0b_1c2d3e4f5a6b.slice";

    fn c(runtime: &'static str, id: &str) -> Option<Container> {
        Some(Container {
            runtime,
            id: id.to_string(),
            ..Default::default()
        })
    }

    #[test]
    fn docker() {
        assert_eq!(
            container_of(&format!("/system.slice/docker-{ID}.scope")),
            c("docker", ID)
        );
        assert_eq!(container_of(&format!("/docker/{ID}")), c("docker", ID));
        // Rootless docker with the cgroupfs driver.
        assert_eq!(
            container_of(&format!(
                "/user.slice/user-1000.slice/user@1000.service/docker.service/docker/{ID}"
            )),
            c("docker", ID)
        );
        assert_eq!(container_of("/system.slice/docker.service"), None);
    }

    #[test]
    fn containerd_cri() {
        assert_eq!(
            container_of(&format!(
                "/kubepods.slice/kubepods-burstable.slice/{POD_SLICE}/cri-containerd-{ID}.scope"
            )),
            c("containerd", ID)
        );
        assert_eq!(
            container_of(&format!("/system.slice/cri-containerd-{ID}.scope")),
            c("containerd", ID)
        );
        assert_eq!(container_of("/system.slice/containerd.service"), None);
    }

    #[test]
    fn cri_o() {
        assert_eq!(
            container_of(&format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0a1b2c3d_4e5f_6a7b_8c9d_0e1f2a3b4c5d.slice/crio-{ID}.scope"
            )),
            c("cri-o", ID)
        );
        // The container monitor is not the container.
        assert_eq!(
            container_of(&format!(
                "/kubepods.slice/kubepods-burstable.slice/{POD_SLICE}/crio-conmon-{ID}.scope"
            )),
            None
        );
        // CRI-O with the cgroupfs driver.
        assert_eq!(
            container_of(&format!("/kubepods/burstable/{POD}/crio-{ID}")),
            c("cri-o", ID)
        );
    }

    #[test]
    fn podman() {
        assert_eq!(
            container_of(&format!("/machine.slice/libpod-{ID}.scope")),
            c("podman", ID)
        );
        assert_eq!(
            container_of(&format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
            )),
            c("podman", ID)
        );
        assert_eq!(
            container_of(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
        assert_eq!(
            container_of(&format!("/libpod_parent/libpod-{ID}")),
            c("podman", ID)
        );
    }

    #[test]
    fn kubernetes_cgroupfs() {
        assert_eq!(
            container_of(&format!("/kubepods/burstable/{POD}/{ID}")),
            c("kubernetes", ID)
        );
        assert_eq!(
            container_of(&format!("/kubepods/{POD}/{ID}")),
            c("kubernetes", ID)
        );
        // The pod itself is not a container.
        assert_eq!(container_of(&format!("/kubepods/burstable/{POD}")), None);
        // A bare id outside any known layout is not attributed.
        assert_eq!(container_of(&format!("/foo/{POD}/{ID}")), None);
        assert_eq!(container_of(&format!("/{ID}")), None);
    }

    #[test]
    fn innermost_match_wins() {
        // A kind node running in docker.
        assert_eq!(
            container_of(&format!(
                "/system.slice/docker-{ID}.scope/kubepods/burstable/{POD}/{ID2}"
            )),
            c("kubernetes", ID2)
        );
        // Docker in docker.
        assert_eq!(
            container_of(&format!("/docker/{ID}/docker/{ID2}")),
            c("docker", ID2)
        );
        // A container's own sub-cgroup still belongs to it.
        assert_eq!(
            container_of(&format!("/system.slice/docker-{ID}.scope/init.scope")),
            c("docker", ID)
        );
    }

    #[test]
    fn malformed_ids_do_not_match() {
        let short = &ID[..63];
        let non_hex = format!("{}g", &ID[..63]);
        let upper = ID.to_uppercase();
        let long = format!("{ID}0");
        for id in [short, &non_hex, &upper, &long] {
            assert_eq!(
                container_of(&format!("/system.slice/docker-{id}.scope")),
                None
            );
            assert_eq!(container_of(&format!("/docker/{id}")), None);
            assert_eq!(
                container_of(&format!("/kubepods/burstable/{POD}/{id}")),
                None
            );
        }
        assert_eq!(container_of("/system.slice/docker-.scope"), None);
    }

    #[test]
    fn non_container_paths() {
        assert_eq!(
            container_of("/user.slice/user-1000.slice/session-2.scope"),
            None
        );
        assert_eq!(container_of("/"), None);
        assert_eq!(container_of(""), None);
        assert_eq!(container_of("//docker//"), None);
        assert_eq!(container_of("/system.slice/sshd.service"), None);
        assert_eq!(container_of("/init.scope"), None);
    }

    /// A fresh directory removed at the end of the test.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(name).tempdir().unwrap()
    }

    fn ino(p: &Path) -> u64 {
        std::fs::metadata(p).unwrap().ino()
    }

    #[test]
    fn resolver_maps_inodes_to_paths() {
        let tmp = temp_dir("resolve");
        let root = &tmp.path();
        std::fs::create_dir_all(root.join("system.slice/docker-x.scope")).unwrap();
        std::fs::create_dir_all(root.join("user.slice")).unwrap();
        std::fs::write(root.join("cgroup.procs"), "").unwrap();
        std::os::unix::fs::symlink(root.join("user.slice"), root.join("link")).unwrap();

        let mut r = CgroupResolver::new(root);
        assert_eq!(r.resolve(ino(root)), Some("/"));
        assert_eq!(
            r.resolve(ino(&root.join("system.slice/docker-x.scope"))),
            Some("/system.slice/docker-x.scope")
        );
        assert_eq!(
            r.resolve(ino(&root.join("system.slice"))),
            Some("/system.slice")
        );
        // The symlink is not followed: the directory keeps its real name.
        assert_eq!(
            r.resolve(ino(&root.join("user.slice"))),
            Some("/user.slice")
        );
        assert!(!r.cache.values().any(|p| p.starts_with("/link")));
        // Files are not cgroups.
        assert_eq!(r.resolve(ino(&root.join("cgroup.procs"))), None);
        assert_eq!(r.resolve(u64::MAX), None);
    }

    #[test]
    fn resolver_rescans_after_interval() {
        let tmp = temp_dir("rescan");
        let root = &tmp.path();
        let mut r = CgroupResolver::new(root).with_rescan_interval(Duration::from_secs(3600));
        assert_eq!(r.resolve(ino(root)), Some("/"));

        let late = root.join("late.scope");
        std::fs::create_dir(&late).unwrap();
        // Within the interval the new cgroup is not looked for.
        assert_eq!(r.resolve(ino(&late)), None);

        r.rescan_interval = Duration::from_millis(20);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(r.resolve(ino(&late)), Some("/late.scope"));

        // Removed cgroups stay resolvable for events still in flight.
        let late_ino = ino(&late);
        std::fs::remove_dir(&late).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(r.resolve(u64::MAX), None);
        assert_eq!(r.resolve(late_ino), Some("/late.scope"));
    }

    #[test]
    fn cgroups_the_kernel_named_need_no_scan() {
        let tmp = temp_dir("learn");
        let mut r = CgroupResolver::new(tmp.path()).with_rescan_interval(Duration::from_secs(3600));
        assert_eq!(r.resolve(ino(tmp.path())), Some("/"));
        // Made and removed between two scans: only the kernel's record names it.
        r.learn(777_000, "/kubepods/pod1/abc".into());
        assert_eq!(r.resolve(777_000), Some("/kubepods/pod1/abc"));
        // A scan's name is not replaced, and nonsense is not learnt.
        r.learn(ino(tmp.path()), "/other".into());
        assert_eq!(r.resolve(ino(tmp.path())), Some("/"));
        r.learn(0, "/zero".into());
        r.learn(5, String::new());
        assert_eq!(r.resolve(0), None);
        assert_eq!(r.resolve(5), None);
    }

    #[test]
    fn resolver_handles_non_utf8_names_and_missing_root() {
        let tmp = temp_dir("utf8");
        let odd = tmp.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
        std::fs::create_dir(&odd).unwrap();
        let mut r = CgroupResolver::new(tmp.path());
        assert_eq!(r.resolve(ino(&odd)), Some("/caf\u{fffd}"));

        let mut missing = CgroupResolver::new(tmp.path().join("nonexistent"));
        assert_eq!(missing.resolve(1), None);
    }

    #[test]
    fn subtree_lists_the_cgroup_first_then_descendants() {
        let tmp = temp_dir("subtree");
        let root = &tmp.path();
        std::fs::create_dir_all(root.join("s/a/x")).unwrap();
        std::fs::create_dir_all(root.join("s/b")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        std::fs::write(root.join("s/cgroup.procs"), "").unwrap();
        let s = root.join("s");
        let ids = ids_below(ino(&s), &s);
        assert_eq!(ids[0], ino(&s));
        let mut rest = ids[1..].to_vec();
        rest.sort_unstable();
        let mut want = vec![
            ino(&root.join("s/a")),
            ino(&root.join("s/a/x")),
            ino(&root.join("s/b")),
        ];
        want.sort_unstable();
        assert_eq!(rest, want);

        let err = subtree_ids("/nonexistent/copyup-trace/cgroup").unwrap_err();
        assert!(err.to_string().contains("no such cgroup"), "{err}");
    }

    #[test]
    fn cgroup_id_lookup() {
        let tmp = temp_dir("lookup");
        let root = &tmp.path();
        std::fs::create_dir_all(root.join("system.slice/a.scope")).unwrap();
        std::fs::write(root.join("cgroup.procs"), "").unwrap();
        let yes = |_: &Path| Ok(true);
        let want = (
            ino(&root.join("system.slice/a.scope")),
            root.join("system.slice/a.scope"),
        );

        // Relative to the root, and as printed by the resolver.
        assert_eq!(
            cgroup_id_under(root, "system.slice/a.scope", yes).unwrap(),
            want
        );
        assert_eq!(
            cgroup_id_under(root, "/system.slice/a.scope", yes).unwrap(),
            want
        );
        // Absolute.
        let abs = root.join("system.slice/a.scope");
        assert_eq!(
            cgroup_id_under(root, abs.to_str().unwrap(), yes).unwrap(),
            want
        );
        assert_eq!(
            cgroup_id_under(root, "", yes).unwrap(),
            (ino(root), root.to_path_buf())
        );

        let err = cgroup_id_under(root, "system.slice/b.scope", yes).unwrap_err();
        assert!(err.to_string().contains("no such cgroup"), "{err}");
        let err = cgroup_id_under(root, "cgroup.procs", yes).unwrap_err();
        assert!(err.to_string().contains("not a cgroup2 directory"), "{err}");
        let err = cgroup_id_under(root, "bad\0name", yes).unwrap_err();
        assert!(!err.to_string().is_empty());
    }

    #[test]
    fn cgroup_id_needs_cgroup2() {
        let tmp = temp_dir("notcg2");
        // A temporary directory is not on cgroup2.
        let err = cgroup_id_of(tmp.path().to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("not a cgroup2 directory"), "{err}");
        let err = cgroup_id_of("/nonexistent/copyup-trace/cgroup").unwrap_err();
        assert!(err.to_string().contains("no such cgroup"), "{err}");
        assert!(!is_cgroup2(tmp.path()).unwrap());
    }

    #[test]
    fn real_cgroup2_root_when_present() {
        let root = Path::new(CGROUP2_ROOT);
        if !is_cgroup2(root).unwrap_or(false) {
            return;
        }
        let (id, path) = cgroup_id_of("/").unwrap();
        assert_eq!(id, ino(root));
        assert_eq!(path, root);
        let mut r = CgroupResolver::new(CGROUP2_ROOT);
        assert_eq!(r.resolve(id), Some("/"));
    }
}
