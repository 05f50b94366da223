//! Runs a shell script inside a Debian guest kernel under qemu (TCG), in a busybox
//! initramfs or in the Debian userland of `userland` ([`Image`]), and hands back what it
//! printed. Getting the kernel is `kernels`' job; what
//! the script does and what its output means is the callers' (`scenarios`, `guestbench`).
//!
//! ttyS0 carries the kernel console; ttyS1 carries only the script's output followed by a
//! `@@GUEST-DONE rc=<status>` line, so results never mix with kernel messages.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use copyup_trace_common::kabi::{S_IFCHR, S_IFDIR, S_IFMT, S_IFREG};

use crate::cmd::tail;
use crate::kernels::{cache_dir, GuestKernel};
use crate::progress::Step;
use crate::userland::Rootfs;

/// What the guest boots into.
#[derive(Clone, Copy)]
pub enum Image<'a> {
    /// busybox and the run's files in an initramfs made for the run: the kernel scenarios.
    Busybox,
    /// The Debian userland with its container runtimes (`userland`), the run's files
    /// unpacked on top of it. Scripts run under dash with Debian's tools.
    Userland(&'a Rootfs),
}

impl Image<'_> {
    /// Guest memory: the userland's tree (about 600 MB) lives in RAM, in a tmpfs capped at
    /// half of it, next to the runtimes' images and containers.
    fn memory(self) -> &'static str {
        match self {
            Image::Busybox => "1024M",
            Image::Userland(_) => "3072M",
        }
    }
}

pub struct GuestFile {
    /// Absolute path inside the guest; parent directories are created.
    pub guest_path: String,
    pub host_path: PathBuf,
    /// Permission bits, e.g. 0o755.
    pub mode: u32,
}

pub struct GuestRun {
    /// Everything the guest kernel printed on ttyS0.
    pub console: String,
    /// Everything the script wrote (stdout+stderr), without the final marker line.
    pub results: String,
    /// The script's exit status.
    pub exit_code: i32,
    pub wall: Duration,
    /// The first console line reporting a kernel oops, BUG, panic or WARN (only with
    /// `run_guest_clocked`; `run_guest` fails instead).
    pub fault: Option<String>,
}

/// How guest time runs. `Wall` is plain TCG: guest time follows the host's clock, so a
/// busy host slows it. `Icount` (`-icount shift=0,sleep=off`) advances guest time by one
/// nanosecond per emulated instruction and skips idle waits, so guest-measured durations
/// count work and repeat whatever else the host is doing (one host thread then runs all
/// vCPUs in turn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Wall,
    Icount,
}

const DONE_MARKER: &str = "@@GUEST-DONE rc=";

/// Debian's busybox-static; the dynamic /usr/bin/busybox would need a libc in the guest.
const BUSYBOX: &str = "/bin/busybox";

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
/bin/busybox --install -s /sbin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
m() { mount "$@" || echo "init: mount $* failed"; }
m -t proc proc /proc
m -t sysfs sysfs /sys
m -t devtmpfs devtmpfs /dev
m -t tmpfs tmpfs /tmp
m -t tmpfs tmpfs /run
m -t tracefs tracefs /sys/kernel/tracing
m -t debugfs debugfs /sys/kernel/debug
m -t bpf bpf /sys/fs/bpf
m -t cgroup2 cgroup2 /sys/fs/cgroup
insmod /lib/overlay.ko || echo "init: insmod overlay.ko failed"
# Raw mode: no \n -> \r\n translation and no echo of anything qemu might feed back.
stty -F /dev/ttyS1 raw -echo 2>/dev/null
cd /
echo "init: running /script.sh"
sh /script.sh </dev/null >/dev/ttyS1 2>&1
rc=$?
echo "init: /script.sh exited with $rc"
# The last close of the tty waits until its output has left the UART.
echo "@@GUEST-DONE rc=$rc" >/dev/ttyS1
poweroff -f
echo o >/proc/sysrq-trigger
"#;

/// /init of the userland guest, the counterpart of [`INIT`].
const USERLAND_INIT: &str = r#"#!/bin/sh
# The initramfs is the kernel's rootfs, which cannot be pivot_root'ed away from (crun and
# runc fail with EINVAL): make / a bind mount of itself moved over /, as switch_root does,
# and go on chrooted into it.
if [ "$1" != stage2 ]; then
    mount --bind / /mnt && cd /mnt && mount --move . / && exec chroot . /init stage2
    echo "init: could not move / onto a mount of its own"
