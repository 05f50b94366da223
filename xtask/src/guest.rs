//! Runs a shell script inside a Debian guest kernel under qemu (TCG), in a busybox
//! initramfs or in the Debian userland of `userland` ([`Image`]), and hands back what it
//! printed. Getting the kernel is `kernels`' job; what
//! the script does and what its output means is the callers' (`scenarios`, `guestbench`).
//!
//! The guest is an x86-64 PC (`qemu-system-x86_64`) or, for arm64 kernels, an arm64
//! `virt` board (`qemu-system-aarch64 -M virt -cpu max`), [`Board`]. One serial port
//! carries the kernel console (ttyS0 on the PC, the PL011 ttyAMA0 on `virt`); a second
//! (ttyS1 on the PC, a PCI 16550 that is ttyS0 on `virt`, which has one UART of its own)
//! carries only the script's output followed by a
//! `@@GUEST-DONE rc=<status> taint=<before>,<after>` line, so results never mix with
//! kernel messages. A kernel report on the console (oops, BUG, panic, WARN) or a taint
//! flag the kernel gained while the script ran fails the run ([`Fault`]).

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
use copyup_trace_common::arch::Arch;

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
    /// Everything the guest kernel printed on its console.
    pub console: String,
    /// Everything the script wrote (stdout+stderr), without the final marker line.
    pub results: String,
    /// The script's exit status.
    pub exit_code: i32,
    pub wall: Duration,
    /// What the kernel reported against itself (only with `run_guest_clocked`;
    /// `run_guest` fails instead).
    pub fault: Option<Fault>,
}

/// Something the guest kernel reported against itself: a report on its console (oops,
/// BUG, panic, WARN splat), a taint flag it gained while the script ran, or both.
#[derive(Debug)]
pub struct Fault {
    /// One line: the report's first line, else the new taint flags.
    pub headline: String,
    /// The report's first [`REPORT_LINES`] console lines and the new taint flags.
    pub report: String,
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

/// vCPUs a guest gets unless asked otherwise.
pub const DEFAULT_CPUS: u32 = 2;

const DONE_MARKER: &str = "@@GUEST-DONE rc=";

/// How a guest of one architecture is booted, and its serial ports.
struct Board {
    qemu: &'static str,
    /// The Debian package that has `qemu`.
    package: &'static str,
    /// Machine options: board and CPU.
    machine: &'static [&'static str],
    /// The kernel console's device (`console=`).
    console: &'static str,
    /// The port that carries the script's output: its qemu options, given the log file,
    /// and its device in the guest.
    results: fn(&Path) -> Vec<String>,
    results_tty: &'static str,
}

fn board(arch: Arch) -> Board {
    match arch {
        Arch::X86_64 => Board {
            qemu: "qemu-system-x86_64",
            package: "qemu-system-x86",
            machine: &[],
            console: "ttyS0",
            // The second -serial is ttyS1.
            results: |log| vec!["-serial".into(), format!("file:{}", log.display())],
            results_tty: "/dev/ttyS1",
        },
        // `virt` has one UART (the PL011, ttyAMA0) for the console; the results go to a
        // 16550 on its PCI bus, which the 8250 driver (built in) names ttyS0. `max` has
        // every feature TCG emulates; `pauth-impdef` swaps pointer authentication's QARMA
        // for a cheap hash, which costs TCG far less and changes nothing the kernel sees.
        Arch::Aarch64 => Board {
            qemu: "qemu-system-aarch64",
            package: "qemu-system-arm",
            machine: &["-M", "virt", "-cpu", "max,pauth-impdef=on"],
            console: "ttyAMA0",
            results: |log| {
                vec![
                    "-chardev".into(),
                    format!("file,id=results,path={}", log.display()),
                    "-device".into(),
                    "pci-serial,chardev=results".into(),
                ]
            },
            results_tty: "/dev/ttyS0",
        },
    }
}

