//! `cargo xtask dist`: the release artifacts in `target/dist/`, built from the repository as
//! it is: per target triple the static binary and a `.deb` (binary, systemd unit, man
//! pages, shell completions, maintainer scripts), one OCI image archive holding every
//! architecture (from scratch, as the `Containerfile` says), the man pages, completions,
//! unit and Kubernetes manifests as loose files, and `SHA256SUMS` over all of it. It ends
//! at writing the files: installing the `.deb` and running its service is the `deb` guest
//! family's (`scenarios::userland::deb`).

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, ensure, Context, Result};
use copyup_trace_common::arch::Arch;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{
    cmd::{cargo, run, run_quiet, workspace_root},
    progress::Step,
    setup,
};

/// One architecture the release is built for, with the names each format gives it.
pub struct Target {
    pub arch: Arch,
    /// Rust's target triple (a static musl build).
    pub triple: &'static str,
    /// Debian's name of the architecture (`dpkg --print-architecture`).
    pub deb_arch: &'static str,
    /// The OCI platform's `architecture` (Go's GOARCH, which is Debian's name for both).
    pub oci_arch: &'static str,
}

impl Target {
    const fn of(arch: Arch) -> Target {
        Target {
            arch,
            triple: arch.musl_target(),
            deb_arch: arch.debian(),
            oci_arch: arch.debian(),
        }
    }
}

/// The architectures of a release: every one the tool is built for.
pub const TARGETS: &[Target] = &[Target::of(Arch::X86_64), Target::of(Arch::Aarch64)];

const NAME: &str = "copyup-trace";
const CRATE_MANIFEST: &str = "copyup-trace/Cargo.toml";
const CONTAINERFILE: &str = "Containerfile";
const MANIFESTS: &str = "deploy/kubernetes";
/// Installed where Debian's packages put the units they ship (not enabled: see README).
const UNIT_DIR: &str = "lib/systemd/system";
const BINARY: &str = "usr/bin/copyup-trace";
/// Whom the package names as its maintainer; set `COPYUP_TRACE_DEB_MAINTAINER` when
/// publishing (`.invalid` is reserved: it reaches no one).
const DEFAULT_MAINTAINER: &str = "copyup-trace maintainers <copyup-trace@maintainers.invalid>";

/// What `build` left in `target/dist/`.
pub struct Dist {
    pub dir: PathBuf,
    /// The `.deb` of each target, in [`TARGETS`] order.
    pub debs: Vec<PathBuf>,
    pub oci: PathBuf,
}

/// Everything into `target/dist/` (emptied first). The binaries are built as `cargo
/// xtask build --arch` builds them (the same cargo invocation, so a test run builds each
/// once).
pub fn build() -> Result<Dist> {
    setup::ensure_debs(&["dpkg", "gzip", "coreutils"])?;
    let root = workspace_root();
    let version = version()?;
    let dir = root.join("target/dist");
    let work = root.join("target/dist.work");
    for d in [&dir, &work] {
        if d.exists() {
            fs::remove_dir_all(d).with_context(|| format!("emptying {}", d.display()))?;
        }
        fs::create_dir_all(d)?;
    }

    let step = Step::start("building the static binaries");
    let mut bins = Vec::new();
    for t in TARGETS {
        let bin =
            crate::build_static(t.arch).with_context(|| format!("building for {}", t.triple))?;
        let out = dir.join(format!("{NAME}-{version}-{}", t.triple));
        fs::copy(&bin, &out).with_context(|| format!("copying {}", bin.display()))?;
        bins.push(out);
    }
    step.done();

    let step = Step::start("generating the man pages and shell completions");
    let docs = docs(&work)?;
    copy_tree(&docs, &dir)?;
    let unit = packaged_unit(&fs::read_to_string(root.join(crate::deploy::UNIT))?)?;
    fs::create_dir_all(dir.join("systemd"))?;
    fs::write(dir.join("systemd/copyup-trace.service"), &unit)?;
    copy_tree(&root.join(MANIFESTS), &dir.join("kubernetes"))?;
    step.done();

    let step = Step::start("building the .deb packages (dpkg-deb)");
    let mut debs = Vec::new();
    for (t, bin) in TARGETS.iter().zip(&bins) {
        let staging = work.join(format!("deb-{}", t.deb_arch));
        stage_deb(&staging, t, &version, bin, &docs, &unit)?;
        let deb = dir.join(format!(
            "{NAME}_{}_{}.deb",
            deb_version(&version),
            t.deb_arch
        ));
        run_quiet(
            Command::new("dpkg-deb")
                .args(["--build", "--root-owner-group", "-Zxz"])
                .arg(&staging)
                .arg(&deb),
        )
        .context("dpkg-deb --build")?;
        debs.push(deb);
    }
    step.done();

    let step = Step::start("writing the OCI image archive");
    let containerfile = Containerfile::parse(&fs::read_to_string(root.join(CONTAINERFILE))?)?;
    let oci = dir.join(format!("{NAME}-{version}.oci.tar"));
    let images: Vec<(&Target, &Path)> = TARGETS
        .iter()
        .zip(bins.iter().map(PathBuf::as_path))
        .collect();
    oci_archive(&oci, &version, &containerfile, &images)?;
    step.done();

    write_sums(&dir)?;
    let _ = fs::remove_dir_all(&work);
    Ok(Dist { dir, debs, oci })
}

