//! Debian guest kernels for the qemu tests, downloaded once into a cache. Booting them is
//! `guest`'s job.
//!
//! Cache layout (under [`cache_dir`]), one directory per `uname -r`:
//!   kernels/<version>/vmlinuz       boot/vmlinuz-<version> from linux-image-<abi>-amd64-unsigned
//!   kernels/<version>/overlay.ko    uncompressed overlayfs module
//!   kernels/<version>/config        boot/config-<version>, to check kernel options
//!   kernels/<version>/.complete     written last; a directory without it is redone
//! The rest of the package (hundreds of MB of modules) is not kept.

use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::{
    cmd::{capture, capture_bytes, run_quiet},
    progress::Step,
    setup::apt_get_update,
};

pub struct GuestKernel {
    /// "6.1" or "6.12".
    pub series: String,
    /// `uname -r` inside the guest, e.g. "6.1.0-41-amd64" or "6.12.57+deb12-amd64".
    pub version: String,
    pub vmlinuz: PathBuf,
    /// An uncompressed overlay.ko ready for insmod.
    pub overlay_ko: PathBuf,
}

const MARKER: &str = ".complete";

/// $COPYUP_TRACE_CACHE, else $XDG_CACHE_HOME/copyup-trace, else ~/.cache/copyup-trace.
pub fn cache_dir() -> Result<PathBuf> {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = non_empty("COPYUP_TRACE_CACHE") {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = non_empty("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(d).join("copyup-trace"));
    }
    let home = non_empty("HOME")
        .ok_or_else(|| anyhow!("none of COPYUP_TRACE_CACHE, XDG_CACHE_HOME, HOME is set"))?;
    Ok(PathBuf::from(home).join(".cache/copyup-trace"))
}

/// For each series ("6.1", "6.12") makes sure the newest amd64 kernel apt knows of is in the
/// cache, downloading and extracting it if needed.
pub fn ensure_kernels(series: &[&str]) -> Result<Vec<GuestKernel>> {
    let dir = cache_dir()?.join("kernels");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut available = apt_kernel_abis()?;
    if available.is_empty() {
        apt_get_update()?;
        available = apt_kernel_abis()?;
    }
    let mut updated = false;
    let mut out = Vec::new();
    for &s in series {
        let abi = loop {
            match newest_for_series(&available, s) {
                Some(abi) => break abi,
                // A stale package list may predate the series; refresh once.
                None if !updated => {
                    apt_get_update()?;
                    updated = true;
                    available = apt_kernel_abis()?;
                }
                None => bail!(
                    "apt knows no linux-image-{s}.*-amd64-unsigned package (looked with \
                     `apt-cache search --names-only '^linux-image-.*-amd64-unsigned$'`)"
                ),
            }
        };
        let kernel = match ensure_one(&dir, s, &abi) {
            Ok(k) => k,
            // The mirror may have dropped the build our lists name: refresh and retry.
            Err(e) if !updated => {
                eprintln!("kernel {abi}: {e:#}; running apt-get update and retrying");
                apt_get_update()?;
                updated = true;
                available = apt_kernel_abis()?;
                let abi = newest_for_series(&available, s)
                    .ok_or_else(|| anyhow!("no {s} kernel left after apt-get update"))?;
                ensure_one(&dir, s, &abi)?
            }
            Err(e) => return Err(e),
        };
        out.push(kernel);
    }
    Ok(out)
}

/// The `<ver>` parts of `linux-image-<ver>-amd64-unsigned` package names apt knows, e.g.
/// "6.1.0-56" or "6.12.117+deb12". Flavours such as -cloud and -rt are left out.
fn apt_kernel_abis() -> Result<Vec<String>> {
    let listing = capture(Command::new("apt-cache").args([
        "search",
        "--names-only",
        "^linux-image-.*-amd64-unsigned$",
    ]))?;
    Ok(listing
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| {
            name.strip_prefix("linux-image-")?
                .strip_suffix("-amd64-unsigned")
        })
        // A flavour shows up as an all-letter segment: 6.1.0-56-cloud, 6.12.117+deb12-rt.
        .filter(|abi| {
            !abi.split('-')
                .any(|seg| seg.chars().all(|c| c.is_ascii_alphabetic()))
        })
        .map(str::to_owned)
        .collect())
}

/// "6.1.0-56" -> "6.1"; "6.12.117+deb12" -> "6.12".
fn series_of(abi: &str) -> Option<String> {
    let mut parts = abi.split(|c: char| !c.is_ascii_digit());
    let (major, minor) = (parts.next()?, parts.next()?);
    if major.is_empty() || minor.is_empty() {
        return None;
    }
    Some(format!("{major}.{minor}"))
}

fn newest_for_series(abis: &[String], series: &str) -> Option<String> {
    let mut best: Option<&String> = None;
    for abi in abis
        .iter()
        .filter(|a| series_of(a).as_deref() == Some(series))
    {
        if best.is_none_or(|b| version_cmp(abi, b) == Ordering::Greater) {
            best = Some(abi);
        }
    }
    best.cloned()
}

/// Debian-style ordering for the simple version strings kernel ABIs use: runs of digits
/// compare numerically, everything else character by character, so "6.1.0-56" > "6.1.0-9"
/// and "6.12.117+deb12" > "6.12.57+deb12".
fn version_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count();
    &d[n..]
}