/// Where /init writes the script's output: replaced by the board's `results_tty`.
const RESULTS_TTY: &str = "@RESULTS_TTY@";

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
# Taint flags before and after the script (an unsigned module taints as it loads).
taint0=$(cat /proc/sys/kernel/tainted)
# Raw mode: no \n -> \r\n translation and no echo of anything qemu might feed back.
stty -F @RESULTS_TTY@ raw -echo 2>/dev/null
cd /
echo "init: running /script.sh"
sh /script.sh </dev/null >@RESULTS_TTY@ 2>&1
rc=$?
echo "init: /script.sh exited with $rc"
taint1=$(cat /proc/sys/kernel/tainted)
# The last close of the tty waits until its output has left the UART.
echo "@@GUEST-DONE rc=$rc taint=$taint0,$taint1" >@RESULTS_TTY@
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
# A boot whose files bring a PID 1 of their own (scenarios::userland::deb: systemd) hands
# over to it here; it runs /script.sh and reports as below.
[ -x /usr/lib/copyup-guest/boot ] && exec /usr/lib/copyup-guest/boot
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
taint0=$(cat /proc/sys/kernel/tainted)
ip link set lo up
# No systemd: podman manages cgroups itself and logs its events to a file.
mkdir -p /etc/containers
printf '[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
' >/etc/containers/containers.conf
stty -F @RESULTS_TTY@ raw -echo 2>/dev/null
cd /
echo "init: running /script.sh"
# The script's output goes to a file and reaches ttyS1 only once the script is done: the
# runtimes' daemons and containers started meanwhile can hang up or reopen the terminal
# they inherit, and a hang-up discards what the slow emulated UART has not sent yet.
sh /script.sh </dev/null >/run/script.out 2>&1
rc=$?
echo "init: /script.sh exited with $rc"
taint1=$(cat /proc/sys/kernel/tainted)
cat /run/script.out >@RESULTS_TTY@
echo "@@GUEST-DONE rc=$rc taint=$taint0,$taint1" >@RESULTS_TTY@
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
    let machine = Machine {
        image: Image::Busybox,
        clock: Clock::Wall,
        cpus: DEFAULT_CPUS,
    };
    run_guest_with(kernel, machine, files, script, timeout, false)
}

/// As `run_guest`, in `image`, but a kernel fault is reported in `GuestRun::fault` with
/// whatever the script printed, rather than as an error: the caller fails the run and
/// can still judge what the script saved.
pub fn run_guest_in(
    kernel: &GuestKernel,
    image: Image,
    files: &[GuestFile],
    script: &str,
    timeout: Duration,
) -> Result<GuestRun> {
    let machine = Machine {
        image,
        clock: Clock::Wall,
        cpus: DEFAULT_CPUS,
    };
    run_guest_with(kernel, machine, files, script, timeout, true)
}

/// As `run_guest`, but a kernel fault is reported in `GuestRun::fault` with whatever the
/// script printed before the guest stopped, rather than as an error; guest time runs by
/// `clock`, on `cpus` vCPUs.
pub fn run_guest_clocked(
    kernel: &GuestKernel,
    files: &[GuestFile],
    script: &str,
    timeout: Duration,
    (clock, cpus): (Clock, u32),
) -> Result<GuestRun> {
    let machine = Machine {
        image: Image::Busybox,
        clock,
        cpus,
    };
    run_guest_with(kernel, machine, files, script, timeout, true)
}