/// `cargo xtask dist`: builds, then lists what it left, with sizes.
pub fn dist() -> Result<()> {
    setup::ensure_host_tools()?;
    let d = build()?;
    for f in files_under(&d.dir)? {
        let len = fs::metadata(d.dir.join(&f))?.len();
        println!("{len:>12}  {}", d.dir.join(&f).display());
    }
    Ok(())
}

/// Host checks of what `build` left (the guest's are `scenarios::userland::deb`).
pub type Check = (&'static str, fn(&Dist) -> Result<()>);

pub const CHECKS: &[Check] = &[
    (
        "dist: SHA256SUMS lists and matches every artifact",
        sums_match,
    ),
    (
        "dist: each .deb's control fields and files, owned by root",
        deb_contents,
    ),
];

fn sums_match(d: &Dist) -> Result<()> {
    let o = crate::cmd::outcome(
        Command::new("sha256sum")
            .args(["--check", "--strict", "SHA256SUMS"])
            .current_dir(&d.dir),
    )?;
    ensure!(o.code == 0, "sha256sum --check: {}{}", o.stdout, o.stderr);
    let sums = fs::read_to_string(d.dir.join("SHA256SUMS"))?;
    let listed: Vec<&str> = sums
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(_, f)| f)
        .collect();
    let mut present = files_under(&d.dir)?;
    present.retain(|f| f != "SHA256SUMS");
    ensure!(
        listed == present,
        "SHA256SUMS lists {listed:?}, the directory has {present:?}"
    );
    let version = version()?;
    let mut want: Vec<String> = TARGETS
        .iter()
        .map(|t| format!("{NAME}-{version}-{}", t.triple))
        .collect();
    for f in d.debs.iter().chain([&d.oci]) {
        want.push(
            f.file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned(),
        );
    }
    for f in want {
        ensure!(present.contains(&f), "{f} is missing: {present:?}");
    }
    Ok(())
}

/// The files a `.deb` holds, with their modes (`dpkg-deb -c`: directories end in `/`).
pub const DEB_FILES: &[(&str, &str)] = &[
    ("-rwxr-xr-x", "./usr/bin/copyup-trace"),
    ("-rw-r--r--", "./lib/systemd/system/copyup-trace.service"),
    (
        "-rw-r--r--",
        "./usr/share/bash-completion/completions/copyup-trace",
    ),
    ("-rw-r--r--", "./usr/share/doc/copyup-trace/copyright"),
    (
        "-rw-r--r--",
        "./usr/share/fish/vendor_completions.d/copyup-trace.fish",
    ),
    ("-rw-r--r--", "./usr/share/man/man1/copyup-trace-check.1.gz"),
    ("-rw-r--r--", "./usr/share/man/man1/copyup-trace.1.gz"),
    (
        "-rw-r--r--",
        "./usr/share/zsh/vendor-completions/_copyup-trace",
    ),
];

