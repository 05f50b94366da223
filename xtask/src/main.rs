//! Developer commands for copyup-trace (`cargo xtask --help` lists them). This file parses
//! the command line and puts the steps in order; installing, booting guests, checking and
//! reporting are the modules' below.

mod bench;
mod cmd;
mod deploy;
mod guest;
mod guestbench;
mod host;
mod imports;
mod kernels;
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
    /// and the container runtimes in the Debian userland guest on 6.12 and 7.3.
    Test {
        /// Only these kernel series (default: all of 5.10, 6.1, 6.12, 7.2 and 7.3).
        #[arg(long = "kernel")]
        kernels: Vec<String>,
        /// Skip the unit tests.
        #[arg(long)]
        guest_only: bool,
        /// Only the families of the userland guest (on those of the lines that have them).
        #[arg(long)]
        userland_only: bool,
    },
    /// Install what the build and the guest tests need (idempotent).
    Setup,
    /// rustfmt and clippy (-D warnings) on every crate, the eBPF crate for its BPF target.
    Lint,
    /// Build the static copyup-trace binary that runs in the guests.
    Build,
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
        /// Boot the Debian userland with podman, docker and containerd instead of busybox.
        #[arg(long)]
        userland: bool,
        /// How guest time runs (see bench-guest).
        #[arg(long, value_enum, default_value_t = BenchClock::Wall)]
        clock: BenchClock,
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

const MUSL: &str = "x86_64-unknown-linux-musl";

/// A static binary, so the busybox guest needs no libc.
fn build_static() -> Result<PathBuf> {
    // cargo's own per-crate lines would bury the steps; errors still print in full.
    let step = progress::Step::start("building the static copyup-trace and guest-ops");
    run(cargo().args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "copyup-trace",
        "--target",
        MUSL,
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
        MUSL,
    ]))?;
    step.done();
    Ok(workspace_root().join(format!("target/{MUSL}/release/copyup-trace")))
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

fn kernels(series: &[String]) -> Result<Vec<GuestKernel>> {
    let s: Vec<&str> = if series.is_empty() {
        kernels::series().collect()
    } else {
        series.iter().map(String::as_str).collect()
    };
    kernels::ensure_kernels(&s)
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
    // The kernel-side crate only builds for BPF, with the nightly toolchain.
    run(Command::new("rustup")
        .current_dir(workspace_root())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("CARGO")
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
            "-Z",
            "build-std=core",
            "--",
            "-D",
            "warnings",
        ]))
}