fi
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
m() { mount "$@" || echo "init: mount $* failed"; }
m -t proc proc /proc
m -t sysfs sysfs /sys
m -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
m -t devpts devpts /dev/pts
m -t tmpfs tmpfs /dev/shm
m -t tmpfs tmpfs /tmp
m -t tmpfs tmpfs /run
m -t tracefs tracefs /sys/kernel/tracing
m -t debugfs debugfs /sys/kernel/debug
m -t bpf bpf /sys/fs/bpf
m -t cgroup2 cgroup2 /sys/fs/cgroup
insmod /lib/overlay.ko || echo "init: insmod overlay.ko failed"
ip link set lo up
# No systemd: podman manages cgroups itself and logs its events to a file.
mkdir -p /etc/containers
printf '[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
' >/etc/containers/containers.conf
stty -F /dev/ttyS1 raw -echo 2>/dev/null
cd /
echo "init: running /script.sh"
# The script's output goes to a file and reaches ttyS1 only once the script is done: the
# runtimes' daemons and containers started meanwhile can hang up or reopen the terminal
# they inherit, and a hang-up discards what the slow emulated UART has not sent yet.
sh /script.sh </dev/null >/run/script.out 2>&1
rc=$?
echo "init: /script.sh exited with $rc"
cat /run/script.out >/dev/ttyS1
echo "@@GUEST-DONE rc=$rc" >/dev/ttyS1
echo o >/proc/sysrq-trigger
sleep 10
"#;

/// The shared libraries `binary` loads (from `ldd`), at the same paths in the guest.
pub fn shared_libs(binary: &Path) -> Result<Vec<GuestFile>> {
    let libs = crate::cmd::capture(Command::new("ldd").arg(binary))?;
    let mut files = Vec::new();
    for line in libs.lines() {
        // "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        let Some(path) = path.filter(|p| p.starts_with('/')) else {
            continue;
        };
        files.push(GuestFile {
            guest_path: path.to_string(),
            host_path: fs::canonicalize(path).with_context(|| format!("resolving {path}"))?,
            mode: 0o755,
        });
    }
    Ok(files)
}

/// Boots `kernel` with a busybox initramfs holding `files`, runs `script` with `sh` and returns
/// what it printed and its exit status. qemu is killed if it is still running after `timeout`.
pub fn run_guest(
    kernel: &GuestKernel,
    files: &[GuestFile],
    script: &str,
    timeout: Duration,
) -> Result<GuestRun> {
    run_guest_with(
        kernel,
        Image::Busybox,
        files,
        script,
        timeout,
        false,
        Clock::Wall,
    )
}

/// As `run_guest`, in `image`.
pub fn run_guest_in(
    kernel: &GuestKernel,
    image: Image,
    files: &[GuestFile],
    script: &str,
    timeout: Duration,
) -> Result<GuestRun> {
    run_guest_with(kernel, image, files, script, timeout, false, Clock::Wall)
}

/// As `run_guest`, but a kernel fault is reported in `GuestRun::fault` with whatever the
/// script printed before the guest stopped, rather than as an error; guest time runs by
/// `clock`.
pub fn run_guest_clocked(
    kernel: &GuestKernel,
    files: &[GuestFile],
    script: &str,
    timeout: Duration,
    clock: Clock,
) -> Result<GuestRun> {
    run_guest_with(kernel, Image::Busybox, files, script, timeout, true, clock)
}

fn run_guest_with(
    kernel: &GuestKernel,
    image: Image,
    files: &[GuestFile],
    script: &str,
    timeout: Duration,
    tolerate_faults: bool,
    clock: Clock,
) -> Result<GuestRun> {
    let run_dir = new_run_dir()?;
    let step = Step::start(format!(
        "booting {}{} under qemu (TCG), running the guest script",
        kernel.version,
        match image {
            Image::Busybox => "",
            Image::Userland(_) => " with the Debian userland",
        }
    ));
    let res = run_in(
        &run_dir,
        kernel,
        Machine { image, clock },
        files,
        script,
        timeout,
        tolerate_faults,
    );
    // On failure the initramfs and logs stay for inspection; the error names the directory.
    if let Ok(r) = &res {
        step.done();
        if let Some(line) = &r.fault {
            eprintln!("the guest kernel reported a fault: {line}");
        }
        let _ = fs::remove_dir_all(&run_dir);
    }
    res.with_context(|| {
        format!(
            "guest run on {} (files in {})",
            kernel.version,
            run_dir.display()
        )
    })
}