fn deb_contents(d: &Dist) -> Result<()> {
    let version = version()?;
    for (t, deb) in TARGETS.iter().zip(&d.debs) {
        let fields = crate::cmd::capture(Command::new("dpkg-deb").arg("--field").arg(deb).args([
            "Package",
            "Version",
            "Architecture",
            "Depends",
        ]))?;
        let want = format!(
            "Package: {NAME}\nVersion: {}\nArchitecture: {}\n",
            deb_version(&version),
            t.deb_arch
        );
        ensure!(
            fields == want,
            "{}: fields\n{fields}want\n{want}",
            deb.display()
        );
        let listing = crate::cmd::capture(Command::new("dpkg-deb").arg("--contents").arg(deb))?;
        let mut files: Vec<(String, String)> = Vec::new();
        for line in listing.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            ensure!(w.len() >= 6, "{}: {line:?}", deb.display());
            ensure!(
                w[1] == "root/root",
                "{}: not owned by root: {line:?}",
                deb.display()
            );
            if w[0].starts_with('d') {
                ensure!(w[0] == "drwxr-xr-x", "{}: {line:?}", deb.display());
            } else {
                files.push((w[0].to_string(), w[5].to_string()));
            }
        }
        files.sort_by(|a, b| a.1.cmp(&b.1));
        let mut want: Vec<(String, String)> = DEB_FILES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        want.sort_by(|a, b| a.1.cmp(&b.1));
        ensure!(
            files == want,
            "{}: files\n  got  {files:?}\n  want {want:?}",
            deb.display()
        );
    }
    Ok(())
}

/// The `version` of `[package]` in a Cargo.toml.
fn crate_version(manifest: &str) -> Result<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(v) = line
                .strip_prefix("version")
                .map(str::trim_start)
                .and_then(|l| l.strip_prefix('='))
            {
                let v = v.trim().trim_matches('"');
                ensure!(
                    !v.is_empty()
                        && v.chars()
                            .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c)),
                    "{CRATE_MANIFEST}: version {v:?} is not a plain version"
                );
                return Ok(v.to_string());
            }
        }
    }
    bail!("{CRATE_MANIFEST} has no version in [package]")
}

/// Cargo's version as Debian orders it: a pre-release (`0.2.0-rc.1`) sorts before its
/// release (`0.2.0~rc.1`), build metadata (`+x`) is kept.
fn deb_version(v: &str) -> String {
    match v.split_once('-') {
        Some((release, pre)) => format!("{release}~{pre}"),
        None => v.to_string(),
    }
}

/// Runs `examples/dist-docs.rs` (the copyup-trace library's clap definition): man pages
/// under `man/` and completions under `completions/`, in `work/docs`. Built for the host
/// in the dev profile, as `cargo test` builds examples: after the unit tests it is there.
fn docs(work: &Path) -> Result<PathBuf> {
    run(cargo().args(["build", "--quiet", "-p", NAME, "--example", "dist-docs"]))?;
    let gen = workspace_root().join("target/debug/examples/dist-docs");
    let out = work.join("docs");
    run_quiet(Command::new(&gen).arg(&out))?;
    Ok(out)
}

/// The unit as the package installs it: the binary in /usr/bin, and a header saying how
/// the package leaves it. Fails if the repository's unit no longer has the lines changed.
fn packaged_unit(unit: &str) -> Result<String> {
    let (_, body) = unit
        .split_once("[Unit]\n")
        .context("the unit has no [Unit] section")?;
    let from = "ExecStart=/usr/local/bin/copyup-trace ";
    ensure!(body.contains(from), "the unit lacks {from:?}");
    let header = "# copyup-trace as a host service: traces overlayfs copy-ups host-wide and serves them to\n\
                  # Prometheus on port 29435 (/metrics, /healthz). Installed by the copyup-trace package,\n\
                  # not enabled: `systemctl enable --now copyup-trace`. Change it with\n\
                  # `systemctl edit copyup-trace` (a drop-in in /etc, kept across upgrades).\n";
    Ok(format!(
        "{header}[Unit]\n{}",
        body.replace(from, &format!("ExecStart=/{BINARY} "))
    ))
}

