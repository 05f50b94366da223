//! Where overlay filesystems are mounted: maps an overlay superblock's device number, as the
//! kernel reports it, to a mount point from the host's mount table (`/proc/self/mountinfo`,
//! or `/proc/1/mountinfo` from another mount namespace), so that paths inside the overlay
//! can be shown as absolute paths.

use std::{
    ffi::OsString,
    os::unix::ffi::{OsStrExt, OsStringExt},
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use procfs::process::MountInfo;

use crate::hashing::IdMap;

pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The mount table of the host's init, and where its root is seen from here. A process in
/// its own mount namespace (a container with the host's pid namespace, a sandboxed
/// service) does not see overlays mounted after it started in its own table.
const HOST_MOUNTINFO: &str = "/proc/1/mountinfo";
const HOST_ROOT: &str = "/proc/1/root";

const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

struct Entry {
    mount_point: PathBuf,
    /// Mountinfo's superblock options, still escaped (`layers` parses them).
    super_options: Vec<u8>,
    /// Userspace encoding of the device, to compare with `stat(2)` results.
    user_dev: u64,
    /// When the mapping was last known to be current (loaded or checked).
    checked: Instant,
}

/// Overlay mounts (fstype `overlay`) by device number.
///
/// Only mounts of the overlay's root (mountinfo root `/`) are kept: a bind mount of a
/// subdirectory would give wrong absolute paths when joined with a path relative to the
/// overlay root. If a device is mounted several times, the first listed mount wins.
pub struct OverlayMounts {
    by_dev: IdMap<u32, Entry>,
    /// Where to reload from; `None` for a table built from text.
    source: Option<PathBuf>,
    /// Where the table's mount points are, seen from here (`/proc/1/root` for the host's
    /// table read from another mount namespace).
    root: Option<PathBuf>,
    last_load: Instant,
    reload_interval: Duration,
}

impl OverlayMounts {
    /// Reads the host's mount table: `/proc/self/mountinfo`, or `/proc/1/mountinfo` when
    /// init runs in another mount namespace and that can be read (pid 1 is the host's init
    /// with the host's pid namespace; otherwise it shares ours).
    pub fn load() -> Result<Self> {
        if other_mount_namespace() {
            if let Ok(mut m) = Self::load_from(HOST_MOUNTINFO) {
                m.root = Some(PathBuf::from(HOST_ROOT));
                return Ok(m);
            }
        }
        Self::load_from(MOUNTINFO)
    }

    /// Reads a mountinfo file; later reloads read the same file.
    pub fn load_from(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let by_dev = read_table(&path)?;
        Ok(Self {
            by_dev,
            source: Some(path),
            root: None,
            last_load: Instant::now(),
            reload_interval: RELOAD_INTERVAL,
        })
    }

    #[cfg(test)]
    /// Parses mountinfo text; the result never reloads.
    pub fn from_mountinfo(text: &str) -> Result<Self> {
        Ok(Self {
            by_dev: parse_table(text.as_bytes())?,
            source: None,
            root: None,
            last_load: Instant::now(),
            reload_interval: RELOAD_INTERVAL,
        })
    }

    #[cfg(test)]
    /// Sets how often a reload may happen (1 s by default).
    pub fn with_reload_interval(mut self, interval: Duration) -> Self {
        self.reload_interval = interval;
        self
    }

    /// The mount point of the overlay whose superblock has `s_dev == kernel_dev`.
    pub fn mount_point(&self, kernel_dev: u32) -> Option<&Path> {
        self.by_dev
            .get(&kernel_dev)
            .map(|e| e.mount_point.as_path())
    }

    /// The raw superblock options of the overlay `kernel_dev`, as mountinfo shows them.
    pub fn super_options(&self, kernel_dev: u32) -> Option<&[u8]> {
        self.by_dev
            .get(&kernel_dev)
            .map(|e| e.super_options.as_slice())
    }

    /// Like [`OverlayMounts::mount_point`], but rereads the mount table, at most once per reload
    /// interval, when `kernel_dev` is unknown (an overlay mounted after start) or when its known
    /// mount point no longer has that device (the overlay was unmounted and the anonymous device
    /// number reused by a newer overlay, as happens when containers come and go).
    pub fn mount_point_or_reload(&mut self, kernel_dev: u32) -> Option<&Path> {
        let now = Instant::now();
        let fresh = match self.by_dev.get_mut(&kernel_dev) {
            None => false,
            Some(_) if self.source.is_none() => true,
            Some(e) if now.duration_since(e.checked) < self.reload_interval => true,
            Some(e) => {
                let seen = match &self.root {
                    Some(root) => {
                        root.join(e.mount_point.strip_prefix("/").unwrap_or(&e.mount_point))
                    }
                    None => e.mount_point.clone(),
                };
                let same = std::fs::metadata(seen)
                    .map(|m| m.dev() == e.user_dev)
                    .unwrap_or(false);
                if same {
                    e.checked = now;
                }
                same
            }
        };
        // Without a reload there is nothing to return: the device is unknown or its mapping
        // just failed the check.
        if !fresh && !self.try_reload(now) {
            return None;
        }
        self.mount_point(kernel_dev)
    }

    /// Rereads the source if allowed by the rate limit; keeps the old table on failure.
    fn try_reload(&mut self, now: Instant) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        if now.duration_since(self.last_load) < self.reload_interval {
            return false;
        }
        self.last_load = now;
        match read_table(source) {
            Ok(by_dev) => {
                self.by_dev = by_dev;
                true
            }
            Err(_) => false,
        }
    }
}