fn new_run_dir() -> Result<PathBuf> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let runs = cache_dir()?.join("guest-runs");
    prune_old_runs(&runs);
    let dir = runs.join(format!("{}-{nanos}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Failed runs are kept for inspection; drop those older than a day so they do not pile up.
fn prune_old_runs(runs: &Path) {
    let Ok(entries) = fs::read_dir(runs) else {
        return;
    };
    let day = Duration::from_secs(24 * 3600);
    for e in entries.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > day);
        if old {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// What qemu boots and how its clock runs.
struct Machine<'a> {
    image: Image<'a>,
    clock: Clock,
}

fn run_in(
    dir: &Path,
    kernel: &GuestKernel,
    Machine { image, clock }: Machine,
    files: &[GuestFile],
    script: &str,
    timeout: Duration,
    tolerate_faults: bool,
) -> Result<GuestRun> {
    let initrd = dir.join("initramfs.cpio");
    build_initramfs(&initrd, kernel, image, files, script)?;

    let console_log = dir.join("console.log");
    let results_log = dir.join("results.log");
    let qemu_log = dir.join("qemu.log");
    let qemu_out_file =
        File::create(&qemu_log).with_context(|| format!("creating {}", qemu_log.display()))?;
    let mut cmd = Command::new("qemu-system-x86_64");
    // Multi-threaded TCG can run code that another vCPU is patching without seeing the
    // patch complete: as the kernel patched its static keys for the tracer, it once hit
    // a stale int3 in trace_syscall_exit (7.3), and once a chown spun in a soft lockup
    // on 6.1 as fentry links were torn down under it (likely the same cause). The two
    // vCPUs therefore take turns on one host thread, where patching is seen as on
    // hardware. Most guest time is waiting, not emulation: 476 s for the 6.1 line
    // either way.
    let accel = "tcg,thread=single";
    cmd.args(["-accel", accel, "-m", image.memory(), "-smp", "2"]);
    if clock == Clock::Icount {
        cmd.args(["-icount", "shift=0,sleep=off"]);
    }
    // QEMU's TCG has corrupted SLUB's cmpxchg16b fast path under icount (a double fault
    // in kmem_cache_alloc on every boot) and once under the userland's allocation load
    // (an int3 oops there while podman made a cgroup): without cx16 SLUB takes its
    // locked path, the same for every mode measured.
    if clock == Clock::Icount || matches!(image, Image::Userland(_)) {
        cmd.args(["-cpu", "qemu64,-cx16"]);
    }
    cmd.args([
        "-display",
        "none",
        "-monitor",
        "none",
        "-nodefaults",
        "-no-reboot",
    ])
    .arg("-kernel")
    .arg(&kernel.vmlinuz)
    .arg("-initrd")
    .arg(&initrd)
    .args([
        "-append",
        "console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init",
    ])
    // First -serial is ttyS0, the second ttyS1.
    .arg("-serial")
    .arg(format!("file:{}", console_log.display()))
    .arg("-serial")
    .arg(format!("file:{}", results_log.display()))
    .stdin(Stdio::null())
    .stdout(qemu_out_file.try_clone()?)
    .stderr(qemu_out_file);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .context("starting qemu-system-x86_64 (package qemu-system-x86)")?;

    let mut marker_seen_at: Option<Instant> = None;
    let mut fault_seen_at: Option<Instant> = None;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        let now = Instant::now();
        if now - start >= timeout {
            break None;
        }
        // qemu can stop instead of exiting (e.g. when poweroff misbehaves); once the script
        // is done, give it a moment to exit and then stop waiting.
        if marker_seen_at.is_none() && file_tail_contains(&results_log, DONE_MARKER) {
            marker_seen_at = Some(now);
        }
        if marker_seen_at.is_some_and(|t| now - t > Duration::from_secs(10)) {
            break None;
        }
        // A faulted kernel may hang instead of finishing the script: give it a little
        // while, then stop waiting.
        if fault_seen_at.is_none() && kernel_fault(&read_serial(&console_log)).is_some() {
            fault_seen_at = Some(now);
        }
        if fault_seen_at.is_some_and(|t| now - t > Duration::from_secs(60)) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if status.is_none() {
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    let wall = start.elapsed();

    let console = read_serial(&console_log);
    let raw_results = read_serial(&results_log);
    let qemu_out = read_serial(&qemu_log);
    let tails = || {
        format!(
            "--- console (last 40 lines) ---\n{}\n--- results (last 40 lines) ---\n{}{}",
            tail(&console, 40),
            tail(&raw_results, 40),
            if qemu_out.trim().is_empty() {
                String::new()
            } else {
                format!("\n--- qemu ---\n{}", tail(&qemu_out, 20))
            }
        )
    };

    let fault = kernel_fault(&console).map(str::to_string);
    if fault.is_some() && tolerate_faults {
        let (results, exit_code) = split_marker(&raw_results).unwrap_or((raw_results.clone(), -1));
        return Ok(GuestRun {
            console,
            results,
            exit_code,
            wall,
            fault,
        });
    }
    let Some((results, exit_code)) = split_marker(&raw_results) else {
        match status {
            None => bail!(
                "guest did not finish within {:?}; qemu killed\n{}",
                timeout,
                tails()
            ),
            Some(s) => bail!(
                "qemu exited ({s}) before the script reported its status \
                 (kernel panic, or /init died?)\n{}",
                tails()
            ),
        }
    };
    // A tracer that crashes or warns in the kernel fails the run, whatever the script said.
    if let Some(line) = kernel_fault(&console) {
        bail!("the guest kernel reported a fault: {line}\n{}", tails());
    }
    if let Some(s) = status {
        if !s.success() {
            bail!(
                "qemu exited with {s} after the script finished\n{}",
                tails()
            );
        }
    }
    Ok(GuestRun {
        console,
        results,
        exit_code,
        wall,
        fault: None,
    })
}

/// The first console line that reports a kernel oops, BUG, panic or WARN splat.
fn kernel_fault(console: &str) -> Option<&str> {
    const MARKS: &[&str] = &[
        "BUG:",
        "Oops:",
        "general protection fault",
        "Kernel panic",
        "cut here ]",
        "WARNING: CPU:",
    ];
    console
        .lines()
        .find(|l| MARKS.iter().any(|m| l.contains(m)))
}

/// Splits the serial output at the last marker: (text before it, status in it).
fn split_marker(out: &str) -> Option<(String, i32)> {
    let at = out.rfind(DONE_MARKER)?;
    let rest = &out[at + DONE_MARKER.len()..];
    let code = rest.lines().next()?.trim().parse().ok()?;
    Some((out[..at].to_owned(), code))
}

/// Reads a serial log, lossily, with \r\n normalised to \n.
fn read_serial(path: &Path) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes).replace("\r\n", "\n")
}

/// Whether the last few hundred bytes of `path` contain `needle`; cheap enough to poll.
fn file_tail_contains(path: &Path, needle: &str) -> bool {
    let check = || -> io::Result<bool> {
        let mut f = File::open(path)?;
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(512)))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).contains(needle))
    };
    check().unwrap_or(false)
}