/// The package's tree: files, then `DEBIAN/` (control, maintainer scripts, md5sums).
fn stage_deb(
    root: &Path,
    t: &Target,
    version: &str,
    bin: &Path,
    docs: &Path,
    unit: &str,
) -> Result<()> {
    let put = |rel: &str, data: &[u8], mode: u32| -> Result<()> {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().expect("a file in a directory"))?;
        fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
        set_mode(&p, mode)
    };
    put(BINARY, &fs::read(bin)?, 0o755)?;
    put(
        &format!("{UNIT_DIR}/copyup-trace.service"),
        unit.as_bytes(),
        0o644,
    )?;
    for page in ["copyup-trace.1", "copyup-trace-check.1"] {
        let gz = gzip(&docs.join("man").join(page))?;
        put(&format!("usr/share/man/man1/{page}.gz"), &gz, 0o644)?;
    }
    for (from, to) in [
        (
            "copyup-trace.bash",
            "usr/share/bash-completion/completions/copyup-trace",
        ),
        (
            "_copyup-trace",
            "usr/share/zsh/vendor-completions/_copyup-trace",
        ),
        (
            "copyup-trace.fish",
            "usr/share/fish/vendor_completions.d/copyup-trace.fish",
        ),
    ] {
        put(to, &fs::read(docs.join("completions").join(from))?, 0o644)?;
    }
    put(
        "usr/share/doc/copyup-trace/copyright",
        COPYRIGHT.as_bytes(),
        0o644,
    )?;

    // Every directory 0755, whatever the umask made them.
    for d in walk_dirs(root)? {
        set_mode(&d, 0o755)?;
    }
    let md5sums = md5sums(root)?;
    let installed_kib = files_under(root)?
        .iter()
        .map(|f| fs::metadata(root.join(f)).map(|m| m.len().div_ceil(1024)))
        .sum::<std::io::Result<u64>>()?;
    let maintainer = std::env::var("COPYUP_TRACE_DEB_MAINTAINER")
        .ok()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_MAINTAINER.to_string());
    put(
        "DEBIAN/control",
        control(version, t.deb_arch, &maintainer, installed_kib).as_bytes(),
        0o644,
    )?;
    put("DEBIAN/md5sums", md5sums.as_bytes(), 0o644)?;
    put("DEBIAN/postinst", POSTINST.as_bytes(), 0o755)?;
    put("DEBIAN/prerm", PRERM.as_bytes(), 0o755)?;
    put("DEBIAN/postrm", POSTRM.as_bytes(), 0o755)?;
    set_mode(&root.join("DEBIAN"), 0o755)
}

/// `DEBIAN/control`: no `Depends`, the binary is static.
fn control(version: &str, arch: &str, maintainer: &str, installed_kib: u64) -> String {
    format!(
        "Package: {NAME}\n\
         Version: {}\n\
         Architecture: {arch}\n\
         Maintainer: {maintainer}\n\
         Installed-Size: {installed_kib}\n\
         Section: admin\n\
         Priority: optional\n\
         Description: trace overlayfs copy-ups: what, how much, how long, who caused them\n \
         copyup-trace attaches eBPF programs (fentry/fexit, or kprobes) to overlayfs and\n \
         reports every copy-up with its size, latency, the process and syscall that\n \
         caused it, and the container, image and layer it belongs to (podman, docker,\n \
         containerd, CRI-O, Kubernetes).\n \
         .\n \
         The package installs the static binary, the copyup-trace.service unit (not\n \
         enabled: it serves Prometheus metrics on port 29435 once enabled), man pages\n \
         and bash, zsh and fish completions.\n",
        deb_version(version)
    )
}