fn ensure_one(dir: &Path, series: &str, abi: &str) -> Result<GuestKernel> {
    let version = format!("{abi}-amd64");
    let final_dir = dir.join(&version);
    if !is_complete(&final_dir) {
        // Work in a private directory and rename it into place at the end, so an interrupted
        // or concurrent run never leaves a half-extracted kernel that looks complete.
        let work = dir.join(format!(".{version}.tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let res = download_and_extract(&work, abi, &version);
        if let Err(e) = res {
            let _ = fs::remove_dir_all(&work);
            return Err(e);
        }
        if final_dir.exists() {
            fs::remove_dir_all(&final_dir)
                .with_context(|| format!("removing incomplete {}", final_dir.display()))?;
        }
        if fs::rename(&work, &final_dir).is_err() {
            // Another run finished the same kernel first; keep theirs.
            let _ = fs::remove_dir_all(&work);
            if !is_complete(&final_dir) {
                bail!(
                    "could not move {} to {}",
                    work.display(),
                    final_dir.display()
                );
            }
        }
    }
    Ok(GuestKernel {
        series: series.to_owned(),
        vmlinuz: final_dir.join("vmlinuz"),
        overlay_ko: final_dir.join("overlay.ko"),
        version,
    })
}

fn is_complete(dir: &Path) -> bool {
    [MARKER, "vmlinuz", "overlay.ko"]
        .iter()
        .all(|f| dir.join(f).is_file())
}

fn download_and_extract(work: &Path, abi: &str, version: &str) -> Result<()> {
    let pkg = format!("linux-image-{abi}-amd64-unsigned");
    let dl = work.join("download");
    fs::create_dir_all(&dl)?;
    download(&pkg, &dl).with_context(|| format!("downloading {pkg}"))?;
    let unpacking = Step::start(format!("unpacking {pkg}"));
    let deb = fs::read_dir(&dl)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| anyhow!("`apt-get download {pkg}` left no .deb in {}", dl.display()))?;

    let root = work.join("root");
    run_quiet(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))
        .with_context(|| format!("extracting {}", deb.display()))?;
    // The .deb is only needed once.
    fs::remove_dir_all(&dl)?;

    let boot = root.join("boot");
    for (name, required) in [("vmlinuz", true), ("config", false)] {
        let src = boot.join(format!("{name}-{version}"));
        if src.is_file() {
            fs::rename(&src, work.join(name))
                .with_context(|| format!("moving {}", src.display()))?;
        } else if required {
            bail!("{pkg} has no boot/{name}-{version}");
        }
    }
    let ovl_dir = root.join(format!("lib/modules/{version}/kernel/fs/overlayfs"));
    let dest = work.join("overlay.ko");
    let plain = ovl_dir.join("overlay.ko");
    let xz = ovl_dir.join("overlay.ko.xz");
    if plain.is_file() {
        fs::copy(&plain, &dest).with_context(|| format!("copying {}", plain.display()))?;
    } else if xz.is_file() {
        // 6.12 ships compressed modules; busybox insmod wants a plain ELF.
        let data = capture_bytes(Command::new("xz").arg("-dc").arg(&xz))
            .context("decompressing with xz (package xz-utils)")?;
        fs::write(&dest, &data).with_context(|| format!("writing {}", dest.display()))?;
    } else {
        bail!(
            "{pkg} has neither overlay.ko nor overlay.ko.xz in {}",
            ovl_dir.display()
        );
    }
    fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    fs::write(work.join(MARKER), format!("{pkg}\n"))?;
    unpacking.done();
    Ok(())
}

/// `apt-get download PKG` into `dir`, showing the bytes that have arrived.
fn download(pkg: &str, dir: &Path) -> Result<()> {
    let size = capture(Command::new("apt-cache").args(["show", "--no-all-versions", pkg]))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Size:"))
                .and_then(|n| n.trim().parse().ok())
        });
    let what = format!("downloading {pkg}");
    let step = match size {
        Some(n) => Step::with_bytes(what, n),
        None => Step::start(what),
    };
    let finished = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !finished.load(AtomicOrdering::Relaxed) {
                step.bytes(dir_size(dir));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let res = run_quiet(
            Command::new("apt-get")
                .args(["download", "-q", pkg])
                .current_dir(dir),
        );
        finished.store(true, AtomicOrdering::Relaxed);
        res
    })?;
    step.done();
    Ok(())
}

/// Bytes of the files under `dir` (apt keeps a partial download in a subdirectory).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_kernel_abis() {
        assert_eq!(version_cmp("6.1.0-56", "6.1.0-9"), Ordering::Greater);
        assert_eq!(
            version_cmp("6.12.117+deb12", "6.12.57+deb12"),
            Ordering::Greater
        );
        assert_eq!(version_cmp("6.1.0-9", "6.1.0-9"), Ordering::Equal);
        let abis: Vec<String> = ["6.1.0-9", "6.1.0-56", "6.12.9+deb12", "6.12.117+deb12"]
            .map(String::from)
            .to_vec();
        assert_eq!(newest_for_series(&abis, "6.1").unwrap(), "6.1.0-56");
        assert_eq!(newest_for_series(&abis, "6.12").unwrap(), "6.12.117+deb12");
        assert_eq!(series_of("6.12.117+deb12").as_deref(), Some("6.12"));
    }
}