fn run_guest_with(
    kernel: &GuestKernel,
    machine: Machine,
    files: &[GuestFile],
    script: &str,
    timeout: Duration,
    tolerate_faults: bool,
) -> Result<GuestRun> {
    let run_dir = new_run_dir()?;
    let step = Step::start(format!(
        "booting {}{} under qemu (TCG), running the guest script",
        kernel.version,
        match machine.image {
            Image::Busybox => "",
            Image::Userland(_) => " with the Debian userland",
        }
    ));
    let mut res = run_in(
        &run_dir,
        kernel,
        machine,
        files,
        script,
        timeout,
        tolerate_faults,
    );
    // On failure or a fault the initramfs and logs stay for inspection, named in the
    // error or the fault's report.
    if let Ok(r) = &mut res {
        step.done();
        match &mut r.fault {
            None => {
                let _ = fs::remove_dir_all(&run_dir);
            }
            Some(f) => f
                .report
                .push_str(&format!("\n(console and logs in {})", run_dir.display())),
        }
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

/// What qemu boots, how its clock runs and on how many vCPUs.
struct Machine<'a> {
    image: Image<'a>,
    clock: Clock,
    cpus: u32,
}

fn run_in(
    dir: &Path,
    kernel: &GuestKernel,
    Machine { image, clock, cpus }: Machine,
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
    let board = board(kernel.arch);
    let mut cmd = Command::new(board.qemu);
    cmd.args(board.machine);
    // Multi-threaded TCG can run code that another vCPU is patching without seeing the
    // patch complete: as the kernel patched its static keys for the tracer, it once hit
    // a stale int3 in trace_syscall_exit (7.3), and once a chown spun in a soft lockup
    // on 6.1 as fentry links were torn down under it (likely the same cause). The two
    // vCPUs therefore take turns on one host thread, where patching is seen as on
    // hardware. Most guest time is waiting, not emulation: 476 s for the 6.1 line
    // either way.
    let accel = "tcg,thread=single";
    cmd.args(["-accel", accel, "-m", image.memory()]);
    cmd.arg("-smp").arg(cpus.to_string());
    if clock == Clock::Icount {
        cmd.args(["-icount", "shift=0,sleep=off"]);
    }
    // QEMU's TCG has corrupted SLUB's cmpxchg16b fast path under icount (a double fault
    // in kmem_cache_alloc on every boot) and once under the userland's allocation load
    // (an int3 oops there while podman made a cgroup): without cx16 SLUB takes its
    // locked path, the same for every mode measured.
    if kernel.arch == Arch::X86_64
        && (clock == Clock::Icount || matches!(image, Image::Userland(_)))
    {
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
    // The console prints messages more severe than loglevel: 5 lets KERN_WARNING (4)
    // through, so WARN splats reach ttyS0, while boot's info and notice lines stay out.
    .arg("-append")
    .arg(format!(
        "console={} panic=-1 loglevel=5 rdinit=/init",
        board.console
    ))
    // The board's first serial port (the console).
    .arg("-serial")
    .arg(format!("file:{}", console_log.display()))
    .args((board.results)(&results_log))
    .stdin(Stdio::null())
    .stdout(qemu_out_file.try_clone()?)
    .stderr(qemu_out_file);
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {} (package {})", board.qemu, board.package))?;

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
        // A kernel that oopsed or panicked may hang instead of finishing the script: give
        // it a little while, then stop waiting. After a WARNING it goes on as usual.
        if fault_seen_at.is_none() && fatal_report(&read_serial(&console_log)) {
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
            "{}--- console (last 40 lines) ---\n{}\n--- results (last 40 lines) ---\n{}{}",
            stall_report(&console)
                .map(|r| format!("--- the guest's report of a stall ---\n{r}\n"))
                .unwrap_or_default(),
            tail(&console, 40),
            tail(&raw_results, 40),
            if qemu_out.trim().is_empty() {
                String::new()
            } else {
                format!("\n--- qemu ---\n{}", tail(&qemu_out, 20))
            }
        )
    };

    let done = split_marker(&raw_results);
    let fault = find_fault(&console, done.as_ref().and_then(|d| d.taint));
    if fault.is_some() && tolerate_faults {
        let (results, exit_code) =
            done.map_or((raw_results.clone(), -1), |d| (d.results, d.exit_code));
        return Ok(GuestRun {
            console,
            results,
            exit_code,
            wall,
            fault,
        });
    }
    // A tracer that crashes, warns or taints the kernel fails the run, whatever the
    // script said, and whether or not it finished.
    if let Some(f) = fault {
        bail!(
            "the guest kernel reported a fault: {}\n{}\n{}",
            f.headline,
            f.report,
            tails()
        );
    }
    let Some(Done {
        results,
        exit_code,
        taint,
    }) = done
    else {
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
    if taint.is_none() {
        bail!("the guest did not report its taint flags\n{}", tails());
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

/// Console lines of a kernel report shown in a fault: enough for the WARNING or BUG line,
/// the `CPU:` line with the taint letters, and the top of the call trace.
pub const REPORT_LINES: usize = 15;

/// What the kernel prints first for a WARN or BUG(); the report's own line follows.
const CUT_HERE: &str = "------------[ cut here ]------------";

/// Whether a console message (time stamp removed) begins a kernel report. Matched at the
/// start of the message: a boot notice such as `RETBleed: WARNING: Spectre v2
/// mitigation leaves CPU vulnerable` is not a splat.
fn begins_report(msg: &str) -> bool {
    const STARTS: &[&str] = &[
        "WARNING:",
        "BUG:",
        "kernel BUG at",
        "Oops",
        "general protection fault",
        "Kernel panic",
        // arm64's faults: `Unable to handle kernel paging request at ...`, then
        // `Internal error: Oops: 0000000096000005 [#1] SMP`.
        "Unable to handle kernel",
        "Internal error:",
        // Soft and hard lockups.
        "watchdog: BUG:",
        "watchdog: Watchdog detected hard LOCKUP",
    ];
    STARTS.iter().any(|s| msg.starts_with(s)) || is_die_line(msg)
}

/// die()'s line before 6.3 has no `Oops:` in front: `int3: 0000 [#1] PREEMPT SMP NOPTI`,
/// `invalid opcode: 0000 [#1] SMP`: a name, four hex digits and the oops count.
fn is_die_line(msg: &str) -> bool {
    let Some(at) = msg.find(" [#") else {
        return false;
    };
    let (head, rest) = (&msg.as_bytes()[..at], &msg[at + 3..]);
    let count = rest.split(']').next().unwrap_or("");
    head.len() > 6
        && head[head.len() - 6..head.len() - 4] == *b": "
        && head[head.len() - 4..].iter().all(u8::is_ascii_hexdigit)
        && !count.is_empty()
        && count.bytes().all(|c| c.is_ascii_digit())
        && rest[count.len()..].starts_with(']')
}

/// A console line without the printk time stamp (`[   12.345678] `) and caller id.
fn message(line: &str) -> &str {
    let mut msg = line.trim_start();
    while let Some(rest) = msg.strip_prefix('[') {
        // Only bracketed stamps: `[ cut here ]` starts with dashes, not a bracket.
        let Some((stamp, after)) = rest.split_once(']') else {
            break;
        };
        let stamp = stamp.trim();
        let is_stamp = stamp.chars().all(|c| c.is_ascii_digit() || c == '.')
            || (stamp.len() > 1
                && matches!(stamp.as_bytes()[0], b'T' | b'C')
                && stamp[1..].chars().all(|c| c.is_ascii_digit()));
        if !is_stamp {
            break;
        }
        msg = after.trim_start();
    }
    msg
}

/// The first kernel report on the console: its headline (the WARNING, BUG or Oops
/// line) and its first [`REPORT_LINES`] lines, from the `cut here` line where there is
/// one.
fn console_report(console: &str) -> Option<(&str, Vec<&str>)> {
    let lines: Vec<&str> = console.lines().collect();
    let at = lines.iter().position(|l| {
        let m = message(l);
        m == CUT_HERE || begins_report(m)
    })?;
    let report: Vec<&str> = lines[at..].iter().take(REPORT_LINES).copied().collect();
    // After `cut here` comes WARN's own message, if any, then the WARNING line.
    let headline = report
        .iter()
        .take(4)
        .find(|l| begins_report(message(l)))
        .unwrap_or(&report[0]);
    Some((headline, report))
}

/// Whether the console shows a report other than a WARNING (an oops, BUG, panic,
/// lockup), after which the kernel may not finish the script.
fn fatal_report(console: &str) -> bool {
    console.lines().any(|l| {
        let m = message(l);
        begins_report(m) && !m.starts_with("WARNING:")
    })
}

/// Taint flags by bit, as Documentation/admin-guide/tainted-kernels.rst lists them.
const TAINTS: &[(char, &str)] = &[
    ('P', "proprietary module was loaded"),
    ('F', "module was force loaded"),
    ('S', "kernel running on an out of specification system"),
    ('R', "module was force unloaded"),
    ('M', "processor reported a Machine Check Exception"),
    ('B', "bad page referenced or some unexpected page flags"),
    ('U', "taint requested by userspace application"),
    ('D', "kernel died recently, i.e. there was an OOPS or BUG"),
    ('A', "ACPI table overridden by user"),
    ('W', "kernel issued warning"),
    ('C', "staging driver was loaded"),
    ('I', "workaround for bug in platform firmware applied"),
    ('O', "externally-built (\"out-of-tree\") module was loaded"),
    ('E', "unsigned module was loaded"),
    ('L', "soft lockup occurred"),
    ('K', "kernel has been live patched"),
    ('X', "auxiliary taint, defined for and used by distros"),
    ('T', "kernel was built with the struct randomization plugin"),
    ('N', "an in-kernel test has been run"),
    ('J', "userspace used a mutating debug operation in fwctl"),
];

/// `bits` named one by one: `W (kernel issued warning, bit 9), E (...)`.
fn describe_taint(bits: u64) -> String {
    (0..64)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| match TAINTS.get(b) {
            Some((letter, why)) => format!("{letter} ({why}, bit {b})"),
            None => format!("bit {b}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the kernel reported against itself: a report on `console`, or taint flags set
/// at the script's end that were not at its start (`taint`, from the done marker).
fn find_fault(console: &str, taint: Option<(u64, u64)>) -> Option<Fault> {
    let report = console_report(console);
    let new_taint = taint.map_or(0, |(before, after)| after & !before);
    let taint_line = (new_taint != 0).then(|| {
        format!(
            "new taint while the script ran: {} ({:#x} -> {:#x})",
            describe_taint(new_taint),
            taint.map_or(0, |t| t.0),
            taint.map_or(0, |t| t.1),
        )
    });
    match (report, taint_line) {
        (None, None) => None,
        (None, Some(t)) => Some(Fault {
            headline: t.clone(),
            report: t,
        }),
        (Some((headline, lines)), t) => Some(Fault {
            headline: headline.trim().to_string(),
            report: lines.join("\n") + &t.map(|t| format!("\n{t}")).unwrap_or_default(),
        }),
    }
}

/// What the results port carried up to the done marker.
struct Done {
    results: String,
    exit_code: i32,
    /// /proc/sys/kernel/tainted before and after the script.
    taint: Option<(u64, u64)>,
}

/// Splits the serial output at the last marker: the text before it, and the status and
/// taint flags in it (`rc=0 taint=8192,8704`).
fn split_marker(out: &str) -> Option<Done> {
    let at = out.rfind(DONE_MARKER)?;
    let rest = out[at + DONE_MARKER.len()..].lines().next()?;
    let mut words = rest.split_whitespace();
    let exit_code = words.next()?.parse().ok()?;
    let taint = words
        .find_map(|w| w.strip_prefix("taint="))
        .and_then(|t| t.split_once(','))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
    Some(Done {
        results: out[..at].to_owned(),
        exit_code,
        taint,
    })
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
        if kernel.arch != Arch::X86_64 {
            bail!(
                "the Debian userland guest is built for amd64 only, not for {} kernel {}",
                kernel.arch.debian(),
                kernel.version
            );
        }
        let init = USERLAND_INIT.replace(RESULTS_TTY, board(kernel.arch).results_tty);
        w.data_file("/init", init.as_bytes(), 0o755)?;
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
    // Debian's busybox-static; the dynamic /usr/bin/busybox would need a libc in the guest.
    let busybox = crate::kernels::busybox(kernel.arch)?;
    w.host_file("/bin/busybox", &busybox, 0o755)
        .context("busybox-static is needed in the guest (apt-get install busybox-static)")?;
    w.host_file("/lib/overlay.ko", &kernel.overlay_ko, 0o644)?;
    let init = INIT.replace(RESULTS_TTY, board(kernel.arch).results_tty);
    w.data_file("/init", init.as_bytes(), 0o755)?;
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
/// mount, file injection, exit status passing, the timeout, and that a kernel warning or
/// a new taint fails the run.
pub fn selftest() -> Result<()> {
    crate::setup::ensure_host_tools()?;
    let kernels = crate::kernels::ensure_kernels(&["6.1", "6.12"], Arch::X86_64)?;
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
                cpus: DEFAULT_CPUS,
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
        // A warning that reaches the console (level 4 passes loglevel=5) and a taint
        // flag set by the script each fail the run, naming what happened.
        for (what, script, want) in [
            (
                "a WARNING on the console",
                "echo '<4>WARNING: CPU: 0 PID: 1 at selftest.c:1 selftest' >/dev/kmsg",
                "the guest kernel reported a fault: ",
            ),
            (
                "a new taint flag",
                "echo 512 >/proc/sys/kernel/tainted",
                "new taint while the script ran: W (kernel issued warning, bit 9)",
            ),
        ] {
            let fault_dir = dir.join("fault");
            fs::create_dir_all(&fault_dir)?;
            let machine = Machine {
                image: Image::Busybox,
                clock: Clock::Wall,
                cpus: DEFAULT_CPUS,
            };
            let timeout = Duration::from_secs(120);
            match run_in(&fault_dir, k, machine, &[], script, timeout, false) {
                Ok(_) => bail!("{what} did not fail the run"),
                Err(e) if format!("{e:#}").contains(want) => {
                    let text = format!("{e:#}");
                    let line = text.lines().find(|l| l.contains(want)).unwrap_or(want);
                    println!("-- {what} failed the run: {}", line.trim());
                }
                Err(e) => return Err(e.context(format!("expected {want:?}"))),
            }
        }
        Ok(())
    })();
    let _ = fs::remove_dir_all(&dir);
    res?;
    println!("guest selftest passed");
    Ok(())
}

/// The last report of a stall the scenarios' watchdog (`guest/scenarios/lib.sh`) wrote to
/// the console: every process's kernel stack and the kernel's last messages, at most
/// 200 lines.
fn stall_report(console: &str) -> Option<String> {
    let start = console.rfind("@@STALLED ")?;
    let report = &console[start..];
    let report = report
        .find("@@STALLED-END")
        .map_or(report, |end| &report[..end]);
    Some(report.lines().take(200).collect::<Vec<_>>().join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_stall_is_shown() {
        assert_eq!(stall_report("boot\ninit: running /script.sh\n"), None);
        let console = "x\n@@STALLED no artifact for 240s\nold\n@@STALLED-END\n\
                       @@STALLED no artifact for 260s\n== 7 (sh) S wchan=do_wait\n\
                       @@STALLED-END\n[ 9.0] later\n";
        assert_eq!(
            stall_report(console).unwrap(),
            "@@STALLED no artifact for 260s\n== 7 (sh) S wchan=do_wait"
        );
    }

    /// A 6.12 boot at loglevel=5 as it reaches ttyS0: warnings that are not splats.
    const BOOT: &str = "\
[    0.000000] Linux version 6.12.57+deb13-amd64 (debian-kernel@lists.debian.org)
[    0.112341] RETBleed: WARNING: Spectre v2 mitigation leaves CPU vulnerable to RETBleed attacks, data leaks possible!
[    0.523877] platform regulatory.0: Direct firmware load for regulatory.db failed with error -2
[    1.802214] Unstable clock detected, switching default tracing clock to \"global\"
init: running /script.sh
";

    /// A WARN_ONCE with its own message, from 6.1 under TCG.
    const WARN: &str = "\
[   41.273311] ------------[ cut here ]------------
[   41.273688] refcount_t: underflow; use-after-free.
[   41.274002] WARNING: CPU: 1 PID: 412 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110
[   41.274633] Modules linked in: overlay
[   41.274894] CPU: 1 PID: 412 Comm: chown Tainted: G            E      6.1.0-41-amd64 #1  Debian 6.1.158-1
[   41.275520] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   41.276107] RIP: 0010:refcount_warn_saturate+0xba/0x110
[   41.276488] Code: 01 01 e8 59 a3 6d 00 0f 0b c3 cc cc cc cc 80 3d 3e 64 4d 01 00 75 85
[   41.277194] RSP: 0018:ffffb0a4c05cfd98 EFLAGS: 00010286
[   41.277553] RAX: 0000000000000000 RBX: ffff9c1e4295d100 RCX: 0000000000000027
[   41.278043] Call Trace:
[   41.278212]  <TASK>
[   41.278361]  ovl_copy_up_one+0x3a1/0x6c0 [overlay]
[   41.278701]  ovl_copy_up_flags+0xbd/0x100 [overlay]
[   41.279042]  ovl_setattr+0x5a/0x1c0 [overlay]
[   41.279339]  notify_change+0x1f1/0x4a0
[   41.279595] ---[ end trace 0000000000000000 ]---
";

    const NULL_DEREF: &str = "\
[   12.004112] BUG: kernel NULL pointer dereference, address: 0000000000000008
[   12.004531] #PF: supervisor read access in kernel mode
[   12.004850] #PF: error_code(0x0000) - not-present page
[   12.005166] PGD 0 P4D 0
[   12.005321] Oops: 0000 [#1] PREEMPT SMP NOPTI
";

    #[test]
    fn boot_warnings_are_not_faults() {
        assert!(console_report(BOOT).is_none());
        assert!(find_fault(BOOT, Some((8192, 8192))).is_none());
    }

    #[test]
    fn a_warn_splat_is_reported_from_cut_here() {
        let console = format!("{BOOT}{WARN}init: /script.sh exited with 0\n");
        let (headline, lines) = console_report(&console).unwrap();
        assert!(headline.ends_with(
            "WARNING: CPU: 1 PID: 412 at lib/refcount.c:28 refcount_warn_saturate+0xba/0x110"
        ));
        assert_eq!(lines.len(), REPORT_LINES);
        assert!(lines[0].ends_with(CUT_HERE));
        assert!(lines[1].ends_with("refcount_t: underflow; use-after-free."));
        assert!(lines[14].ends_with("ovl_setattr+0x5a/0x1c0 [overlay]"));
        // The splat set W: both go into the one fault.
        let f = find_fault(&console, Some((8192, 8192 | 512))).unwrap();
        assert!(f.headline.starts_with("[   41.274002] WARNING: CPU: 1"));
        assert!(f.report.contains("refcount_t: underflow"));
        assert!(f.report.ends_with(
            "new taint while the script ran: W (kernel issued warning, bit 9) (0x2000 -> 0x2200)"
        ));
    }

    #[test]
    fn only_reports_other_than_warnings_are_fatal() {
        assert!(!fatal_report(&format!("{BOOT}{WARN}")));
        assert!(fatal_report(&format!("{BOOT}{WARN}{NULL_DEREF}")));
        assert!(fatal_report("[  100.1] int3: 0000 [#1] PREEMPT SMP NOPTI"));
        assert!(!fatal_report(BOOT));
    }

    #[test]
    fn an_oops_is_reported_from_its_bug_line() {
        let console = format!("{BOOT}{NULL_DEREF}");
        let (headline, lines) = console_report(&console).unwrap();
        assert!(
            headline.ends_with("BUG: kernel NULL pointer dereference, address: 0000000000000008")
        );
        assert_eq!(lines.len(), 5, "the console ends there");
    }

    #[test]
    fn die_lines_without_oops_in_front_are_reports() {
        for l in [
            "[  100.1] int3: 0000 [#1] PREEMPT SMP NOPTI",
            "[  100.1] invalid opcode: 0000 [#2] SMP PTI",
            "[  100.1] general protection fault, probably for non-canonical address 0xdead000000000122: 0000 [#1] SMP NOPTI",
            "[  100.1] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [chown:233]",
            "[  100.1] Kernel panic - not syncing: Fatal exception",
            "[  100.1] kernel BUG at mm/slub.c:431!",
        ] {
            assert!(console_report(l).is_some(), "{l}");
        }
        for l in [
            "[  100.1] ata1: SATA link down [#1]",
            "[  100.1] x86/fpu: xstate_offset[2]:  576, xstate_sizes[2]:  256",
            "[  100.1] Spectre V2 : WARNING: Unprivileged eBPF is enabled with eIBRS on",
            "init: insmod overlay.ko failed",
            "[  100.1] foo: 00z0 [#1] SMP",
        ] {
            assert!(console_report(l).is_none(), "{l}");
        }
    }

    #[test]
    fn time_stamps_and_caller_ids_are_cut() {
        assert_eq!(message("[   41.274002] WARNING: CPU: 1"), "WARNING: CPU: 1");
        assert_eq!(message("[   41.274002][  T412] BUG: x"), "BUG: x");
        assert_eq!(message("[    5.1] [drm] Initialized"), "[drm] Initialized");
        assert_eq!(message(CUT_HERE), CUT_HERE);
    }

    #[test]
    fn a_new_taint_alone_is_a_fault() {
        // `echo 512 >/proc/sys/kernel/tainted` after an unsigned overlay.ko (E) loaded.
        let f = find_fault(BOOT, Some((8192, 8704))).unwrap();
        assert_eq!(
            f.headline,
            "new taint while the script ran: W (kernel issued warning, bit 9) (0x2000 -> 0x2200)"
        );
        // A flag set before the script is not new.
        assert!(find_fault(BOOT, Some((8704, 8704))).is_none());
        assert_eq!(
            describe_taint(1 | 128 | (1 << 19) | (1 << 30)),
            "P (proprietary module was loaded, bit 0), \
             D (kernel died recently, i.e. there was an OOPS or BUG, bit 7), \
             J (userspace used a mutating debug operation in fwctl, bit 19), bit 30"
        );
        assert_eq!(TAINTS[13].0, 'E');
        assert_eq!(TAINTS[14].0, 'L');
    }

    #[test]
    fn the_marker_carries_status_and_taint() {
        let d = split_marker("out\n@@GUEST-DONE rc=7 taint=8192,8704\n").unwrap();
        assert_eq!(
            (d.results.as_str(), d.exit_code, d.taint),
            ("out\n", 7, Some((8192, 8704)))
        );
        let d = split_marker("@@GUEST-DONE rc=0\n").unwrap();
        assert_eq!((d.exit_code, d.taint), (0, None));
        assert!(split_marker("@@GUEST-DONE rc=x taint=0,0").is_none());
        assert!(split_marker("no marker").is_none());
    }
}