/// After unpacking: systemd learns of the unit (which stays disabled); an upgrade
/// restarts a running service onto the new binary.
const POSTINST: &str = r#"#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
    if [ -n "$2" ]; then
        systemctl try-restart copyup-trace.service >/dev/null || true
    fi
fi
exit 0
"#;

/// Before removal: the service stops (its programs are detached as it ends).
const PRERM: &str = r#"#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl stop copyup-trace.service >/dev/null || true
fi
exit 0
"#;

/// After removal: systemd forgets the unit; a purge also removes the links that
/// `systemctl enable` made.
const POSTRM: &str = r#"#!/bin/sh
set -e
if [ "$1" = purge ]; then
    rm -f /etc/systemd/system/multi-user.target.wants/copyup-trace.service
fi
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
exit 0
"#;

const COPYRIGHT: &str =
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
Upstream-Name: copyup-trace\n\
\n\
Files: *\n\
Copyright: the copyup-trace authors\n\
License: MIT or Apache-2.0\n\
 The user-space program is dual-licensed under the MIT licence and the Apache\n\
 License 2.0; the eBPF programs it loads into the kernel are GPL, as the kernel\n\
 requires for the helpers they use. On Debian systems the Apache License 2.0 is in\n\
 /usr/share/common-licenses/Apache-2.0 and the GPL in\n\
 /usr/share/common-licenses/GPL-2.\n";

fn gzip(path: &Path) -> Result<Vec<u8>> {
    // -n: no name or time stamp in the header, so the same page gives the same bytes.
    crate::cmd::capture_bytes(Command::new("gzip").args(["-9n", "-c"]).arg(path))
}

fn md5sums(root: &Path) -> Result<String> {
    let files = files_under(root)?;
    let mut cmd = Command::new("md5sum");
    cmd.current_dir(root).arg("--");
    cmd.args(&files);
    crate::cmd::capture(&mut cmd)
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", p.display()))
}