fn build_initramfs(
    out: &Path,
    kernel: &GuestKernel,
    image: Image,
    files: &[GuestFile],
    script: &str,
) -> Result<()> {
    let mut file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    if let Image::Userland(rootfs) = image {
        // The kernel unpacks concatenated archives in turn: the cached tree, then this run's
        // files. Debian's /bin and /lib are links into /usr, which the files follow.
        let mut tree = File::open(&rootfs.cpio)
            .with_context(|| format!("opening {}", rootfs.cpio.display()))?;
        io::copy(&mut tree, &mut file)
            .with_context(|| format!("copying {}", rootfs.cpio.display()))?;
        // The kernel replaces an existing entry of another type (a link by a directory), so
        // the files go to the directories the links name.
        let files: Vec<GuestFile> = files
            .iter()
            .map(|f| GuestFile {
                guest_path: merged_usr(&f.guest_path),
                host_path: f.host_path.clone(),
                mode: f.mode,
            })
            .collect();
        let mut w = Cpio::new(BufWriter::new(file));
        w.host_file("/usr/lib/overlay.ko", &kernel.overlay_ko, 0o644)?;
        w.data_file("/init", USERLAND_INIT.as_bytes(), 0o755)?;
        w.data_file("/script.sh", script.as_bytes(), 0o755)?;
        add_files(&mut w, &files)?;
        return w.finish();
    }
    let mut w = Cpio::new(BufWriter::new(file));
    for d in [
        "/bin", "/sbin", "/dev", "/lib", "/proc", "/sys", "/tmp", "/run", "/root",
    ] {
        w.dir(d)?;
    }
    // The kernel opens /dev/console for /init before anything is mounted.
    w.char_dev("/dev/console", 0o600, 5, 1)?;
    w.char_dev("/dev/null", 0o666, 1, 3)?;
    w.host_file("/bin/busybox", Path::new(BUSYBOX), 0o755)
        .context("busybox-static is needed in the guest (apt-get install busybox-static)")?;
    w.host_file("/lib/overlay.ko", &kernel.overlay_ko, 0o644)?;
    w.data_file("/init", INIT.as_bytes(), 0o755)?;
    w.data_file("/script.sh", script.as_bytes(), 0o755)?;
    add_files(&mut w, files)?;
    w.finish()
}

