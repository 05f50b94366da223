//! Developer commands for copyup-trace (`cargo xtask --help` lists them). This file parses
//! the command line and puts the steps in order; installing, booting guests, checking and
//! reporting are the modules' below.

mod bench;
mod cmd;
mod deploy;
mod dist;
mod guest;
mod guestbench;
mod host;
mod imports;
mod kernels;
mod pod;
mod progress;
mod progs;
mod prometheus;
mod scenarios;
mod setup;
mod userland;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use crate::{
    cmd::{cargo, run, workspace_root},
    guest::{GuestFile, GuestRun},
    guestbench::Mode,
    kernels::GuestKernel,
};
use copyup_trace_common::arch::{self, Arch};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Boot a Debian kernel under qemu and trace a chown -R over an image-like tree.
    Demo {
        /// Kernel series to boot (5.10, 6.1, 6.12, 7.2 or 7.3).
        #[arg(long, default_value = "6.12")]
        kernel: String,
    },
    /// Unit tests, then the guest-kernel test matrix on Debian 5.10, 6.1, 6.12, 7.2 and 7.3,
    /// the container runtimes in the Debian userland guest on 6.12 and 7.3, the release
    /// (`dist`) installed in that guest booted with systemd on 6.12, and the arm64 build in
    /// an arm64 guest (README: "arm64").
    Test {
        /// Only these kernel series (default: all of 5.10, 6.1, 6.12, 7.2 and 7.3).
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Only guests of these architectures (amd64 or x86_64, arm64 or aarch64), on
        /// every line or those of --kernel. Default: amd64 on every line, and, when
        /// no --kernel is given either, arm64 on its CI line.
        #[arg(long = "arch", value_parser = parse_arch)]
        arches: Vec<Arch>,
        /// Only these scenario families of the busybox guest (default: all).
        #[arg(long = "family")]
        families: Vec<String>,
        /// Skip the unit tests.
        #[arg(long)]
        guest_only: bool,
        /// Only the families of the userland guest (on those of the lines that have them).
        #[arg(long)]
        userland_only: bool,
        /// Only the release as shipped: `dist`'s artifacts in the userland guest booted
        /// with systemd (the `deb` family, on its lines).
        #[arg(long)]
        deb_only: bool,
    },
    /// Install what the build and the guest tests need (idempotent).
    Setup,
    /// rustfmt and clippy (-D warnings) on every crate, the eBPF crate for its BPF target.
    Lint,
    /// Build the static copyup-trace binary that runs in the guests.
    Build {
        /// For this architecture (amd64 or arm64).
        #[arg(long, value_parser = parse_arch, default_value = "amd64")]
        arch: Arch,
    },
    /// Release artifacts in target/dist/: static binaries, .debs, the OCI image archive,
    /// man pages, completions, the systemd unit, Kubernetes manifests, SHA256SUMS.
    Dist,
    /// Benchmarks: user-space decode+aggregate throughput (criterion), then the guest
    /// benchmark (overhead, BPF cost per copy-up, RSS, start-up, lost events).
    Bench,
    /// Kernel-side benchmark only (guest boot): overhead, per-copy-up BPF cost, RSS,
    /// start-up time, lost events.
    BenchGuest {
        /// Rounds of each mode.
        #[arg(long, default_value_t = 3)]
        rounds: u32,
        /// Modes to alternate, comma-separated [default: all]
        #[arg(
            long,
            value_delimiter = ',',
            default_values_t = Mode::ALL,
            hide_default_value = true
        )]
        modes: Vec<Mode>,
        /// Skip the copy-up burst.
        #[arg(long)]
        no_burst: bool,
        /// Empty-file copy-ups in the burst, run under each copyup-trace mode.
        #[arg(long, default_value_t = 100_000)]
        burst: u64,
        /// Files in the `tiny` workload.
        #[arg(long, default_value_t = 10_000)]
        tiny: u64,
        /// How guest time runs: icount (instructions; repeatable on a busy host) or wall
        /// (plain TCG).
        #[arg(long, value_enum, default_value_t = BenchClock::Icount)]
        clock: BenchClock,
        /// The Debian kernel line to boot.
        #[arg(long, default_value = "6.12")]
        kernel: String,
        /// The guest's vCPUs. 6.1 hangs bringing up a second vCPU under icount: it is
        /// measured on one.
        #[arg(long, default_value_t = guest::DEFAULT_CPUS, value_parser = clap::value_parser!(u32).range(1..=16))]
        cpus: u32,
        /// Only write the report again from a saved raw output (target/bench-guest.raw).
        #[arg(long)]
        from_raw: Option<PathBuf>,
    },
    /// Check the qemu guest harness itself.
    #[command(hide = true)]
    GuestSelftest,
    /// Boot a guest with copyup-trace, guest-ops and Debian's bpftrace and run a shell
    /// script there (for investigating kernel behaviour); prints the console on a fault.
    GuestRun {
        script: PathBuf,
        #[arg(long, default_value = "6.12")]
        kernel: String,
        /// The guest's architecture (amd64 or arm64).
        #[arg(long, value_parser = parse_arch, default_value = "amd64")]
        arch: Arch,
        /// Boot the Debian userland with podman, docker and containerd instead of busybox.
        #[arg(long)]
        userland: bool,
        /// How guest time runs (see bench-guest).
        #[arg(long, value_enum, default_value_t = BenchClock::Wall)]
        clock: BenchClock,
        /// The guest's vCPUs.
        #[arg(long, default_value_t = guest::DEFAULT_CPUS, value_parser = clap::value_parser!(u32).range(1..=16))]
        cpus: u32,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BenchClock {
    Icount,
    Wall,
}

impl From<BenchClock> for guest::Clock {
    fn from(c: BenchClock) -> Self {
        match c {
            BenchClock::Icount => guest::Clock::Icount,
            BenchClock::Wall => guest::Clock::Wall,
        }
    }
}

fn parse_arch(name: &str) -> Result<Arch, String> {
    Arch::parse(name).ok_or_else(|| format!("unknown architecture {name:?}: amd64 or arm64"))
}

/// The arm64 line `cargo xtask test` runs by default, with every family (README:
/// "arm64").
const CI_ARM64_LINE: &str = "6.12";

/// A static binary for `arch` (with its own eBPF object, built for that architecture's
/// `pt_regs`), so the busybox guest needs no libc.
fn build_static(arch: Arch) -> Result<PathBuf> {
    let musl = arch.musl_target();
    // cargo's own per-crate lines would bury the steps; errors still print in full.
    let step = progress::Step::start(format!(
        "building the static copyup-trace and guest-ops for {}",
        arch.name()
    ));
    run(cargo().args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "copyup-trace",
        "--target",
        musl,
    ]))?;
    // The guests' syscall driver, beside it.
    run(cargo().args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "xtask",
        "--bin",
        "guest-ops",
        "--target",
        musl,
    ]))?;
    step.done();
    Ok(workspace_root().join(format!("target/{musl}/release/copyup-trace")))
}