/// Regular files below `root`, relative, sorted, outside `DEBIAN/`.
fn files_under(root: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<String>) -> Result<()> {
        for e in fs::read_dir(root.join(rel))? {
            let e = e?;
            let r = rel.join(e.file_name());
            if e.file_type()?.is_dir() {
                if r != Path::new("DEBIAN") {
                    walk(root, &r, out)?;
                }
            } else {
                out.push(r.to_string_lossy().into_owned());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

fn walk_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        for e in fs::read_dir(&out[i])? {
            let e = e?;
            if e.file_type()?.is_dir() {
                out.push(e.path());
            }
        }
        i += 1;
    }
    Ok(out)
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for f in files_under(from)? {
        let dst = to.join(&f);
        fs::create_dir_all(dst.parent().expect("a file in a directory"))?;
        fs::copy(from.join(&f), &dst).with_context(|| format!("copying {f}"))?;
    }
    Ok(())
}

/// `SHA256SUMS` in `sha256sum`'s format (`sha256sum -c SHA256SUMS` checks it).
fn write_sums(dir: &Path) -> Result<()> {
    let mut sums = String::new();
    for f in files_under(dir)? {
        let digest = sha256_hex(&fs::read(dir.join(&f))?);
        sums.push_str(&format!("{digest}  {f}\n"));
    }
    fs::write(dir.join("SHA256SUMS"), sums)?;
    Ok(())
}

/// The SHA-256 of `data`, in hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The version being released: copyup-trace's, from its Cargo.toml.
pub fn version() -> Result<String> {
    crate_version(&fs::read_to_string(workspace_root().join(CRATE_MANIFEST))?)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the image gets from the repository's `Containerfile`: where the binary goes and
/// the image config (entrypoint, command, exposed ports). Only the instructions a
/// `FROM scratch` image of one binary uses are understood; any other is refused.
#[derive(Debug, PartialEq)]
struct Containerfile {
    dest: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    expose: Vec<String>,
}

impl Containerfile {
    fn parse(text: &str) -> Result<Containerfile> {
        let mut c = Containerfile {
            dest: String::new(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            expose: Vec::new(),
        };
        let exec_form = |arg: &str, what: &str| -> Result<Vec<String>> {
            serde_json::from_str(arg)
                .with_context(|| format!("{CONTAINERFILE}: {what} is not in exec form: {arg}"))
        };
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (op, arg) = line.split_once(' ').unwrap_or((line, ""));
            let arg = arg.trim();
            match op {
                "FROM" => ensure!(arg == "scratch", "{CONTAINERFILE}: FROM {arg}, not scratch"),
                "COPY" => {
                    let parts: Vec<&str> = arg.split_whitespace().collect();
                    let [_, dest] = parts[..] else {
                        bail!("{CONTAINERFILE}: COPY {arg}: want one source and a destination");
                    };
                    c.dest = dest.trim_start_matches('/').to_string();
                }
                "ENTRYPOINT" => c.entrypoint = exec_form(arg, "ENTRYPOINT")?,
                "CMD" => c.cmd = exec_form(arg, "CMD")?,
                "EXPOSE" => {
                    c.expose
                        .extend(arg.split_whitespace().map(|p| match p.contains('/') {
                            true => p.to_string(),
                            false => format!("{p}/tcp"),
                        }))
                }
                other => bail!("{CONTAINERFILE}: {other} is not understood by `cargo xtask dist`"),
            }
        }
        ensure!(!c.dest.is_empty(), "{CONTAINERFILE} copies no binary");
        Ok(c)
    }
}

/// A content-addressed blob: its bytes and OCI descriptor.
struct Blob {
    data: Vec<u8>,
    digest: String,
}

impl Blob {
    fn new(data: Vec<u8>) -> Blob {
        let digest = format!("sha256:{}", hex(&Sha256::digest(&data)));
        Blob { data, digest }
    }
    fn json(v: &Value) -> Blob {
        Blob::new(serde_json::to_vec(v).expect("JSON"))
    }
    fn path(&self) -> String {
        format!("blobs/sha256/{}", &self.digest["sha256:".len()..])
    }
    fn descriptor(&self, media_type: &str) -> Value {
        json!({"mediaType": media_type, "digest": self.digest, "size": self.data.len()})
    }
}

const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

/// A tar with one file, as the layer and the outer archive are written: owner root, mode
/// as given, time 0, so that the same inputs give the same digests.
fn tar_file<W: Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8], mode: u32) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data)
        .with_context(|| format!("adding {path} to a tar"))
}