/// Debian's /bin, /sbin, /lib and /lib64 are links into /usr: `/bin/x` -> `/usr/bin/x`.
fn merged_usr(path: &str) -> String {
    for top in ["/bin/", "/sbin/", "/lib/", "/lib64/"] {
        if path.starts_with(top) {
            return format!("/usr{path}");
        }
    }
    path.to_string()
}

fn add_files<W: Write>(w: &mut Cpio<W>, files: &[GuestFile]) -> Result<()> {
    for f in files {
        if !f.guest_path.starts_with('/') || f.guest_path.split('/').any(|c| c == "..") {
            bail!("guest path {:?} must be absolute without ..", f.guest_path);
        }
        if let Some(parent) = Path::new(&f.guest_path).parent() {
            let mut acc = PathBuf::new();
            for c in parent.components().skip(1) {
                acc.push(c);
                w.dir(&format!("/{}", acc.display()))?;
            }
        }
        w.host_file(&f.guest_path, &f.host_path, f.mode & 0o7777)?;
    }
    Ok(())
}

/// A minimal writer for the "newc" cpio format the kernel unpacks as an initramfs.
struct Cpio<W: Write> {
    w: W,
    ino: u32,
    written: u64,
    seen: BTreeSet<String>,
}

impl<W: Write> Cpio<W> {
    fn new(w: W) -> Self {
        Cpio {
            w,
            ino: 1,
            written: 0,
            seen: BTreeSet::new(),
        }
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        // Parent directories are shared between files; emit each once.
        if self.seen.contains(path) {
            return Ok(());
        }
        self.entry(path, S_IFDIR | 0o755, 0, (0, 0), &mut io::empty())
    }

    fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        self.entry(path, S_IFCHR | perm, 0, (major, minor), &mut io::empty())
    }

    fn data_file(&mut self, path: &str, data: &[u8], perm: u32) -> Result<()> {
        self.entry(
            path,
            S_IFREG | perm,
            data.len() as u64,
            (0, 0),
            &mut &data[..],
        )
    }

    fn host_file(&mut self, path: &str, host: &Path, perm: u32) -> Result<()> {
        let f = File::open(host).with_context(|| format!("opening {}", host.display()))?;
        let len = f.metadata()?.len();
        self.entry(path, S_IFREG | perm, len, (0, 0), &mut f.take(len))
            .with_context(|| format!("adding {} as {path}", host.display()))
    }

    fn entry(
        &mut self,
        path: &str,
        mode: u32,
        size: u64,
        rdev: (u32, u32),
        data: &mut dyn Read,
    ) -> Result<()> {
        if !self.seen.insert(path.to_owned()) {
            bail!("{path} is put into the initramfs twice");
        }
        let size32 = u32::try_from(size).map_err(|_| anyhow!("{path} is too large for cpio"))?;
        // newc stores names without the leading slash.
        let name = path.trim_start_matches('/');
        self.header(mode, size32, rdev, name)?;
        let copied = io::copy(data, &mut self.w)?;
        if copied != size {
            bail!("{path}: expected {size} bytes, got {copied}");
        }
        self.written += copied;
        self.pad()
    }

    fn header(&mut self, mode: u32, size: u32, rdev: (u32, u32), name: &str) -> Result<()> {
        let nlink = if mode & S_IFMT == S_IFDIR { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            size,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.ino += 1;
        let mut h = String::from("070701");
        for f in fields {
            h.push_str(&format!("{f:08x}"));
        }
        self.w.write_all(h.as_bytes())?;
        self.w.write_all(name.as_bytes())?;
        self.w.write_all(&[0])?;
        self.written += h.len() as u64 + name.len() as u64 + 1;
        self.pad()
    }

    /// Header+name and file data are each padded to a multiple of 4 bytes.
    fn pad(&mut self) -> Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.w.write_all(&[0u8; 3][..n])?;
        self.written += n as u64;
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        self.header(0, 0, (0, 0), "TRAILER!!!")?;
        self.w.flush()?;
        Ok(())
    }
}

