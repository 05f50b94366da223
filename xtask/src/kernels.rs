//! Debian guest kernels for the qemu tests, downloaded once into a cache. Booting them is
//! `guest`'s job.
//!
//! Five kernel lines ([`LINES`]): for amd64, 6.1 and 6.12 from the machine's own apt
//! sources (bookworm), 5.10 (bullseye), 7.2 (sid) and 7.3 (trixie-backports) from a private
//! apt state under the cache (`apt/`) that points at the machine's own Debian mirror; for
//! arm64, every line from a second private state (`apt-arm64/`, `arch=arm64` sources and
//! `APT::Architectures=arm64`), where 6.12 is trixie's build. The machine's apt
//! configuration and dpkg architectures are never changed. The newest build of each line
//! is chosen at run time. The arm64 guest's busybox (`busybox-static:arm64`) comes from
//! the same arm64 state ([`busybox`]).
//!
//! Cache layout (under [`cache_dir`]), one directory per `uname -r`:
//!   kernels/<version>/vmlinuz       the kernel image
//!   kernels/<version>/overlay.ko    uncompressed overlayfs module
//!   kernels/<version>/config        the kernel's config, to check kernel options
//!   kernels/<version>/.complete     written last; a directory without it is redone
//!   apt/sources.list, apt/lists/, apt/cache/, apt/updated   the private apt state
//!   apt-arm64/...                   the same for arm64
//!   busybox/<version>-arm64/busybox the arm64 guest's static busybox
//! The rest of the packages (hundreds of MB of modules) is not kept.

use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use copyup_trace_common::arch::Arch;

use crate::{
    cmd::{capture, capture_bytes, run_quiet},
    progress::Step,
    setup::apt_get_update,
};

pub struct GuestKernel {
    /// "5.10", "6.1", "6.12", "7.2" or "7.3".
    pub series: String,
    /// `uname -r` inside the guest, e.g. "6.1.0-41-amd64" or "7.3.4+deb13-arm64".
    pub version: String,
    /// The guest's CPU architecture, which the kernel is built for.
    pub arch: Arch,
    pub vmlinuz: PathBuf,
    /// An uncompressed overlay.ko ready for insmod.
    pub overlay_ko: PathBuf,
}

const MARKER: &str = ".complete";

/// Which apt configuration knows a kernel line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Archive {
    /// The machine's own sources (bookworm).
    Host,
    /// The private state under the cache: bullseye, bookworm, trixie, trixie-backports, sid.
    Private,
}

impl Archive {
    /// Where `line`'s kernels for `arch` come from: the machine's own sources serve only
    /// its own architecture.
    fn of(line: &Line, arch: Arch) -> Archive {
        match arch {
            Arch::X86_64 => line.archive,
            Arch::Aarch64 => Archive::Private,
        }
    }
}

/// How a kernel line is packaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Packaging {
    /// `linux-image-<abi>-<arch>-unsigned` (`amd64`, `arm64`): boot/vmlinuz-<version>,
    /// boot/config-<version> and the modules under lib/modules/<version>.
    Unsigned,
    /// From 7.x `linux-image-<abi>-<arch>` is a meta package: the kernel is in
    /// `linux-binary-<abi>-<arch>` (usr/lib/modules/<version>/vmlinuz), the modules in
    /// `linux-modules-<abi>-<arch>`, the config in `linux-base-<abi>-<arch>`.
    Split,
}

struct Line {
    series: &'static str,
    archive: Archive,
    packaging: Packaging,
}

/// The series of every line, oldest first: "5.10", "6.1", ...
pub fn series() -> impl Iterator<Item = &'static str> {
    LINES.iter().map(|l| l.series)
}

