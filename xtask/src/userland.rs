//! The Debian userland guest's root filesystem: a bookworm `mmdebstrap --variant=minbase`
//! tree with the container runtimes (podman, docker, containerd) and the tools other
//! scenario families need, packed once as a cpio archive the guest boots from. Booting it is
//! `guest`'s job; what runs in it is the scenario families'.
//!
//! Cache layout (under [`cache_dir`]):
//!   userland/<key>/rootfs.cpio   the root filesystem (newc cpio, uncompressed: TCG unpacks
//!                                an uncompressed archive several times faster)
//!   userland/<key>/.complete     written last; a directory without it is redone
//! where `<key>` is a hash of everything that decides the tree ([`recipe`]): a change to the
//! package list builds a new one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{cmd::run_quiet, kernels::cache_dir, progress::Step};

/// The suite the tree is built from: the machine's own, so its mirror and keyring serve it.
const SUITE: &str = "bookworm";

/// Packages on top of minbase. podman, docker and containerd are the runtimes whose
/// containers are traced; prometheus and curl are for scraping the tool's metrics; kmod
/// loads overlay.ko; iproute2 brings up loopback; systemd is PID 1 in the boot that runs
/// the packaged service as shipped (the `deb` family; the other families' boot does not
/// start it).
pub const PACKAGES: &[&str] = &[
    "podman",
    "crun",
    "docker.io",
    "containerd",
    "prometheus",
    "curl",
    "kmod",
    "iproute2",
    "systemd",
];

/// Paths left out of the tree (dpkg `path-exclude` patterns): documentation, and the
/// prometheus web UI's JavaScript libraries (218 MB the HTTP API does not need).
const EXCLUDES: &[&str] = &[
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/javascript/*",
];

/// Bumped when the way the tree is made changes in a way the lists above do not show.
const RECIPE_VERSION: u32 = 1;

/// A built root filesystem.
pub struct Rootfs {
    pub cpio: PathBuf,
}

/// Everything the tree depends on, as one string; its hash names the cache entry.
fn recipe() -> String {
    format!(
        "v{RECIPE_VERSION} {SUITE} minbase include={} exclude={}",
        PACKAGES.join(","),
        EXCLUDES.join(",")
    )
}

/// FNV-1a: a stable hash for a cache key (std's hasher may change between releases).
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The cached root filesystem, built first if the package list changed or none exists.
/// mmdebstrap and cpio come from `setup`.
pub fn ensure_rootfs() -> Result<Rootfs> {
    let dir = cache_dir()?
        .join("userland")
        .join(format!("{SUITE}-{:016x}", fnv1a(&recipe())));
    let cpio = dir.join("rootfs.cpio");
    if dir.join(".complete").exists() && cpio.exists() {
        return Ok(Rootfs { cpio });
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let step = Step::start(format!(
        "building the Debian {SUITE} userland guest (mmdebstrap: {})",
        PACKAGES.join(" ")
    ));
    // A per-process work directory: another run building the same tree at the same time
    // does not trip over this one; the last to finish renames its archive into place.
    let work = dir.join(format!("build-{}", std::process::id()));
    let res = build(&work, &cpio);
    let _ = fs::remove_dir_all(&work);
    res?;
    fs::write(dir.join(".complete"), recipe())?;
    step.done();
    Ok(Rootfs { cpio })
}

fn build(work: &Path, cpio: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work).with_context(|| format!("creating {}", work.display()))?;
    let root = work.join("root");
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--variant=minbase", "--mode=root", "--quiet"])
        .arg(format!("--include={}", PACKAGES.join(",")));
    for x in EXCLUDES {
        cmd.arg(format!("--dpkgopt=path-exclude={x}"));
    }
    cmd.arg(SUITE)
        .arg(&root)
        .arg(crate::kernels::host_debian_uri()?);
    run_quiet(&mut cmd).context("mmdebstrap (needs root and the Debian archive)")?;

    // GNU cpio keeps hard links, device nodes, owners and setuid bits as they are.
    let tmp = work.join("rootfs.cpio");
    let out = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let find = Command::new("sh")
        .arg("-c")
        .arg("find . -xdev -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --quiet")
        .current_dir(&root)
        .stdout(out)
        .status()
        .context("running find | cpio")?;
    anyhow::ensure!(
        find.success(),
        "packing {} with cpio: {find}",
        root.display()
    );
    fs::rename(&tmp, cpio).with_context(|| format!("moving the archive to {}", cpio.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_follows_the_package_list() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert!(recipe().contains("podman,crun,docker.io,containerd,prometheus,curl"));
    }
}