/// Joins a mount point and a path relative to the mounted filesystem's root, as bytes since
/// neither is guaranteed to be UTF-8: `/merged` + `/a/b` is `/merged/a/b`, `/` + `/a` is `/a`,
/// and a relative path of `/` (or empty) is the mount point itself.
/// Whether pid 1 runs in another mount namespace than this process.
fn other_mount_namespace() -> bool {
    let tables = || {
        Some((
            std::fs::read(MOUNTINFO).ok()?,
            std::fs::read(HOST_MOUNTINFO).ok()?,
        ))
    };
    namespaces_differ(
        std::fs::read_link("/proc/self/ns/mnt").ok(),
        std::fs::read_link("/proc/1/ns/mnt").ok(),
        tables,
    )
}

/// Whether our mount namespace is not PID 1's, from the two `ns/mnt` links, or, where PID
/// 1's is closed to us (a process with fewer capabilities than PID 1 and no
/// CAP_SYS_PTRACE, as a pod with only the capabilities tracing needs), from the two
/// mount tables, which stay readable: one namespace lists the same mounts with the same
/// ids. Tables that differ are read again once, in case a mount came or went between
/// the two reads.
fn namespaces_differ(
    own: Option<PathBuf>,
    init: Option<PathBuf>,
    mut tables: impl FnMut() -> Option<(Vec<u8>, Vec<u8>)>,
) -> bool {
    match (own, init) {
        (Some(own), Some(init)) => own != init,
        (Some(_), None) => (0..2).all(|_| tables().is_some_and(|(a, b)| a != b)),
        _ => false,
    }
}

pub fn join_mount(mount_point: &Path, rel: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    join_mount_into(mount_point, rel, &mut out);
    out
}

/// `join_mount`, appended to `out`.
pub fn join_mount_into(mount_point: &Path, rel: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let mp = mount_point.as_os_str().as_bytes();
    let mp = trim_trailing_slashes(mp);
    let rel = trim_trailing_slashes(rel);
    let rel = match rel.iter().position(|&b| b != b'/') {
        Some(start) => &rel[start..],
        None => &[][..],
    };
    out.reserve(mp.len() + rel.len() + 1);
    out.extend_from_slice(mp);
    if !rel.is_empty() || out.len() == start {
        out.push(b'/');
    }
    out.extend_from_slice(rel);
}