/// The kernel lines `cargo xtask test` knows, oldest first: 5.10 (bullseye), 6.1 and 6.12
/// (bookworm), 7.2 (sid), 7.3 (trixie-backports). 6.12 comes from bookworm (6.12.N+deb12); the
/// private state's trixie builds (+deb13) of it are not used.
const LINES: &[Line] = &[
    Line {
        series: "5.10",
        archive: Archive::Private,
        packaging: Packaging::Unsigned,
    },
    Line {
        series: "6.1",
        archive: Archive::Host,
        packaging: Packaging::Unsigned,
    },
    Line {
        series: "6.12",
        archive: Archive::Host,
        packaging: Packaging::Unsigned,
    },
    Line {
        series: "7.2",
        archive: Archive::Private,
        packaging: Packaging::Split,
    },
    Line {
        series: "7.3",
        archive: Archive::Private,
        packaging: Packaging::Split,
    },
];

/// The suites of the private apt state.
const PRIVATE_SUITES: &[&str] = &["bullseye", "bookworm", "trixie", "trixie-backports", "sid"];

/// Suite names that mark a sources entry as the Debian archive itself (not the security
/// archive, not a third-party repository).
const DEBIAN_SUITES: &[&str] = &[
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
];

/// The private package lists are refreshed when older than this.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

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

/// For each series ("5.10", "6.1", "6.12", "7.2", "7.3") makes sure the newest `arch`
/// kernel apt knows of is in the cache, downloading and extracting it if needed.
pub fn ensure_kernels(series: &[&str], arch: Arch) -> Result<Vec<GuestKernel>> {
    let cache = cache_dir()?;
    let dir = cache.join("kernels");
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut host = Apt::host(arch);
    let mut private: Option<Apt> = None;
    let mut out = Vec::new();
    for &s in series {
        let line = LINES.iter().find(|l| l.series == s).ok_or_else(|| {
            let known: Vec<&str> = LINES.iter().map(|l| l.series).collect();
            anyhow!("unknown kernel line {s:?}; known: {}", known.join(", "))
        })?;
        let apt = match Archive::of(line, arch) {
            Archive::Host => &mut host,
            Archive::Private => match private {
                Some(ref mut a) => a,
                None => private.insert(Apt::private(&cache, arch)?),
            },
        };
        out.push(apt.ensure(&dir, line)?);
    }
    Ok(out)
}

/// The version of `pkg` installed on this machine.
pub fn host_version(pkg: &str) -> Result<String> {
    let v = capture(Command::new("dpkg-query").args(["-W", "-f=${Version}", pkg]))
        .with_context(|| format!("the machine's {pkg} version (is it installed?)"))?;
    Ok(v.trim().to_string())
}

/// The static busybox of the `arch` guest: the machine's own (`busybox-static`, which
/// setup installs) for amd64; for another architecture the same version of Debian's
/// `busybox-static` for it ([`foreign_debs`]).
pub fn busybox(arch: Arch) -> Result<PathBuf> {
    if arch == Arch::X86_64 {
        return Ok(PathBuf::from("/bin/busybox"));
    }
    let version = host_version("busybox-static")?;
    let root = foreign_debs(arch, "busybox", &[format!("busybox-static={version}")])?;
    Ok(root.join("bin/busybox"))
}