/// The OCI image layout, as one tar: `index.json` names an image index of one manifest per
/// architecture (podman and docker's containerd store load the one of their platform), and
/// `manifest.json` (docker's own archive format, which docker before 25 reads) names each
/// architecture's image under `copyup-trace:VERSION-ARCH`, the first also under
/// `copyup-trace:VERSION`.
fn oci_archive(
    out: &Path,
    version: &str,
    c: &Containerfile,
    images: &[(&Target, &Path)],
) -> Result<()> {
    let mut blobs: Vec<Blob> = Vec::new();
    let mut manifests = Vec::new();
    let mut docker = Vec::new();
    for (i, (t, bin)) in images.iter().enumerate() {
        let mut layer = tar::Builder::new(Vec::new());
        tar_file(&mut layer, &c.dest, &fs::read(bin)?, 0o755)?;
        let layer = Blob::new(layer.into_inner()?);
        let exposed: serde_json::Map<String, Value> =
            c.expose.iter().map(|p| (p.clone(), json!({}))).collect();
        let config = Blob::json(&json!({
            "architecture": t.oci_arch,
            "os": "linux",
            "config": {
                "Entrypoint": c.entrypoint,
                "Cmd": c.cmd,
                "ExposedPorts": exposed,
                "Labels": {
                    "org.opencontainers.image.title": NAME,
                    "org.opencontainers.image.version": version,
                },
            },
            "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
            "history": [{"created_by": format!("COPY {} /{} (cargo xtask dist)", t.triple, c.dest)}],
        }));
        let manifest = Blob::json(&json!({
            "schemaVersion": 2,
            "mediaType": MT_MANIFEST,
            "config": config.descriptor(MT_CONFIG),
            "layers": [layer.descriptor(MT_LAYER)],
        }));
        let mut desc = manifest.descriptor(MT_MANIFEST);
        desc["platform"] = json!({"architecture": t.oci_arch, "os": "linux"});
        manifests.push(desc);
        let mut tags = vec![format!("{NAME}:{version}-{}", t.oci_arch)];
        if i == 0 {
            tags.insert(0, format!("{NAME}:{version}"));
        }
        docker.push(json!({"Config": config.path(), "RepoTags": tags, "Layers": [layer.path()]}));
        blobs.extend([layer, config, manifest]);
    }
    let index = Blob::json(&json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": manifests,
    }));
    let mut top = index.descriptor(MT_INDEX);
    top["annotations"] = json!({
        "io.containerd.image.name": format!("docker.io/library/{NAME}:{version}"),
        "org.opencontainers.image.ref.name": version,
    });
    let index_json = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [top],
    }))?;
    blobs.push(index);

    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    tar_file(
        &mut b,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        0o644,
    )?;
    tar_file(&mut b, "index.json", &index_json, 0o644)?;
    tar_file(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&docker)?,
        0o644,
    )?;
    let mut seen = std::collections::BTreeSet::new();
    for blob in &blobs {
        if seen.insert(blob.digest.clone()) {
            tar_file(&mut b, &blob.path(), &blob.data, 0o644)?;
        }
    }
    b.into_inner()?.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_the_package_section() {
        let m = "[package]\nname = \"x\"\nversion = \"0.1.0\"\n[dependencies]\nversion = \"9\"\n";
        assert_eq!(crate_version(m).unwrap(), "0.1.0");
        let m = "[dependencies]\nversion = \"9\"\n[package]\nversion=\"1.2.3-rc.1\"\n";
        assert_eq!(crate_version(m).unwrap(), "1.2.3-rc.1");
        assert_eq!(
            crate_version("[package]\nname = \"x\"\n")
                .unwrap_err()
                .to_string(),
            "copyup-trace/Cargo.toml has no version in [package]"
        );
        assert!(crate_version("[package]\nversion = \"1 2\"\n").is_err());
        assert_eq!(deb_version("0.1.0"), "0.1.0");
        assert_eq!(deb_version("0.2.0-rc.1"), "0.2.0~rc.1");
    }

    #[test]
    fn the_repository_containerfile() {
        let text = fs::read_to_string(workspace_root().join(CONTAINERFILE)).unwrap();
        assert_eq!(
            Containerfile::parse(&text).unwrap(),
            Containerfile {
                dest: "copyup-trace".into(),
                entrypoint: vec!["/copyup-trace".into()],
                cmd: vec!["--metrics".into(), "0.0.0.0:29435".into()],
                expose: vec!["29435/tcp".into()],
            }
        );
        let err = Containerfile::parse("FROM debian\n").unwrap_err();
        assert_eq!(err.to_string(), "Containerfile: FROM debian, not scratch");
        let err = Containerfile::parse("FROM scratch\nRUN true\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "Containerfile: RUN is not understood by `cargo xtask dist`"
        );
        let err = Containerfile::parse("FROM scratch\nCOPY a /a\nCMD x\n").unwrap_err();
        assert_eq!(err.to_string(), "Containerfile: CMD is not in exec form: x");
    }

    #[test]
    fn the_packaged_unit_runs_usr_bin() {
        let text = fs::read_to_string(workspace_root().join(crate::deploy::UNIT)).unwrap();
        let unit = packaged_unit(&text).unwrap();
        assert!(unit.contains("\nExecStart=/usr/bin/copyup-trace --metrics 0.0.0.0:29435\n"));
        assert!(!unit.contains("/usr/local"));
        assert!(unit.starts_with("# copyup-trace as a host service"));
        // Everything from [Unit] on is the repository's, but for the path.
        let body = &text[text.find("[Unit]").unwrap()..];
        assert_eq!(
            &unit[unit.find("[Unit]").unwrap()..],
            body.replace("/usr/local/bin/", "/usr/bin/")
        );
        assert!(packaged_unit("[Unit]\nExecStart=/opt/x\n").is_err());
    }

    #[test]
    fn control_file() {
        let c = control("0.1.0", "amd64", "A <a@b.invalid>", 12);
        let fields: Vec<&str> = c
            .lines()
            .filter(|l| !l.starts_with(' '))
            .map(|l| l.split_once(':').unwrap().0)
            .collect();
        assert_eq!(
            fields,
            [
                "Package",
                "Version",
                "Architecture",
                "Maintainer",
                "Installed-Size",
                "Section",
                "Priority",
                "Description"
            ]
        );
        assert!(c.contains("\nArchitecture: amd64\n"));
        assert!(c.contains("\nInstalled-Size: 12\n"));
        assert!(!c.contains("Depends"));
        assert!(c.ends_with(".\n"));
        // Continuation lines: one leading space, none empty ("." stands for a blank line).
        assert!(c
            .lines()
            .skip_while(|l| !l.starts_with("Description"))
            .skip(1)
            .all(|l| l.starts_with(" ") && !l.trim().is_empty()));
    }

    #[test]
    fn the_image_archive_is_content_addressed() {
        let dir = std::env::temp_dir().join(format!("xtask-oci-test.{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("bin");
        fs::write(&bin, b"\x7fELF not really").unwrap();
        let c = Containerfile::parse(
            "FROM scratch\nCOPY x /copyup-trace\nENTRYPOINT [\"/copyup-trace\"]\nCMD [\"-a\"]\nEXPOSE 1\n",
        )
        .unwrap();
        let out = dir.join("a.tar");
        oci_archive(&out, "0.1.0", &c, &[(&TARGETS[0], &bin)]).unwrap();
        let first = fs::read(&out).unwrap();
        oci_archive(&out, "0.1.0", &c, &[(&TARGETS[0], &bin)]).unwrap();
        assert_eq!(first, fs::read(&out).unwrap(), "not reproducible");

        let mut files = std::collections::BTreeMap::new();
        for e in tar::Archive::new(&first[..]).entries().unwrap() {
            let mut e = e.unwrap();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            files.insert(e.path().unwrap().to_string_lossy().into_owned(), data);
        }
        let get = |name: &str| -> Value { serde_json::from_slice(&files[name]).unwrap() };
        let blob = |d: &Value| -> Value {
            let d = d.as_str().unwrap();
            let data = &files[&format!("blobs/sha256/{}", &d[7..])];
            assert_eq!(format!("sha256:{}", hex(&Sha256::digest(data))), d);
            serde_json::from_slice(data).unwrap_or(Value::Null)
        };
        let index = get("index.json");
        assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
        let top = &index["manifests"][0];
        assert_eq!(
            top["annotations"]["org.opencontainers.image.ref.name"],
            "0.1.0"
        );
        let list = blob(&top["digest"]);
        assert_eq!(list["manifests"][0]["platform"]["architecture"], "amd64");
        let manifest = blob(&list["manifests"][0]["digest"]);
        let config = blob(&manifest["config"]["digest"]);
        assert_eq!(config["config"]["Entrypoint"], json!(["/copyup-trace"]));
        assert_eq!(config["config"]["Cmd"], json!(["-a"]));
        assert_eq!(config["config"]["ExposedPorts"], json!({"1/tcp": {}}));
        let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
        assert_eq!(config["rootfs"]["diff_ids"], json!([layer_digest]));
        let layer = &files[&format!("blobs/sha256/{}", &layer_digest[7..])];
        let mut entries = tar::Archive::new(&layer[..]);
        let e = entries.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("copyup-trace"));
        assert_eq!(e.header().mode().unwrap(), 0o755);
        let docker = get("manifest.json");
        assert_eq!(
            docker[0]["RepoTags"],
            json!(["copyup-trace:0.1.0", "copyup-trace:0.1.0-amd64"])
        );
        assert_eq!(
            docker[0]["Layers"][0],
            format!("blobs/sha256/{}", &layer_digest[7..])
        );
        assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
        let _ = fs::remove_dir_all(&dir);
    }
}