fn trim_trailing_slashes(mut b: &[u8]) -> &[u8] {
    while let [rest @ .., b'/'] = b {
        b = rest;
    }
    b
}

fn read_table(path: &Path) -> Result<IdMap<u32, Entry>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_table(&bytes).with_context(|| format!("parsing {}", path.display()))
}

fn parse_table(bytes: &[u8]) -> Result<IdMap<u32, Entry>> {
    let now = Instant::now();
    let mut by_dev = IdMap::default();
    let mut parsed = 0usize;
    let mut first_error = None;
    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        // procfs parses a `&str`; a line with non-UTF-8 bytes (possible in paths) is parsed
        // lossily for the fields used here, and the mount point is taken from the raw bytes.
        let info = match MountInfo::from_line(&String::from_utf8_lossy(line)) {
            Ok(info) => info,
            Err(e) => {
                // One odd line should not hide every other overlay.
                first_error.get_or_insert(e);
                continue;
            }
        };
        parsed += 1;
        if info.fs_type != "overlay" || info.root != "/" {
            continue;
        }
        let Some((major, minor)) = parse_majmin(&info.majmin) else {
            continue;
        };
        let Some(kernel_dev) = kernel_dev(major, minor) else {
            continue;
        };
        // procfs keeps mountinfo's octal escapes (`\040` for a space) in `mount_point`.
        let Some(raw_mount_point) = line.split(|&b| b == b' ').nth(4) else {
            continue;
        };
        let mount_point = PathBuf::from(OsString::from_vec(unescape_octal(raw_mount_point)));
        // The last field; fields before it contain no raw space.
        let super_options = line.rsplit(|&b| b == b' ').next().unwrap_or_default();
        by_dev.entry(kernel_dev).or_insert(Entry {
            mount_point,
            super_options: super_options.to_vec(),
            user_dev: libc::makedev(major, minor),
            checked: now,
        });
    }
    if parsed == 0 {
        if let Some(e) = first_error {
            bail!("no valid mountinfo line: {e}");
        }
    }
    Ok(by_dev)
}