/// `pkgs` (`name=version`) of another architecture than the machine's, downloaded once
/// through that architecture's private apt state and unpacked together into
/// `foreign/<name>-<versions>-<arch>/` under the cache, which is returned. Nothing is
/// installed.
pub fn foreign_debs(arch: Arch, name: &str, pkgs: &[String]) -> Result<PathBuf> {
    let cache = cache_dir()?;
    let versions: Vec<&str> = pkgs
        .iter()
        .map(|p| p.split_once('=').map_or("", |(_, v)| v))
        .collect();
    let dir = cache.join("foreign").join(format!(
        "{name}-{}-{}",
        versions.join("-").replace([':', '/'], "_"),
        arch.debian()
    ));
    if is_complete(&dir, &[MARKER]) {
        return Ok(dir);
    }
    let apt = Apt::private(&cache, arch)?;
    let work = dir.with_extension(format!("tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let dl = work.join(".download");
    fs::create_dir_all(&dl).with_context(|| format!("creating {}", dl.display()))?;
    download(&apt, pkgs, &dl)
        .with_context(|| format!("downloading {} for {}", pkgs.join(" "), arch.debian()))?;
    for e in fs::read_dir(&dl)? {
        let deb = e?.path();
        if deb.extension().is_some_and(|x| x == "deb") {
            run_quiet(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&work))
                .with_context(|| format!("extracting {}", deb.display()))?;
        }
    }
    fs::remove_dir_all(&dl)?;
    fs::write(work.join(MARKER), pkgs.join("\n") + "\n")?;
    // Another run may have finished first; either copy is the same packages.
    if fs::rename(&work, &dir).is_err() {
        let _ = fs::remove_dir_all(&work);
    }
    if !is_complete(&dir, &[MARKER]) {
        bail!("could not move {} to {}", work.display(), dir.display());
    }
    Ok(dir)
}

/// apt-get and apt-cache with either the machine's configuration or the private one.
struct Apt {
    /// The private state's directory; `None` for the machine's own configuration.
    private: Option<PathBuf>,
    /// The architecture of the packages it looks up.
    arch: Arch,
    /// The lists were refreshed in this run; a failure is not retried again.
    refreshed: bool,
}

impl Apt {
    fn host(arch: Arch) -> Self {
        Apt {
            private: None,
            arch,
            refreshed: false,
        }
    }

    /// The private state for `arch` under `cache` (`apt/` for amd64, `apt-arm64/`), with
    /// its lists refreshed if they are missing, older than a day, or made for other
    /// sources.
    fn private(cache: &Path, arch: Arch) -> Result<Self> {
        let dir = &match arch {
            Arch::X86_64 => cache.join("apt"),
            _ => cache.join(format!("apt-{}", arch.debian())),
        };
        for sub in ["lists/partial", "cache/archives/partial"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let uri = host_debian_uri()?;
        let sources = private_sources(&uri, arch);
        let sources_file = dir.join("sources.list");
        let stamp = dir.join("updated");
        if fs::read_to_string(&sources_file).ok().as_deref() != Some(sources.as_str()) {
            fs::write(&sources_file, &sources)
                .with_context(|| format!("writing {}", sources_file.display()))?;
            let _ = fs::remove_file(&stamp);
        }
        let mut apt = Apt {
            private: Some(dir.to_path_buf()),
            arch,
            refreshed: false,
        };
        let fresh = fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < LISTS_MAX_AGE);
        if !fresh {
            // Old lists still name the cached kernels: without the mirror, go on with them.
            let have_lists = fs::read_dir(dir.join("lists")).is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().contains("_Packages")))
            });
            match apt.refresh() {
                Err(e) if have_lists => eprintln!("{e:#}\nusing the old package lists"),
                r => r?,
            }
        }
        Ok(apt)
    }

    /// `prog` (apt-get or apt-cache) with the options that select the private state.
    fn command(&self, prog: &str) -> Command {
        let mut cmd = Command::new(prog);
        if let Some(dir) = &self.private {
            let opt = |k: &str, v: &Path| format!("{k}={}", v.display());
            for o in [
                opt("Dir::Etc::sourcelist", &dir.join("sources.list")),
                "Dir::Etc::sourceparts=-".to_owned(),
                opt("Dir::State::Lists", &dir.join("lists")),
                opt("Dir::Cache", &dir.join("cache")),
                // The lists live under the invoking user's cache, which _apt may not reach.
                "APT::Sandbox::User=root".to_owned(),
            ] {
                cmd.arg("-o").arg(o);
            }
            // Another architecture's packages, looked up and downloaded only: dpkg's own
            // architectures stay as they are.
            if self.arch != Arch::X86_64 {
                let a = self.arch.debian();
                cmd.args(["-o", &format!("APT::Architecture={a}")]);
                cmd.args(["-o", &format!("APT::Architectures::={a}")]);
            }
        }
        cmd
    }

    fn refresh(&mut self) -> Result<()> {
        self.refreshed = true;
        let Some(dir) = &self.private else {
            return apt_get_update();
        };
        eprintln!("refreshing the package lists in {} ...", dir.display());
        run_quiet(
            self.command("apt-get")
                .args(["update", "-q"])
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
        .context("`apt-get update` of the private kernel lists failed")?;
        fs::write(dir.join("updated"), "")?;
        Ok(())
    }

    fn ensure(&mut self, dir: &Path, line: &Line) -> Result<GuestKernel> {
        let abi = self.newest(line)?;
        match ensure_one(dir, self, line, &abi) {
            Ok(k) => Ok(k),
            // The mirror may have dropped the build our lists name: refresh and retry.
            Err(e) if !self.refreshed => {
                eprintln!("kernel {abi}: {e:#}; running apt-get update and retrying");
                self.refresh()?;
                let abi = self.newest(line)?;
                ensure_one(dir, self, line, &abi)
            }
            Err(e) => Err(e),
        }
    }

    /// The newest ABI of `line`; a stale package list may predate it, so refresh once.
    fn newest(&mut self, line: &Line) -> Result<String> {
        loop {
            if let Some(abi) = newest_for_series(&self.abis(line.packaging)?, line.series) {
                return Ok(abi);
            }
            if self.refreshed {
                bail!(
                    "apt knows no {} kernel package for {} (looked with `apt-cache search \
                     --names-only '{}'`)",
                    line.series,
                    if self.private.is_some() {
                        "the private lists under the cache"
                    } else {
                        "the machine's sources"
                    },
                    search_pattern(line.packaging, self.arch)
                );
            }
            self.refresh()?;
        }
    }

    fn abis(&self, packaging: Packaging) -> Result<Vec<String>> {
        let listing = capture(self.command("apt-cache").args([
            "search",
            "--names-only",
            &search_pattern(packaging, self.arch),
        ]))?;
        let a = self.arch.debian();
        Ok(match packaging {
            Packaging::Unsigned => {
                abis_from_listing(&listing, "linux-image-", &format!("-{a}-unsigned"))
            }
            Packaging::Split => abis_from_listing(&listing, "linux-binary-", &format!("-{a}")),
        })
    }

    /// The packages to download for one build.
    fn packages(&self, packaging: Packaging, abi: &str) -> Result<Vec<String>> {
        let a = self.arch.debian();
        match packaging {
            Packaging::Unsigned => Ok(vec![format!("linux-image-{abi}-{a}-unsigned")]),
            Packaging::Split => {
                let meta = format!("linux-image-{abi}-{a}");
                let show = capture(self.command("apt-cache").args(["show", &meta]))?;
                split_packages(&show).with_context(|| format!("in `apt-cache show {meta}`"))
            }
        }
    }
}