const SELFTEST_SCRIPT: &str = "\
uname -r
grep overlay /proc/filesystems
ls /sys/kernel/btf/ | head
test -e /sys/bus/event_source/devices/kprobe && echo kprobe-pmu-ok
cat /etc/selftest-file
mkdir -p /tmp/l /tmp/u /tmp/w /tmp/m &&
  mount -t overlay overlay -o lowerdir=/tmp/l,upperdir=/tmp/u,workdir=/tmp/w /tmp/m &&
  echo overlay-mounted
";

/// Checks the whole harness on every guest kernel: boot, module load, kprobe PMU, an overlay
/// mount, file injection, exit status passing and the timeout.
pub fn selftest() -> Result<()> {
    crate::setup::ensure_host_tools()?;
    let kernels = crate::kernels::ensure_kernels(&["6.1", "6.12"])?;
    let dir = new_run_dir()?;
    let injected = dir.join("selftest-file");
    fs::write(&injected, "injected-file-ok\n")?;
    let files = [GuestFile {
        guest_path: "/etc/selftest-file".into(),
        host_path: injected,
        mode: 0o644,
    }];
    let res = (|| -> Result<()> {
        for k in &kernels {
            println!(
                "== {} series: {} ({})",
                k.series,
                k.version,
                k.vmlinuz.display()
            );
            let run = run_guest(k, &files, SELFTEST_SCRIPT, Duration::from_secs(120))?;
            print!("{}", run.results);
            println!("-- exit {} in {:.1?}", run.exit_code, run.wall);
            let lines: Vec<&str> = run.results.lines().collect();
            for want in [
                k.version.as_str(),
                "nodev\toverlay",
                "vmlinux",
                "kprobe-pmu-ok",
                "injected-file-ok",
                "overlay-mounted",
            ] {
                if !lines.contains(&want) {
                    bail!(
                        "{}: expected a line {want:?} in the guest output",
                        k.version
                    );
                }
            }
            if run.exit_code != 0 {
                bail!("{}: script exited with {}", k.version, run.exit_code);
            }
            if !run.console.contains("init: running /script.sh") {
                bail!(
                    "{}: console lacks /init's messages:\n{}",
                    k.version,
                    run.console
                );
            }

            let run = run_guest(
                k,
                &[],
                "echo to-stderr >&2; exit 7",
                Duration::from_secs(120),
            )?;
            if run.exit_code != 7 || run.results != "to-stderr\n" {
                bail!(
                    "{}: expected status 7 and \"to-stderr\", got {} and {:?}",
                    k.version,
                    run.exit_code,
                    run.results
                );
            }
            println!("-- nonzero status passed through ({:.1?})", run.wall);
        }
        let k = &kernels[0];
        let started = Instant::now();
        // Run inside the selftest's own directory, so the expected failure leaves nothing behind.
        let hang_dir = dir.join("hang");
        fs::create_dir_all(&hang_dir)?;
        let script = "echo hanging; sleep 1000";
        match run_in(
            &hang_dir,
            k,
            Machine {
                image: Image::Busybox,
                clock: Clock::Wall,
            },
            &[],
            script,
            Duration::from_secs(20),
            false,
        ) {
            Ok(_) => bail!("a script that sleeps forever returned"),
            Err(e) if e.to_string().contains("did not finish within") => {
                println!("-- hanging guest killed after {:.1?}", started.elapsed());
            }
            Err(e) => return Err(e.context("expected a timeout")),
        }
        Ok(())
    })();
    let _ = fs::remove_dir_all(&dir);
    res?;
    println!("guest selftest passed");
    Ok(())
}