fn test(kernel_series: &[String], guest_only: bool, userland_only: bool) -> Result<()> {
    let t0 = Instant::now();
    setup::ensure_host_tools()?;
    if !guest_only {
        lint()?;
        run(cargo().args(["test", "--workspace", "--exclude", "copyup-trace-ebpf"]))?;
    }
    let tool = build_static()?;
    // The fleet scenarios scrape the tool with Debian's Prometheus server.
    let mut files = guest_files(&tool);
    files.extend(prometheus::guest_files()?);
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
    for (name, check) in host::CHECKS {
        record(&format!("host: {name}"), check(&tool));
    }
    let mut rootfs = None;
    for k in kernels(kernel_series)? {
        let busybox = if userland_only {
            Err(anyhow::anyhow!("skipped"))
        } else {
            boot(&k, &files, scenarios::SCRIPT, Duration::from_secs(900))
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
            for (name, check) in scenarios::checks() {
                record(&format!("guest {}: {name}", k.version), check(&a));
            }
            println!(
                "guest {}: booted and ran all scenarios in {:.1}s",
                k.version,
                r.wall.as_secs_f64()
            );
        }
        if scenarios::userland::SERIES.contains(&k.series.as_str()) {
            let rootfs = match &rootfs {
                Some(r) => r,
                None => rootfs.insert(userland::ensure_rootfs()?),
            };
            let name = format!("guest {} (userland)", k.version);
            let image = guest::Image::Userland(rootfs);
            let script = scenarios::userland::SCRIPT;
            let r = match boot_in(
                &k,
                image,
                &guest_files(&tool),
                script,
                Duration::from_secs(1200),
            ) {
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
    let tool = build_static()?;
    let k = kernels(&[series.to_string()])?.pop().context("no kernel")?;
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

fn guest_run(script: &Path, series: &str, userland: bool, clock: guest::Clock) -> Result<()> {
    let text =
        std::fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
    setup::ensure_host_tools()?;
    let tool = build_static()?;
    let mut files = guest_files(&tool);
    // The userland has its own libraries (and its own Prometheus), which Debian's bpftrace
    // and the busybox guest's Prometheus files would replace.
    if !userland {
        setup::ensure_debs(&["bpftrace"])?;
        files.extend(guestbench::bpftrace_files()?);
        // Both link to the same libc: each library once.
        for f in prometheus::guest_files()? {
            if !files.iter().any(|g| g.guest_path == f.guest_path) {
                files.push(f);
            }
        }
    }
    let k = kernels(&[series.to_string()])?.pop().context("no kernel")?;
    let r = if userland {
        if clock != guest::Clock::Wall {
            bail!("--clock icount is for the busybox guest, not --userland");
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
        guest::run_guest_clocked(&k, &files, &text, Duration::from_secs(1800), clock)?
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

/// Kernel-side benchmark in the newest 6.12 guest; writes BENCHMARKS.md's guest section.
/// The host's 1-minute load average.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// What `bench-guest` runs: rounds of each mode, the `tiny` file count, the burst size
/// (0: none) and the guest clock.
struct BenchPlan<'a> {
    rounds: u32,
    modes: &'a [Mode],
    tiny: u64,
    burst: u64,
    clock: BenchClock,
}

fn guest_bench(plan: &BenchPlan) -> Result<()> {
    let BenchPlan {
        rounds,
        modes,
        tiny,
        burst,
        clock,
    } = *plan;
    setup::ensure_host_tools()?;
    let tool = build_static()?;
    // The peer: Debian's bpftrace with its libraries, at the same paths in the guest.
    setup::ensure_debs(&["bpftrace"])?;
    let mut files = guest_files(&tool);
    files.extend(guestbench::bpftrace_files()?);
    let k = kernels(&["6.12".to_string()])?.pop().context("no kernel")?;
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
    let r = guest::run_guest_clocked(&k, &files, &script, Duration::from_secs(3600), clock)?;
    if r.fault.is_none() && r.exit_code != 0 {
        bail!("bench script exited {}:\n{}", r.exit_code, r.results);
    }
    if let Some(f) = &r.fault {
        eprintln!("the guest kernel reported a fault:\n{}", f.report);
    }
    // Kept so that the report can be written again (`--from-raw`) without a new run.
    let raw = format!(
        "@@KERNEL {}\n@@WALL_MS {}\n@@CLOCK {clock_name}\n@@LOAD {load_before} / {}\n@@TINY {tiny}\n@@FAULT {}\n{}",
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
            guest_only,
            userland_only,
        } => test(&kernels, guest_only, userland_only),
        Cmd::Setup => setup::ensure_host_tools(),
        Cmd::Lint => setup::ensure_host_tools().and_then(|()| lint()),
        Cmd::Build => build_static().map(|p| println!("{}", p.display())),
        Cmd::Bench => bench::run().and_then(|()| {
            guest_bench(&BenchPlan {
                rounds: 3,
                modes: &Mode::ALL,
                tiny: 10_000,
                burst: 100_000,
                clock: BenchClock::Icount,
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
            from_raw: None,
        } => guest_bench(&BenchPlan {
            rounds,
            modes: &modes,
            tiny,
            burst: if no_burst { 0 } else { burst },
            clock,
        }),
        Cmd::GuestSelftest => guest::selftest(),
        Cmd::GuestRun {
            script,
            kernel,
            userland,
            clock,
        } => guest_run(&script, &kernel, userland, clock.into()),
    }
}