fn search_pattern(packaging: Packaging, arch: Arch) -> String {
    let a = arch.debian();
    match packaging {
        Packaging::Unsigned => format!("^linux-image-.*-{a}-unsigned$"),
        Packaging::Split => format!("^linux-binary-.*-{a}$"),
    }
}

/// The `<abi>` parts of `<prefix><abi><suffix>` package names in an `apt-cache search`
/// listing, e.g. "6.1.0-56", "6.12.117+deb12" or "7.3.4+deb13". Flavours such as -cloud and
/// -rt, and linux-binary-unsigned-*, are left out.
fn abis_from_listing(listing: &str, prefix: &str, suffix: &str) -> Vec<String> {
    listing
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| name.strip_prefix(prefix)?.strip_suffix(suffix))
        // A flavour shows up as an all-letter segment: 6.1.0-56-cloud, 6.12.117+deb12-rt,
        // unsigned-7.3.4+deb13.
        .filter(|abi| {
            !abi.split('-')
                .any(|seg| seg.chars().all(|c| c.is_ascii_alphabetic()))
        })
        .map(str::to_owned)
        .collect()
}

/// From `apt-cache show` of a 7.x `linux-image-<abi>-amd64` meta package: the packages that
/// hold the kernel (linux-binary-*), the modules (linux-modules-*) and, if named, the config
/// (linux-base-*).
fn split_packages(show: &str) -> Result<Vec<String>> {
    // Several versions print several stanzas; the first is the candidate.
    let depends = show
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| l.strip_prefix("Depends:"))
        .ok_or_else(|| anyhow!("no Depends field"))?;
    let names: Vec<&str> = depends
        .split([',', '|'])
        .filter_map(|alt| alt.split_whitespace().next())
        .collect();
    let mut out = Vec::new();
    for (prefix, required) in [
        ("linux-binary-", true),
        ("linux-modules-", true),
        ("linux-base-", false),
    ] {
        match names.iter().find(|n| n.starts_with(prefix)) {
            Some(n) => out.push((*n).to_owned()),
            None if required => bail!("no {prefix}* package in Depends: {}", depends.trim()),
            None => {}
        }
    }
    Ok(out)
}

