//! Command-line options and the parsing of their values.

use std::{ffi::OsString, time::Duration};

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

pub use crate::kernel::plan::ProbeMode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Per-file and per-process tables at the end.
    Table,
    /// One JSON object per copy-up as it happens, then a summary object.
    Json,
    /// A header, then one row per copy-up as it happens.
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    File,
    Process,
    Container,
    Trigger,
    /// The image of the containers that copied up.
    Image,
    /// The lower layer each copy-up was copied from.
    Layer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SortKey {
    /// Total copy-up time.
    Time,
    /// Bytes copied.
    Bytes,
    /// Number of copy-ups.
    Count,
}

/// Trace overlayfs copy-ups: which files the kernel copied up to the upper layer, how
/// many bytes, how long it took, and which process and syscall caused it.
#[derive(Debug, Parser)]
#[command(
    name = "copyup-trace",
    version,
    override_usage = "copyup-trace [OPTIONS] [-- COMMAND [ARGS...]]\n       copyup-trace check [-o table|json]",
    args_conflicts_with_subcommands = true,
    after_help = "With -- COMMAND, only COMMAND and its descendants are traced and \
                  copyup-trace exits with COMMAND's status. Without it, the whole host is \
                  traced until Ctrl-C or --duration."
)]
pub struct Args {
    #[command(subcommand)]
    pub sub: Option<Sub>,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Only copy-ups by this process (thread group id).
    #[arg(short, long, value_parser = clap::value_parser!(u32).range(1..))]
    pub pid: Option<u32>,

    /// Only copy-ups by tasks with this command name (at most 15 bytes, as in /proc/PID/comm).
    #[arg(short, long, value_parser = parse_comm)]
    pub comm: Option<String>,

    /// Leave out copy-ups that copied fewer bytes: 4096, 4K, 1M, 2GiB (K/M/G are powers of 1024).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub min_size: Option<u64>,

    /// Leave out copy-ups faster than this: 10ms, 250us, 1s (a bare number is milliseconds).
    #[arg(short, long, value_name = "TIME", value_parser = parse_min_latency)]
    pub min_latency: Option<Duration>,

    /// Stop tracing after this long: 10s, 1m, 500ms (a bare number is seconds).
    #[arg(short, long, value_name = "TIME", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Only tasks in this cgroup (a cgroup2 path, absolute or under /sys/fs/cgroup) or
    /// below it.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,

    /// Only this container (its name, full id or a unique id prefix), through its cgroup;
    /// repeatable.
    #[arg(long, value_name = "NAME|ID", conflicts_with = "cgroup")]
    pub container: Vec<String>,

    /// Tables to print: by file, process, container, image, trigger or lower layer
    /// (repeatable; default file and process).
    #[arg(long, value_enum, value_name = "KEY")]
    pub by: Vec<By>,

    /// Rows per table.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub top: u32,

    /// Order of table rows.
    #[arg(long, value_enum, default_value_t = SortKey::Time)]
    pub sort: SortKey,

    /// Also print log2 histograms of copy-up latency per trigger.
    #[arg(long)]
    pub hist: bool,

    /// Print the tables every TIME (and reset them), like top: 5s, 1 (seconds).
    #[arg(short, long, value_name = "TIME", value_parser = parse_duration)]
    pub interval: Option<Duration>,

    /// Print one line per copy-up as it happens.
    #[arg(long)]
    pub events: bool,

    /// Record kernel and user stacks of each copy-up and write them folded, weighted by
    /// copy-up time (ns), to this file (input for flamegraph tools).
    #[arg(long, value_name = "FILE")]
    pub stacks: Option<std::path::PathBuf>,

    /// Record stacks as for --stacks and render a flame graph SVG to this file.
    #[arg(long, value_name = "FILE")]
    pub flamegraph: Option<std::path::PathBuf>,

    /// Also write the final summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<std::path::PathBuf>,

    /// Serve Prometheus metrics (text format, or OpenMetrics when asked) on
    /// http://ADDR/metrics, and /healthz, while tracing: 0.0.0.0:29435, 127.0.0.1:29435.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,

    /// Labels of the copy-up metrics, comma-separated (an unknown name is refused with the
    /// list of known ones).
    #[arg(long, value_name = "LIST", default_value = crate::output::labels::DEFAULT_LABELS,
          value_parser = crate::output::labels::parse_labels)]
    pub metrics_labels: crate::output::labels::Labels,

    /// Label sets of the copy-up metrics kept apart; later ones are counted under the
    /// label value _other_.
    #[arg(long, value_name = "N", default_value_t = crate::output::labels::DEFAULT_MAX_SERIES as u32,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub metrics_max_series: u32,

    /// How long the series of a container that is gone (its cgroup removed) stay before
    /// they go, so that Prometheus scrapes their last values (at least two scrape
    /// intervals); their places under --metrics-max-series go with them.
    #[arg(long, value_name = "TIME", default_value = "5m", value_parser = parse_duration)]
    pub metrics_expire_after: Duration,

    /// Write copy-ups, their data copies and the calls that caused them as Chrome
    /// trace-event JSON (open in Perfetto or chrome://tracing) to this file.
    #[arg(long, value_name = "FILE")]
    pub timeline: Option<std::path::PathBuf>,

    /// Kernel ring buffer size for events: a power of two, at least 4K.
    #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_ring_size)]
    pub ring_size: u64,

    /// How kernel functions are probed: fentry/fexit for each function that can take
    /// it and kprobes for the others (auto); fentry/fexit for all or refuse to start
    /// (fentry); kprobes only (kprobe).
    #[arg(long, value_enum, default_value_t = ProbeMode::Auto)]
    pub probes: ProbeMode,

    /// The command to run and trace, with its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// The command line as clap builds it from [`Args`]: the one definition that parses the