fn guest_files(tool: &Path) -> Vec<GuestFile> {
    let ops = tool.with_file_name("guest-ops");
    vec![
        GuestFile {
            guest_path: "/bin/copyup-trace".into(),
            host_path: tool.to_path_buf(),
            mode: 0o755,
        },
        GuestFile {
            guest_path: "/bin/guest-ops".into(),
            host_path: ops,
            mode: 0o755,
        },
        // The image's recipe; the userland guest builds it around /bin/copyup-trace.
        GuestFile {
            guest_path: "/src/Containerfile".into(),
            host_path: workspace_root().join("Containerfile"),
            mode: 0o644,
        },
    ]
}

/// The DaemonSet's pod as `run_pod` (`pod.rs`), which the image family runs.
fn pod_file() -> Result<GuestFile> {
    let dir = workspace_root().join("target/guest-files");
    std::fs::create_dir_all(&dir)?;
    let host_path = dir.join("pod.sh");
    pod::write_shell(&workspace_root(), &host_path)?;
    Ok(GuestFile {
        guest_path: "/src/pod.sh".into(),
        host_path,
        mode: 0o644,
    })
}

fn kernels(series: &[String], arch: Arch) -> Result<Vec<GuestKernel>> {
    let s: Vec<&str> = if series.is_empty() {
        kernels::series().collect()
    } else {
        series.iter().map(String::as_str).collect()
    };
    kernels::ensure_kernels(&s, arch)
}

fn boot(k: &GuestKernel, files: &[GuestFile], script: &str, timeout: Duration) -> Result<GuestRun> {
    boot_in(k, guest::Image::Busybox, files, script, timeout)
}