/// The sources file of the private apt state for `arch` (amd64's names no architecture,
/// as it always has).
fn private_sources(uri: &str, arch: Arch) -> String {
    let opts = match arch {
        Arch::X86_64 => "trusted=yes".to_owned(),
        _ => format!("trusted=yes arch={}", arch.debian()),
    };
    PRIVATE_SUITES
        .iter()
        .map(|s| format!("deb [{opts}] {uri} {s} main\n"))
        .collect()
}

/// The URI of the machine's own Debian archive, from /etc/apt/sources.list and
/// /etc/apt/sources.list.d/*.list (one-line format) or *.sources (deb822).
pub(crate) fn host_debian_uri() -> Result<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in &files {
        let Ok(text) = fs::read_to_string(f) else {
            continue;
        };
        let uri = match f.extension().and_then(|x| x.to_str()) {
            Some("list") => debian_uri_one_line(&text),
            Some("sources") => debian_uri_deb822(&text),
            _ => continue,
        };
        if let Some(uri) = uri {
            return Ok(uri);
        }
    }
    bail!(
        "found no Debian archive (a `deb` entry for one of the suites {}) in \
         /etc/apt/sources.list or /etc/apt/sources.list.d/*.{{list,sources}}",
        DEBIAN_SUITES.join(", ")
    )
}

/// The URI of the first `deb URI SUITE ...` line whose suite is a Debian release.
fn debian_uri_one_line(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        if words.next()? != "deb" {
            return None;
        }
        let mut uri = words.next()?;
        // Options: "[trusted=yes]" or "[ arch=amd64 signed-by=... ]".
        if uri.starts_with('[') {
            while !uri.ends_with(']') {
                uri = words.next()?;
            }
            uri = words.next()?;
        }
        let suite = words.next()?;
        DEBIAN_SUITES.contains(&suite).then(|| uri.to_owned())
    })
}

/// The first URI of the first enabled `Types: deb` stanza one of whose suites is a Debian
/// release.
fn debian_uri_deb822(text: &str) -> Option<String> {
    let mut stanzas = vec![Vec::new()];
    for line in text.lines() {
        if line.trim().is_empty() {
            stanzas.push(Vec::new());
        } else if !line.starts_with('#') && !line.starts_with(char::is_whitespace) {
            if let Some((k, v)) = line.split_once(':') {
                let stanza = stanzas.last_mut().expect("never empty");
                stanza.push((k.trim().to_ascii_lowercase(), v.trim()));
            }
        }
    }
    stanzas.iter().find_map(|fields| {
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map_or("", |(_, v)| *v)
        };
        let enabled = !get("enabled").eq_ignore_ascii_case("no");
        let deb = get("types").split_whitespace().any(|t| t == "deb");
        let debian = get("suites")
            .split_whitespace()
            .any(|s| DEBIAN_SUITES.contains(&s));
        let uri = get("uris").split_whitespace().next()?;
        (enabled && deb && debian).then(|| uri.to_owned())
    })
}