/// arguments, and that the man page and the shell completions are generated from
/// (`examples/dist-docs.rs`, run by `cargo xtask dist`).
pub fn command() -> clap::Command {
    Args::command()
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Say whether this host can be traced, and how: each thing the tool needs, what was
    /// found and where (exit 0 if it can be traced, 1 if not).
    Check {
        #[arg(short, long, value_enum, default_value_t = CheckOutput::Table)]
        output: CheckOutput,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckOutput {
    Table,
    Json,
}

fn parse_comm(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > 15 {
        return Err(format!(
            "{} bytes is longer than a comm can be (15 bytes)",
            s.len()
        ));
    }
    Ok(s.to_string())
}

/// Sizes: a plain byte count, or a number with a unit. Single letters and IEC units are
/// binary (`4K` = 4096, as with dd and du); `KB`/`MB`/`GB` are decimal.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let normalized = match unit.to_ascii_uppercase().as_str() {
        "K" => "KiB".to_string(),
        "M" => "MiB".to_string(),
        "G" => "GiB".to_string(),
        "T" => "TiB".to_string(),
        _ => unit.to_string(),
    };
    format!("{}{}", num.trim(), normalized)
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|_| format!("{s:?} is not a size (try 4096, 4K, 1M or 2GiB)"))
}

fn parse_ring_size(s: &str) -> Result<u64, String> {
    let n = parse_size(s)?;
    if n < 4096 || !n.is_power_of_two() || n > (1 << 30) {
        return Err(format!("{s:?} must be a power of two between 4K and 1G"));
    }
    Ok(n)
}

fn parse_time(s: &str, bare_unit: fn(u64) -> Duration) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Ok(bare_unit(n));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration ({e}; try 10ms or 5s)"))
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = parse_time(s, Duration::from_secs)?;
    if d.is_zero() {
        return Err("must be longer than zero".into());
    }
    Ok(d)
}

pub fn parse_min_latency(s: &str) -> Result<Duration, String> {
    parse_time(s, Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("copyup-trace").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_is_consistent() {
        // clap's own checks of the definition (duplicate flags, bad defaults...).
        command().debug_assert();
        let check = command();
        let check = check
            .find_subcommand("check")
            .expect("the check subcommand");
        assert_eq!(check.get_name(), "check");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-1K").is_err());
        assert!(parse_size("4Q").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_min_latency("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_min_latency("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_min_latency("3"), Ok(Duration::from_millis(3)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn full_command_line() {
        let a = parse(&[
            "-o",
            "json",
            "-p",
            "42",
            "-c",
            "chown",
            "--min-size",
            "4K",
            "-m",
            "10ms",
            "-d",
            "30s",
            "--",
            "chown",
            "-R",
            "1000:1000",
            "/m",
        ])
        .unwrap();
        assert_eq!(a.output, Output::Json);
        assert_eq!(a.pid, Some(42));
        assert_eq!(a.comm.as_deref(), Some("chown"));
        assert_eq!(a.min_size, Some(4096));
        assert_eq!(a.min_latency, Some(Duration::from_millis(10)));
        assert_eq!(a.duration, Some(Duration::from_secs(30)));
        assert_eq!(a.command, ["chown", "-R", "1000:1000", "/m"]);
        assert_eq!(a.ring_size, 4 << 20);
        assert!(a.by.is_empty() && !a.hist && !a.events && a.interval.is_none());
    }

    #[test]
    fn report_options() {
        let a = parse(&[
            "--by",
            "container",
            "--by",
            "trigger",
            "--sort",
            "bytes",
            "--hist",
            "-i",
            "2s",
            "--events",
            "--report",
            "/tmp/r.json",
            "--cgroup",
            "/system.slice",
        ])
        .unwrap();
        assert_eq!(a.by, [By::Container, By::Trigger]);
        assert_eq!(a.sort, SortKey::Bytes);
        assert!(a.hist && a.events);
        assert_eq!(a.interval, Some(Duration::from_secs(2)));
        assert_eq!(
            a.report.as_deref(),
            Some(std::path::Path::new("/tmp/r.json"))
        );
        assert_eq!(a.cgroup.as_deref(), Some("/system.slice"));
    }

    #[test]
    fn command_flags_are_not_ours() {
        let a = parse(&["--", "ls", "-p", "--output"]).unwrap();
        assert_eq!(a.command, ["ls", "-p", "--output"]);
        assert_eq!(a.output, Output::Table);
    }

    #[test]
    fn bad_values_are_rejected() {
        for bad in [
            &["-o", "xml"][..],
            &["-p", "0"],
            &["-p", "abc"],
            &["-c", "a-very-long-command-name"],
            &["--min-size", "lots"],
            &["-d", "never"],
            &["--ring-size", "3000"],
            &["--top", "0"],
            &["--by", "inode"],
            &["--sort", "size"],
            &["-i", "0"],
            &["--frobnicate"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
    }
}