fn boot_in(
    k: &GuestKernel,
    image: guest::Image,
    files: &[GuestFile],
    script: &str,
    timeout: Duration,
) -> Result<GuestRun> {
    let r = guest::run_guest_in(k, image, files, script, timeout)?;
    if r.exit_code != 0 {
        let fault = r.fault.as_ref().map_or(String::new(), |f| {
            format!("\nthe guest kernel reported a fault:\n{}", f.report)
        });
        bail!(
            "guest script exited {} on {}:{fault}\n{}",
            r.exit_code,
            k.version,
            r.results
        );
    }
    Ok(r)
}

/// A line's own check: its kernel reported no WARNING, BUG, oops, panic or new taint
/// while the script ran (the report's first lines if it did).
fn kernel_clean(r: &GuestRun) -> Result<()> {
    match &r.fault {
        None => Ok(()),
        Some(f) => bail!(
            "the guest kernel reported a fault: {}\n{}",
            f.headline,
            f.report
        ),
    }
}

const KERNEL_CLEAN: &str = "the kernel reported no WARNING, BUG, oops, panic or new taint";

fn lint() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    imports::check(&workspace_root().join("copyup-trace/src"))?;
    run(cargo().args([
        "clippy",
        "--all-targets",
        "--workspace",
        "--exclude",
        "copyup-trace-ebpf",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The kernel-side crate only builds for BPF, with the nightly toolchain, once for each
    // architecture's `pt_regs` (`bpf_target_arch`; each in a target directory of its own,
    // so that neither invalidates the other's build).
    for arch in Arch::ALL {
        run(Command::new("rustup")
            .current_dir(workspace_root())
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTC")
            .env_remove("CARGO")
            .env("AYA_BPF_TARGET_ARCH", arch.name())
            .args([
                "run",
                "nightly",
                "cargo",
                "clippy",
                "-p",
                "copyup-trace-ebpf",
                "--release",
                "--target",
                "bpfel-unknown-none",
                "--target-dir",
            ])
            .arg(workspace_root().join(match arch {
                Arch::X86_64 => "target".to_string(),
                _ => format!("target/lint-bpf-{}", arch.name()),
            }))
            .args(["-Z", "build-std=core", "--", "-D", "warnings"]))?;
    }
    Ok(())
}

/// How long a busybox guest may run all its scenarios: arm64's under TCG runs about
/// 1.5 times as long as amd64's, and 6.1's (kprobes only there) ran past 900 s beside two
/// other guests on the 2-core machine.
fn busybox_timeout(arch: Arch) -> Duration {
    match arch {
        Arch::X86_64 => Duration::from_secs(900),
        Arch::Aarch64 => Duration::from_secs(1800),
    }
}

/// What `cargo xtask test` runs: which lines, for which architectures, which families.
struct TestPlan<'a> {
    kernels: &'a [String],
    arches: &'a [Arch],
    families: &'a [String],
    guest_only: bool,
    userland_only: bool,
    /// Only the `deb` family (the release in the userland guest under systemd).
    deb_only: bool,
}

/// The guest runs of a test: each architecture with its kernel lines and families. The
/// default (no --arch, no --kernel) is every amd64 line, then the arm64 CI line.
fn guest_runs(plan: &TestPlan) -> Vec<(Arch, Vec<String>, Vec<String>)> {
    let mut runs = Vec::new();
    if plan.arches.is_empty() {
        runs.push((Arch::X86_64, plan.kernels.to_vec(), plan.families.to_vec()));
        if plan.kernels.is_empty() && !plan.userland_only && !plan.deb_only {
            runs.push((
                Arch::Aarch64,
                vec![CI_ARM64_LINE.to_string()],
                plan.families.to_vec(),
            ));
        }
    } else {
        for &arch in plan.arches {
            runs.push((arch, plan.kernels.to_vec(), plan.families.to_vec()));
        }
    }
    runs
}

fn test(plan: &TestPlan) -> Result<()> {
    let userland_only = plan.userland_only || plan.deb_only;
    let t0 = Instant::now();
    setup::ensure_host_tools()?;
    if !plan.guest_only {
        lint()?;
        run(cargo().args(["test", "--workspace", "--exclude", "copyup-trace-ebpf"]))?;
    }
    let runs = guest_runs(plan);
    for (arch, _, _) in &runs {
        if *arch != Arch::X86_64 && userland_only {
            bail!(
                "the userland guest is amd64 only: --userland-only with --arch {}",
                arch.debian()
            );
        }
    }
    // Every build first, so that a failing one stops the run before any guest boots.
    let mut tools = Vec::new();
    for (arch, _, families) in &runs {
        let tool = build_static(*arch)?;
        // The fleet scenarios scrape the tool with Debian's Prometheus server.
        let mut files = guest_files(&tool);
        files.extend(prometheus::guest_files(*arch)?);
        let (script, checks) = scenarios::selected(families)?;
        tools.push((tool, files, script, checks));
    }
    // The release artifacts, installed as shipped in the userland guest (`deb` family).
    let dist = dist::build()?;
    let build_done = t0.elapsed();

    let mut passed = 0;
    // Named again at the end, so that the last lines of a long run say what failed.
    let mut failed: Vec<String> = Vec::new();
    let mut record = |name: &str, r: Result<()>| match r {
        Ok(()) => {
            passed += 1;
            println!("{name} ... ok");
        }
        Err(e) => {
            println!("{name} ... FAILED\n    {e:#}");
            failed.push(format!("{name}: {}", one_line(&e)));
        }
    };
    // The host checks run the build for this machine.
    if let Some((tool, ..)) = runs
        .iter()
        .zip(&tools)
        .find(|((arch, ..), _)| *arch == arch::NATIVE)
        .map(|(_, t)| t)
    {
        for (name, check) in host::CHECKS {
            record(&format!("host: {name}"), check(tool));
        }
    }
    for (name, check) in dist::CHECKS {
        record(&format!("host: {name}"), check(&dist));
    }
    let mut rootfs = None;
    for ((arch, series, _), (tool, files, script, checks)) in runs.iter().zip(&tools) {
        for k in kernels(series, *arch)? {
            let busybox = if userland_only {
                Err(anyhow::anyhow!("skipped"))
            } else {
                boot(&k, files, script, busybox_timeout(*arch))
            };
            // A guest that hangs or dies fails its line, not the lines after it.
            let r = match busybox {
                Err(_) if userland_only => None,
                Ok(r) => Some(r),
                Err(e) => {
                    record(&format!("guest {}: boot and scenarios", k.version), Err(e));
                    continue;
                }
            };
            // Kept for reading after the run: the raw tool output of every scenario.
            let results = workspace_root().join("target/guest-results");
            std::fs::create_dir_all(&results)?;
            if let Some(r) = r {
                std::fs::write(results.join(format!("{}.txt", k.version)), &r.results)?;
                record(
                    &format!("guest {}: {KERNEL_CLEAN}", k.version),
                    kernel_clean(&r),
                );
                let a = scenarios::Artifacts::new(&k.version, &r.results);
                for (name, check) in checks {
                    record(&format!("guest {}: {name}", k.version), check(&a));
                }
                println!(
                    "guest {}: booted and ran {} in {:.1}s",
                    k.version,
                    if checks.len() == scenarios::checks().count() {
                        "all scenarios".to_string()
                    } else {
                        format!("{} checks' scenarios", checks.len())
                    },
                    r.wall.as_secs_f64()
                );
            }
            // The userland guests are amd64's, and run only with every family.
            let amd64_whole = *arch == Arch::X86_64 && plan.families.is_empty();
            if amd64_whole && scenarios::userland::deb::SERIES.contains(&k.series.as_str()) {
                let rootfs = match &rootfs {
                    Some(r) => r,
                    None => rootfs.insert(userland::ensure_rootfs()?),
                };
                let name = format!("guest {} (userland, systemd)", k.version);
                let image = guest::Image::Userland(rootfs);
                let files =
                    scenarios::userland::deb::files(&dist, &tool.with_file_name("guest-ops"));
                let script = scenarios::userland::deb::SCRIPT;
                match boot_in(&k, image, &files, script, Duration::from_secs(900)) {
                    Ok(r) => {
                        let saved = format!("{}-deb.txt", k.version);
                        std::fs::write(results.join(saved), &r.results)?;
                        record(&format!("{name}: {KERNEL_CLEAN}"), kernel_clean(&r));
                        let a = scenarios::Artifacts::new(&k.version, &r.results);
                        for (check_name, check) in scenarios::userland::deb::CHECKS {
                            record(&format!("{name}: {check_name}"), check(&a));
                        }
                        println!(
                            "{name}: booted and ran all scenarios in {:.1}s",
                            r.wall.as_secs_f64()
                        );
                    }
                    Err(e) => record(&format!("{name}: boot and scenarios"), Err(e)),
                }
            }
            if amd64_whole
                && !plan.deb_only
                && scenarios::userland::SERIES.contains(&k.series.as_str())
            {
                let rootfs = match &rootfs {
                    Some(r) => r,
                    None => rootfs.insert(userland::ensure_rootfs()?),
                };
                let name = format!("guest {} (userland)", k.version);
                let image = guest::Image::Userland(rootfs);
                let script = scenarios::userland::SCRIPT;
                let mut files = guest_files(tool);
                files.push(pod_file()?);
                let r = match boot_in(&k, image, &files, script, Duration::from_secs(1200)) {
                    Ok(r) => r,
                    Err(e) => {
                        record(&format!("{name}: boot and scenarios"), Err(e));
                        continue;
                    }
                };
                let saved = format!("{}-userland.txt", k.version);
                std::fs::write(results.join(saved), &r.results)?;
                record(&format!("{name}: {KERNEL_CLEAN}"), kernel_clean(&r));
                let a = scenarios::Artifacts::new(&k.version, &r.results);
                for (check_name, check) in scenarios::userland::checks() {
                    record(&format!("{name}: {check_name}"), check(&a));
                }
                println!(
                    "{name}: booted and ran all scenarios in {:.1}s",
                    r.wall.as_secs_f64()
                );
            }
        }
    }
    println!(
        "setup, unit tests and builds: {:.1}s; total {:.1}s",
        build_done.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    println!(
        "host and guest checks: {passed} passed, {} failed",
        failed.len()
    );
    for f in &failed {
        println!("FAILED: {f}");
    }
    if !failed.is_empty() {
        bail!("{} guest checks failed", failed.len());
    }
    Ok(())
}

const DEMO: &str = include_str!("../guest/demo.sh");

fn demo(series: &str) -> Result<()> {
    setup::ensure_host_tools()?;
    let tool = build_static(Arch::X86_64)?;
    let k = kernels(&[series.to_string()], Arch::X86_64)?
        .pop()
        .context("no kernel")?;
    let r = boot(&k, &guest_files(&tool), DEMO, Duration::from_secs(600))?;
    print!("{}", r.results);
    println!("(guest wall time {:.1}s)", r.wall.as_secs_f64());
    Ok(())
}

/// The guest report from a raw bench output (as saved in target/bench-guest.raw).
fn bench_markdown(raw: &str) -> Result<String> {
    let header = |key: &str| {
        raw.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or("")
            .to_string()
    };
    let kernel = header("@@KERNEL ");
    let wall = Duration::from_millis(header("@@WALL_MS ").parse().unwrap_or(0));
    let fault = header("@@FAULT ");
    let clock = header("@@CLOCK ");
    let load = header("@@LOAD ");
    let tiny = header("@@TINY ").parse().unwrap_or(0);
    // Runs from before the header was written had the default.
    let cpus = header("@@CPUS ").parse().unwrap_or(guest::DEFAULT_CPUS);
    let syscalls = header("@@SYSCALLS ").parse().unwrap_or(0);
    let mut rounds = guestbench::parse(raw)?;
    let fault_note = (!fault.is_empty()).then(|| guestbench::cut_at_fault(&mut rounds, &fault));
    if let Err(e) = guestbench::validate(&rounds) {
        bail!("{e:#}\nguest output:\n{raw}");
    }
    let info = guestbench::RunInfo {
        kernel: &kernel,
        clock: &clock,
        load: &load,
        wall,
        tiny,
        syscalls,
        cpus,
    };
    let mut md = guestbench::report(&info, &rounds)?;
    if let Some(note) = fault_note {
        md.push_str(&format!("\n**{note}**\n"));
    }
    Ok(md)
}

fn guest_bench_report(raw: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(raw).with_context(|| format!("reading {}", raw.display()))?;
    let md = bench_markdown(&text)?;
    println!("{md}");
    std::fs::write(workspace_root().join("target/bench-guest.md"), &md)?;
    Ok(())
}

/// What `guest-run` boots: the kernel line and architecture, the image, the clock and
/// the vCPUs.
struct GuestRunPlan<'a> {
    series: &'a str,
    arch: Arch,
    userland: bool,
    clock: guest::Clock,
    cpus: u32,
}

fn guest_run(script: &Path, plan: &GuestRunPlan) -> Result<()> {
    let GuestRunPlan {
        series,
        arch,
        userland,
        clock,
        cpus,
    } = *plan;
    let text =
        std::fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
    setup::ensure_host_tools()?;
    if arch != Arch::X86_64 && userland {
        bail!(
            "the userland guest is amd64 only, not --arch {}",
            arch.debian()
        );
    }
    let tool = build_static(arch)?;
    let mut files = guest_files(&tool);
    // The arm64 guest gets Prometheus (amd64's bpftrace would not run there).
    if arch != Arch::X86_64 {
        files.extend(prometheus::guest_files(arch)?);
    }
    // The userland has its own libraries (and its own Prometheus), which Debian's bpftrace
    // and the busybox guest's Prometheus files would replace.
    if !userland && arch == Arch::X86_64 {
        setup::ensure_debs(&["bpftrace"])?;
        files.extend(guestbench::bpftrace_files()?);
        // Both link to the same libc: each library once.
        for f in prometheus::guest_files(arch)? {
            if !files.iter().any(|g| g.guest_path == f.guest_path) {
                files.push(f);
            }
        }
    }
    let k = kernels(&[series.to_string()], arch)?
        .pop()
        .context("no kernel")?;
    let r = if userland {
        if clock != guest::Clock::Wall {
            bail!("--clock icount is for the busybox guest, not --userland");
        }
        if cpus != guest::DEFAULT_CPUS {
            bail!("--cpus is for the busybox guest, not --userland");
        }
        let rootfs = userland::ensure_rootfs()?;
        guest::run_guest_in(
            &k,
            guest::Image::Userland(&rootfs),
            &files,
            &text,
            Duration::from_secs(1800),
        )?
    } else {
        guest::run_guest_clocked(&k, &files, &text, Duration::from_secs(1800), (clock, cpus))?
    };
    print!("{}", r.results);
    if let Some(f) = &r.fault {
        println!(
            "the guest kernel reported a fault:\n{}\n(the output above is the script's)",
            f.report
        );
    }
    println!(
        "(exit {}, guest wall time {:.1}s)",
        r.exit_code,
        r.wall.as_secs_f64()
    );
    Ok(())
}

/// The host's 1-minute load average.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// What `bench-guest` runs: rounds of each mode, the `tiny` file count, the burst size
/// (0: none), the guest clock, and the kernel line and vCPUs it boots.
struct BenchPlan<'a> {
    rounds: u32,
    modes: &'a [Mode],
    tiny: u64,
    burst: u64,
    clock: BenchClock,
    kernel: &'a str,
    cpus: u32,
}