/// "6.1.0-56" -> "6.1"; "6.12.117+deb12" -> "6.12".
fn series_of(abi: &str) -> Option<String> {
    let (major, minor) = copyup_trace_common::kver::parse(abi)?;
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

fn ensure_one(dir: &Path, apt: &Apt, line: &Line, abi: &str) -> Result<GuestKernel> {
    let version = format!("{abi}-{}", apt.arch.debian());
    let final_dir = dir.join(&version);
    if !is_complete(&final_dir, KERNEL_FILES) {
        // Work in a private directory and rename it into place at the end, so an interrupted
        // or concurrent run never leaves a half-extracted kernel that looks complete.
        let work = dir.join(format!(".{version}.tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let res = download_and_extract(&work, apt, line, abi, &version);
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
            if !is_complete(&final_dir, KERNEL_FILES) {
                bail!(
                    "could not move {} to {}",
                    work.display(),
                    final_dir.display()
                );
            }
        }
    }
    Ok(GuestKernel {
        series: line.series.to_owned(),
        arch: apt.arch,
        vmlinuz: final_dir.join("vmlinuz"),
        overlay_ko: final_dir.join("overlay.ko"),
        version,
    })
}

fn is_complete(dir: &Path, files: &[&str]) -> bool {
    files.iter().all(|f| dir.join(f).is_file())
}

/// What a complete kernel directory holds.
const KERNEL_FILES: &[&str] = &[MARKER, "vmlinuz", "overlay.ko"];

/// Where a package puts `what` ("vmlinuz", "config" or the overlayfs module directory) for
/// kernel `version`: boot/ and lib/modules/ up to 6.x, usr/lib/modules/ from 7.x.
fn candidates(what: &str, version: &str) -> Vec<String> {
    let modules = [
        format!("lib/modules/{version}"),
        format!("usr/lib/modules/{version}"),
    ];
    match what {
        "overlayfs" => modules
            .iter()
            .map(|m| format!("{m}/kernel/fs/overlayfs"))
            .collect(),
        _ => std::iter::once(format!("boot/{what}-{version}"))
            .chain(modules.iter().map(|m| format!("{m}/{what}")))
            .collect(),
    }
}

fn download_and_extract(
    work: &Path,
    apt: &Apt,
    line: &Line,
    abi: &str,
    version: &str,
) -> Result<()> {
    let pkgs = apt.packages(line.packaging, abi)?;
    let shown = pkgs.join(" ");
    let dl = work.join("download");
    fs::create_dir_all(&dl)?;
    download(apt, &pkgs, &dl).with_context(|| format!("downloading {shown}"))?;
    let unpacking = Step::start(format!("unpacking {shown}"));
    let debs: Vec<PathBuf> = fs::read_dir(&dl)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "deb"))
        .collect();
    if debs.len() != pkgs.len() {
        bail!(
            "`apt-get download {shown}` left {} .deb files in {}",
            debs.len(),
            dl.display()
        );
    }

    let root = work.join("root");
    for deb in &debs {
        run_quiet(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))
            .with_context(|| format!("extracting {}", deb.display()))?;
    }
    // The .debs are only needed once.
    fs::remove_dir_all(&dl)?;

    let find = |what: &str| {
        candidates(what, version)
            .into_iter()
            .map(|c| root.join(c))
            .find(|p| p.exists())
    };
    for (name, required) in [("vmlinuz", true), ("config", false)] {
        match find(name) {
            Some(src) => fs::rename(&src, work.join(name))
                .with_context(|| format!("moving {}", src.display()))?,
            None if required => bail!(
                "{shown}: no {name} at any of {}",
                candidates(name, version).join(", ")
            ),
            None => {}
        }
    }
    let ovl_dir = find("overlayfs").ok_or_else(|| {
        anyhow!(
            "{shown}: no overlayfs module directory at any of {}",
            candidates("overlayfs", version).join(", ")
        )
    })?;
    let dest = work.join("overlay.ko");
    let plain = ovl_dir.join("overlay.ko");
    let xz = ovl_dir.join("overlay.ko.xz");
    if plain.is_file() {
        fs::copy(&plain, &dest).with_context(|| format!("copying {}", plain.display()))?;
    } else if xz.is_file() {
        // 6.12 and 7.x ship compressed modules; busybox insmod wants a plain ELF.
        let data = capture_bytes(Command::new("xz").arg("-dc").arg(&xz))
            .context("decompressing with xz (package xz-utils)")?;
        fs::write(&dest, &data).with_context(|| format!("writing {}", dest.display()))?;
    } else {
        bail!(
            "{shown} has neither overlay.ko nor overlay.ko.xz in {}",
            ovl_dir.display()
        );
    }
    fs::remove_dir_all(&root).with_context(|| format!("removing {}", root.display()))?;
    fs::write(
        work.join(MARKER),
        format!(
            "{}
",
            pkgs.join(
                "
"
            )
        ),
    )?;
    unpacking.done();
    Ok(())
}