fn parse_majmin(s: &str) -> Option<(u32, u32)> {
    let (major, minor) = s.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The kernel's internal `dev_t` (12-bit major above a 20-bit minor), as in `sb->s_dev`.
fn kernel_dev(major: u32, minor: u32) -> Option<u32> {
    (major < (1 << 12) && minor < (1 << 20)).then_some((major << 20) | minor)
}

/// Undoes the kernel's `\ooo` escaping of space, tab, newline and backslash in mountinfo paths.
pub fn unescape_octal(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            if let Some(&[a, b, c]) = raw.get(i + 1..i + 4) {
                let octal = |d: u8| (b'0'..=b'7').contains(&d).then(|| u16::from(d - b'0'));
                if let (Some(a), Some(b), Some(c)) = (octal(a), octal(b), octal(c)) {
                    let v = (a << 6) | (b << 3) | c;
                    if let Ok(byte) = u8::try_from(v) {
                        out.push(byte);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_LOWER: &str = "lowerdir=/var/lib/docker/overlay2/l/7GQX5ZXOD7CYDC3NZHE2RN2JKM:/var/lib/docker/overlay2/l/JZ5ZTRPSZ3IEEK3SKQYUEJT5VO:/var/lib/docker/overlay2/l/RZ7TWCJXNAFHV4GHG4UO5FHJZP:/var/lib/docker/overlay2/l/6Y4XK6FQWNMQG2GNWQB2N5CGRA:/var/lib/docker/overlay2/l/QC5E6DYFWJ5DK3KHNQKKH6VKRT";

    fn sample() -> String {
        [
            "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw,errors=remount-ro".to_string(),
            "23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw".to_string(),
            "24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw".to_string(),
            "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot".to_string(),
            // Same minor as the first overlay below, different major.
            "41 22 259:52 / /data rw,relatime shared:30 - xfs /dev/nvme1n1p1 rw,attr2,inode64,noquota".to_string(),
            format!("512 22 0:52 / /var/lib/docker/overlay2/9c1f5e2b3a4d/merged rw,relatime shared:280 - overlay overlay rw,{DOCKER_LOWER},upperdir=/var/lib/docker/overlay2/9c1f5e2b3a4d/diff,workdir=/var/lib/docker/overlay2/9c1f5e2b3a4d/work,nouserxattr"),
            // A second mount of the same overlay: the first listed wins.
            "513 22 0:52 / /mnt/again rw,relatime shared:280 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w".to_string(),
            // A bind mount of a subdirectory of another overlay is not usable for joining.
            "514 22 0:60 /sub /mnt/sub rw,relatime shared:290 - overlay overlay rw,lowerdir=/l2,upperdir=/u2,workdir=/w2".to_string(),
            "515 22 0:61 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/3f4e/rootfs rw,relatime shared:300 - overlay overlay rw,lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs:/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/11/fs,upperdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/13/fs,workdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/13/work".to_string(),
            // Mount point with a space, a tab and a backslash, escaped by the kernel.
            r"516 22 0:62 / /mnt/my\040merged\011dir\134x rw,relatime - overlay overlay rw,lowerdir=/a,upperdir=/b,workdir=/c".to_string(),
            // fuse-overlayfs is not the kernel overlay filesystem.
            "517 22 0:63 / /home/u/.local/share/containers/storage/overlay/abc/merged rw,nodev,relatime - fuse.fuse-overlayfs fuse-overlayfs rw,user_id=1000,group_id=1000".to_string(),
            // The root filesystem itself is an overlay (live systems, containers).
            "518 22 0:64 / / rw,relatime - overlay overlay rw,lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work".to_string(),
        ]
        .join("\n")
            + "\n"
    }

    fn dev(major: u32, minor: u32) -> u32 {
        (major << 20) | minor
    }

    #[test]
    fn finds_overlays_by_kernel_dev() {
        let m = OverlayMounts::from_mountinfo(&sample()).unwrap();
        assert_eq!(
            m.mount_point(dev(0, 52)),
            Some(Path::new("/var/lib/docker/overlay2/9c1f5e2b3a4d/merged"))
        );
        assert_eq!(
            m.mount_point(dev(0, 61)),
            Some(Path::new(
                "/run/containerd/io.containerd.runtime.v2.task/k8s.io/3f4e/rootfs"
            ))
        );
        assert_eq!(m.mount_point(dev(0, 64)), Some(Path::new("/")));
    }

    #[test]
    fn keeps_raw_super_options() {
        let m = OverlayMounts::from_mountinfo(&sample()).unwrap();
        assert_eq!(
            m.super_options(dev(0, 62)),
            Some(&b"rw,lowerdir=/a,upperdir=/b,workdir=/c"[..])
        );
        assert_eq!(m.super_options(dev(0, 99)), None);
    }

    #[test]
    fn ignores_non_overlays_and_subdir_mounts() {
        let m = OverlayMounts::from_mountinfo(&sample()).unwrap();
        assert_eq!(m.mount_point(dev(259, 52)), None);
        assert_eq!(m.mount_point(dev(259, 2)), None);
        assert_eq!(m.mount_point(dev(0, 26)), None);
        assert_eq!(m.mount_point(dev(0, 60)), None);
        assert_eq!(m.mount_point(dev(0, 63)), None);
        assert_eq!(m.mount_point(dev(0, 99)), None);
    }

    #[test]
    fn procfs_keeps_mountinfo_escapes() {
        let line = sample().lines().nth(9).unwrap().to_string();
        let info = MountInfo::from_line(&line).unwrap();
        assert_eq!(
            info.mount_point,
            Path::new(r"/mnt/my\040merged\011dir\134x")
        );
    }

    #[test]
    fn unescapes_mount_points() {
        let m = OverlayMounts::from_mountinfo(&sample()).unwrap();
        assert_eq!(
            m.mount_point(dev(0, 62)),
            Some(Path::new("/mnt/my merged\tdir\\x"))
        );
    }

    #[test]
    fn unescape_leaves_malformed_sequences() {
        assert_eq!(unescape_octal(br"a\040b"), b"a b");
        assert_eq!(unescape_octal(br"a\04"), br"a\04");
        assert_eq!(unescape_octal(br"a\09x"), br"a\09x");
        assert_eq!(unescape_octal(br"a\777"), br"a\777");
        assert_eq!(unescape_octal(br"\\134"), br"\\");
        assert_eq!(unescape_octal(b"tail\\"), b"tail\\");
    }

    #[test]
    fn non_utf8_mount_point_is_kept_as_bytes() {
        let mut text = b"600 22 0:70 / /mnt/caf\xe9 rw - overlay overlay rw,lowerdir=/l\xff,upperdir=/u,workdir=/w\n".to_vec();
        text.extend_from_slice(sample().as_bytes());
        let table = parse_table(&text).unwrap();
        assert_eq!(
            table[&dev(0, 70)].mount_point.as_os_str().as_bytes(),
            b"/mnt/caf\xe9"
        );
        assert!(table.contains_key(&dev(0, 52)));
    }

    #[test]
    fn bad_lines_are_skipped_but_garbage_is_an_error() {
        let text = format!("garbage\n{}", sample());
        let m = OverlayMounts::from_mountinfo(&text).unwrap();
        assert!(m.mount_point(dev(0, 52)).is_some());
        assert!(OverlayMounts::from_mountinfo("not mountinfo at all\n").is_err());
        let empty = OverlayMounts::from_mountinfo("").unwrap();
        assert_eq!(empty.mount_point(dev(0, 52)), None);
    }

    #[test]
    fn unrepresentable_devices_are_skipped() {
        let text = "700 22 4096:1 / /x rw - overlay overlay rw\n700 22 0:1048576 / /y rw - overlay overlay rw\n";
        let m = OverlayMounts::from_mountinfo(text).unwrap();
        assert!(m.by_dev.is_empty());
    }

    #[test]
    fn loads_own_mountinfo() {
        OverlayMounts::load().unwrap();
    }

    /// A fresh directory removed at the end of the test.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new().prefix(name).tempdir().unwrap()
    }

    fn overlay_line(majmin: &str, mount_point: &Path) -> String {
        format!(
            "900 22 {majmin} / {} rw - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w\n",
            mount_point.display()
        )
    }

    #[test]
    fn reloads_unknown_devices_rate_limited() {
        let tmp = temp_dir("reload");
        let file = tmp.path().join("mountinfo");
        std::fs::write(&file, sample()).unwrap();
        let mut m = OverlayMounts::load_from(&file)
            .unwrap()
            .with_reload_interval(Duration::from_secs(3600));

        let mut text = sample();
        text.push_str(&overlay_line("0:80", Path::new("/late")));
        std::fs::write(&file, text).unwrap();

        // Too soon after the initial load.
        assert_eq!(m.mount_point_or_reload(dev(0, 80)), None);

        m.reload_interval = Duration::ZERO;
        assert_eq!(
            m.mount_point_or_reload(dev(0, 80)),
            Some(Path::new("/late"))
        );
        // Still unknown after a reload: None, no panic.
        assert_eq!(m.mount_point_or_reload(dev(0, 81)), None);
    }

    #[test]
    fn reused_device_is_noticed() {
        let tmp = temp_dir("reuse");
        let file = tmp.path().join("mountinfo");
        let old = tmp.path().join("old");
        std::fs::create_dir(&old).unwrap();
        // A device the temporary directory is not on, so that the check fails.
        let real = std::fs::metadata(&old).unwrap().dev();
        let minor = if real == libc::makedev(0, 90) { 91 } else { 90 };
        let majmin = format!("0:{minor}");
        std::fs::write(&file, overlay_line(&majmin, &old)).unwrap();
        let mut m = OverlayMounts::load_from(&file)
            .unwrap()
            .with_reload_interval(Duration::ZERO);
        std::fs::write(&file, overlay_line(&majmin, Path::new("/new"))).unwrap();
        assert_eq!(
            m.mount_point_or_reload(dev(0, minor)),
            Some(Path::new("/new"))
        );
    }

    #[test]
    fn verified_mount_point_is_kept_without_reload() {
        let tmp = temp_dir("verified");
        let file = tmp.path().join("mountinfo");
        let mp = tmp.path().join("mp");
        std::fs::create_dir(&mp).unwrap();
        let st_dev = std::fs::metadata(&mp).unwrap().dev();
        let (major, minor) = (libc::major(st_dev), libc::minor(st_dev));
        let Some(kdev) = kernel_dev(major, minor) else {
            return;
        };
        std::fs::write(&file, overlay_line(&format!("{major}:{minor}"), &mp)).unwrap();
        let mut m = OverlayMounts::load_from(&file)
            .unwrap()
            .with_reload_interval(Duration::ZERO);
        std::fs::write(
            &file,
            overlay_line(&format!("{major}:{minor}"), Path::new("/else")),
        )
        .unwrap();
        assert_eq!(m.mount_point_or_reload(kdev), Some(mp.as_path()));
    }

    #[test]
    fn join_cases() {
        let j = |mp: &str, rel: &[u8]| join_mount(Path::new(mp), rel);
        assert_eq!(j("/merged", b"/a/b"), b"/merged/a/b");
        assert_eq!(j("/", b"/a"), b"/a");
        assert_eq!(j("/merged", b"/"), b"/merged");
        assert_eq!(j("/merged", b""), b"/merged");
        assert_eq!(j("/", b"/"), b"/");
        assert_eq!(j("/", b""), b"/");
        assert_eq!(j("/merged/", b"a"), b"/merged/a");
        assert_eq!(j("/merged", b"//a//"), b"/merged/a");
        assert_eq!(j("/merged", b"/caf\xe9"), b"/merged/caf\xe9");
    }

    #[test]
    fn namespace_from_links_or_from_tables() {
        let link = |s: &str| Some(PathBuf::from(s));
        let never = || -> Option<(Vec<u8>, Vec<u8>)> { panic!("tables read") };
        assert!(!namespaces_differ(link("mnt:[1]"), link("mnt:[1]"), never));
        assert!(namespaces_differ(link("mnt:[2]"), link("mnt:[1]"), never));
        let same = || Some((b"22 1 0:1 / / rw\n".to_vec(), b"22 1 0:1 / / rw\n".to_vec()));
        assert!(!namespaces_differ(link("mnt:[2]"), None, same));
        let other = || {
            Some((
                b"900 899 0:1 / / rw\n".to_vec(),
                b"22 1 0:1 / / rw\n".to_vec(),
            ))
        };
        assert!(namespaces_differ(link("mnt:[2]"), None, other));
        // A mount between the two reads of one namespace's table.
        let mut reads = 0;
        let once = || {
            reads += 1;
            let extra: &[u8] = if reads == 1 {
                b"23 22 0:2 / /x rw\n"
            } else {
                b""
            };
            Some((
                [b"22 1 0:1 / / rw\n", extra].concat(),
                b"22 1 0:1 / / rw\n".to_vec(),
            ))
        };
        assert!(!namespaces_differ(link("mnt:[2]"), None, once));
        assert!(!namespaces_differ(link("mnt:[2]"), None, || None));
    }
}