/// Kernel-side benchmark in the newest guest of a kernel line (6.12 unless asked);
/// writes BENCHMARKS.md's guest section.
fn guest_bench(plan: &BenchPlan) -> Result<()> {
    let BenchPlan {
        rounds,
        modes,
        tiny,
        burst,
        clock,
        kernel,
        cpus,
    } = *plan;
    setup::ensure_host_tools()?;
    let tool = build_static(Arch::X86_64)?;
    // The peer: Debian's bpftrace with its libraries, at the same paths in the guest.
    setup::ensure_debs(&["bpftrace"])?;
    let mut files = guest_files(&tool);
    files.extend(guestbench::bpftrace_files()?);
    let k = kernels(&[kernel.to_string()], Arch::X86_64)?
        .pop()
        .context("no kernel")?;
    let clock_name = match clock {
        BenchClock::Icount => "icount",
        BenchClock::Wall => "wall",
    };
    let clock = guest::Clock::from(clock);
    println!(
        "Benchmarking in Debian kernel {} under qemu (TCG, clock {clock_name})...",
        k.version
    );
    let script = format!(
        "ROUNDS={rounds}\nMODES='{}'\nBURST={burst}\nTINY={tiny}\n{}",
        modes.iter().map(|m| m.name()).collect::<Vec<_>>().join(" "),
        guestbench::SCRIPT
    );
    let load_before = loadavg();
    // A kernel fault (seen under bpftrace as well as under copyup-trace) ends the usable
    // part of the run: report the rounds before it and say where it happened.
    let r = guest::run_guest_clocked(
        &k,
        &files,
        &script,
        Duration::from_secs(3600),
        (clock, cpus),
    )?;
    if r.fault.is_none() && r.exit_code != 0 {
        bail!("bench script exited {}:\n{}", r.exit_code, r.results);
    }
    if let Some(f) = &r.fault {
        eprintln!("the guest kernel reported a fault:\n{}", f.report);
    }
    // Kept so that the report can be written again (`--from-raw`) without a new run.
    let raw = format!(
        "@@KERNEL {}\n@@CPUS {cpus}\n@@WALL_MS {}\n@@CLOCK {clock_name}\n@@LOAD {load_before} / {}\n@@TINY {tiny}\n@@FAULT {}\n{}",
        k.version,
        r.wall.as_millis(),
        loadavg(),
        r.fault.as_ref().map_or("", |f| f.headline.as_str()),
        r.results
    );
    std::fs::write(workspace_root().join("target/bench-guest.raw"), &raw)?;
    let md = bench_markdown(&raw)?;
    println!("{md}");
    let out = workspace_root().join("target/bench-guest.md");
    std::fs::write(&out, &md)?;
    println!("(written to {}; raw rounds:)", out.display());
    for line in r.results.lines().filter(|l| l.starts_with("@@ROUND")) {
        println!("  {line}");
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match dispatch(Cli::parse().cmd) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The error and its causes on one line: the last line of a CI log says it.
            eprintln!("xtask: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error and its causes, outermost first, on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn dispatch(cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Demo { kernel } => demo(&kernel),
        Cmd::Test {
            kernels,
            arches,
            families,
            guest_only,
            userland_only,
            deb_only,
        } => test(&TestPlan {
            kernels: &kernels,
            arches: &arches,
            families: &families,
            guest_only,
            userland_only,
            deb_only,
        }),
        Cmd::Setup => setup::ensure_host_tools(),
        Cmd::Lint => setup::ensure_host_tools().and_then(|()| lint()),
        Cmd::Build { arch } => build_static(arch).map(|p| println!("{}", p.display())),
        Cmd::Dist => dist::dist(),
        Cmd::Bench => bench::run().and_then(|()| {
            guest_bench(&BenchPlan {
                rounds: 3,
                modes: &Mode::ALL,
                tiny: 10_000,
                burst: 100_000,
                clock: BenchClock::Icount,
                kernel: "6.12",
                cpus: guest::DEFAULT_CPUS,
            })
        }),
        Cmd::BenchGuest {
            from_raw: Some(raw),
            ..
        } => guest_bench_report(&raw),
        Cmd::BenchGuest {
            rounds,
            modes,
            no_burst,
            burst,
            tiny,
            clock,
            kernel,
            cpus,
            from_raw: None,
        } => guest_bench(&BenchPlan {
            rounds,
            modes: &modes,
            tiny,
            burst: if no_burst { 0 } else { burst },
            clock,
            kernel: &kernel,
            cpus,
        }),
        Cmd::GuestSelftest => guest::selftest(),
        Cmd::GuestRun {
            script,
            kernel,
            arch,
            userland,
            clock,
            cpus,
        } => guest_run(
            &script,
            &GuestRunPlan {
                series: &kernel,
                arch,
                userland,
                clock: clock.into(),
                cpus,
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm64_runs_by_default_and_on_demand() {
        let plan = |kernels: &[String], arches: &[Arch]| {
            guest_runs(&TestPlan {
                kernels,
                arches,
                families: &[],
                guest_only: true,
                userland_only: false,
                deb_only: false,
            })
            .into_iter()
            .map(|(a, k, _)| (a, k))
            .collect::<Vec<_>>()
        };
        // The full run: every amd64 line, then the arm64 CI line, every family on both.
        let full = guest_runs(&TestPlan {
            kernels: &[],
            arches: &[],
            families: &[],
            guest_only: true,
            userland_only: false,
            deb_only: false,
        });
        assert!(full[0].2.is_empty(), "every amd64 family");
        assert!(full[1].2.is_empty(), "every arm64 family");
        assert_eq!(
            plan(&[], &[]),
            [
                (Arch::X86_64, vec![]),
                (Arch::Aarch64, vec![CI_ARM64_LINE.to_string()])
            ]
        );
        // One line picked: amd64's only, as before.
        let k = ["7.3".to_string()];
        assert_eq!(plan(&k, &[]), [(Arch::X86_64, k.to_vec())]);
        assert_eq!(plan(&k, &[Arch::Aarch64]), [(Arch::Aarch64, k.to_vec())]);
        assert_eq!(plan(&[], &[Arch::Aarch64]), [(Arch::Aarch64, vec![])]);
    }
}