/// `apt-get download PKGS` into `dir` through `apt`'s state, showing the bytes that have
/// arrived.
fn download(apt: &Apt, pkgs: &[String], dir: &Path) -> Result<()> {
    // One `Size:` line per package: their sum is what will arrive.
    let size: Option<u64> = capture(
        apt.command("apt-cache")
            .args(["show", "--no-all-versions"])
            .args(pkgs),
    )
    .ok()
    .and_then(|text| {
        text.lines()
            .filter_map(|l| l.strip_prefix("Size:"))
            .map(|n| n.trim().parse::<u64>().ok())
            .sum()
    });
    let what = format!("downloading {}", pkgs.join(" "));
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
            apt.command("apt-get")
                .args(["download", "-q"])
                .args(pkgs)
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

    #[test]
    fn parses_kernel_package_names() {
        let images = "\
linux-image-5.10.0-30-amd64-unsigned - Linux 5.10 for 64-bit PCs
linux-image-5.10.0-32-amd64-unsigned - Linux 5.10 for 64-bit PCs
linux-image-5.10.0-32-cloud-amd64-unsigned - Linux 5.10 for x86-64 cloud
linux-image-6.1.0-56-rt-amd64-unsigned - Linux 6.1 for 64-bit PCs, PREEMPT_RT
linux-image-6.12.117+deb13-amd64-unsigned - Linux 6.12 for 64-bit PCs
";
        assert_eq!(
            abis_from_listing(images, "linux-image-", "-amd64-unsigned"),
            ["5.10.0-30", "5.10.0-32", "6.12.117+deb13"]
        );
        let binaries = "\
linux-binary-7.2.9+deb13-amd64 - Linux 7.2.9 for 64-bit PCs (kernel image)
linux-binary-7.2.13+deb14-amd64 - Linux 7.2.13 for 64-bit PCs (kernel image)
linux-binary-7.2.12+deb13-amd64 - Linux 7.2.12 for 64-bit PCs (kernel image)
linux-binary-7.3.4+deb13-amd64 - Linux 7.3.4 for 64-bit PCs (kernel image)
linux-binary-7.3.4+deb13-cloud-amd64 - Linux 7.3.4 for x86-64 cloud (kernel image)
linux-binary-unsigned-7.3.4+deb13-amd64 - Linux 7.3.4 for 64-bit PCs (unsigned kernel image)
";
        let abis = abis_from_listing(binaries, "linux-binary-", "-amd64");
        assert_eq!(
            abis,
            ["7.2.9+deb13", "7.2.13+deb14", "7.2.12+deb13", "7.3.4+deb13"]
        );
        assert_eq!(newest_for_series(&abis, "7.2").unwrap(), "7.2.13+deb14");
        assert_eq!(newest_for_series(&abis, "7.3").unwrap(), "7.3.4+deb13");
        assert_eq!(newest_for_series(&abis, "7.1"), None);
        assert_eq!(series_of("5.10.0-32").as_deref(), Some("5.10"));
        assert_eq!(series_of("7.2.13+deb14").as_deref(), Some("7.2"));
        let old = abis_from_listing(images, "linux-image-", "-amd64-unsigned");
        assert_eq!(newest_for_series(&old, "5.10").unwrap(), "5.10.0-32");
    }

    #[test]
    fn finds_split_packages_of_a_meta_image() {
        let show = "\
Package: linux-image-7.3.4+deb13-amd64
Version: 7.3.4-1~bpo13+1
Installed-Size: 15
Depends: dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1), linux-modules-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)
Pre-Depends: linux-base (>= 4.17~)

Package: linux-image-7.3.4+deb13-amd64
Version: 7.3.3-1
Depends: linux-binary-7.3.3-old-amd64, linux-modules-7.3.3-old-amd64
";
        assert_eq!(
            split_packages(show).unwrap(),
            [
                "linux-binary-7.3.4+deb13-amd64",
                "linux-modules-7.3.4+deb13-amd64",
                "linux-base-7.3.4+deb13-amd64"
            ]
        );
        assert!(split_packages("Package: x\nDepends: linux-base-7.3.4+deb13-amd64\n").is_err());
        assert!(split_packages("Package: x\n").is_err());
    }

    #[test]
    fn places_kernel_files_by_layout() {
        assert_eq!(
            candidates("vmlinuz", "7.3.4+deb13-amd64"),
            [
                "boot/vmlinuz-7.3.4+deb13-amd64",
                "lib/modules/7.3.4+deb13-amd64/vmlinuz",
                "usr/lib/modules/7.3.4+deb13-amd64/vmlinuz"
            ]
        );
        assert_eq!(
            candidates("overlayfs", "5.10.0-32-amd64"),
            [
                "lib/modules/5.10.0-32-amd64/kernel/fs/overlayfs",
                "usr/lib/modules/5.10.0-32-amd64/kernel/fs/overlayfs"
            ]
        );
    }

    #[test]
    fn reads_the_debian_mirror_from_one_line_sources() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb https://third-party.example/apt cloud-sdk-bookworm main
deb-src http://src.example/debian bookworm main
deb [ arch=amd64 signed-by=/usr/share/keyrings/k.gpg ] http://mirror.example/debian bookworm main # note
deb http://later.example/debian bookworm main
";
        assert_eq!(
            debian_uri_one_line(text).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            debian_uri_one_line("deb [trusted=yes] http://m.example/debian sid main\n").as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(
            debian_uri_one_line("deb http://s.example/ bookworm-security main\n"),
            None
        );
    }

    #[test]
    fn reads_the_debian_mirror_from_deb822_sources() {
        let text = "\
Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no

Types: deb deb-src
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian http://second.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 Suites: trixie
";
        assert_eq!(
            debian_uri_deb822(text).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            debian_uri_deb822("Types: deb\nURIs: https://n.example/node\nSuites: nodistro\n"),
            None
        );
        assert_eq!(
            private_sources("http://m.example/debian", Arch::X86_64)
                .lines()
                .collect::<Vec<_>>(),
            [
                "deb [trusted=yes] http://m.example/debian bullseye main",
                "deb [trusted=yes] http://m.example/debian bookworm main",
                "deb [trusted=yes] http://m.example/debian trixie main",
                "deb [trusted=yes] http://m.example/debian trixie-backports main",
                "deb [trusted=yes] http://m.example/debian sid main",
            ]
        );
        assert_eq!(
            private_sources("http://m.example/debian", Arch::Aarch64)
                .lines()
                .nth(1),
            Some("deb [trusted=yes arch=arm64] http://m.example/debian bookworm main")
        );
    }
}
