//! The session's settings, decided once from the parsed command line: which outputs
//! there are, which copy-ups they see, when the session ticks and when it stops. It only
//! decides; it opens nothing and reads no files (`output` builds the outputs from it).

use std::{ffi::OsString, path::PathBuf, time::Duration};

use crate::{
    cli::{Args, Output},
    events::decode::CopyUp,
    output::labels::MetricsOpts,
    output::render::TableOpts,
    output::stacks::StackOutputs,
};

/// How often a quiet host-wide trace says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// What stdout carries, besides `--events` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tables at the end; with `every`, also a table of each interval as it ends.
    Table { every: Option<Duration> },
    /// A JSON line per copy-up and per finished operation, then a summary line.
    Json,
    /// A header, then a row per copy-up.
    Csv,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    /// An fsslower-style line per copy-up on stdout, with any format.
    pub events: bool,
    /// A progress line on stderr every `HEARTBEAT`.
    pub heartbeat: bool,
    pub min_size: u64,
    pub min_latency_ns: u64,
    pub duration: Option<Duration>,
    /// The command to run and trace; empty for a host-wide trace.
    pub command: Vec<OsString>,
    /// Where `--stacks` and `--flamegraph` write; `None` when neither is asked for, and
    /// then no stacks are recorded.
    pub stacks: Option<StackOutputs>,
    pub table: TableOpts,
    pub report: Option<PathBuf>,
    /// `--metrics`: the endpoint and its labels.
    pub metrics: Option<MetricsOpts>,
    pub timeline: Option<PathBuf>,
}

/// A combination of options that would do less than it says: refused with one line
/// rather than silently ignored.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub &'static str);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Refused {}

impl Options {
    pub fn new(args: &Args) -> Result<Options, Refused> {
        let format = match args.output {
            Output::Table => Format::Table {
                every: args.interval,
            },
            // Interval tables are a table-format feature; JSON and CSV already stream.
            Output::Json | Output::Csv if args.interval.is_some() => {
                return Err(Refused(
                    "--interval prints tables; with -o json or csv every record already                      streams as it comes",
                ))
            }
            // Text lines would break the machine-readable stream.
            Output::Json | Output::Csv if args.events => {
                return Err(Refused(
                    "--events prints text lines; with -o json or csv every copy-up is                      already a record",
                ))
            }
            Output::Json => Format::Json,
            Output::Csv => Format::Csv,
        };
        let stacks = StackOutputs {
            folded: args.stacks.clone(),
            svg: args.flamegraph.clone(),
        };
        Ok(Options {
            format,
            events: args.events,
            // Only a trace that prints nothing until Ctrl-C needs to show it is alive.
            heartbeat: args.command.is_empty()
                && format == Format::Table { every: None }
                && !args.events,
            min_size: args.min_size.unwrap_or(0),
            min_latency_ns: args.min_latency.map(|d| d.as_nanos() as u64).unwrap_or(0),
            duration: args.duration,
            command: args.command.clone(),
            stacks: stacks.wanted().then_some(stacks),
            table: TableOpts {
                by: args.by.clone(),
                sort: args.sort,
                top: args.top as usize,
                hist: args.hist,
            },
            report: args.report.clone(),
            metrics: args.metrics.map(|addr| MetricsOpts {
                addr,
                labels: args.metrics_labels.clone(),
                max_series: args.metrics_max_series as usize,
                expire_after: args.metrics_expire_after,
            }),
            timeline: args.timeline.clone(),
        })
    }

    /// Whether a copy-up passes `--min-size` and `--min-latency`.
    pub fn keeps(&self, c: &CopyUp) -> bool {
        c.bytes >= self.min_size && c.copy_ns >= self.min_latency_ns
    }

    /// The options of `copyup-trace ARGS...`, for tests.
    #[cfg(test)]
    pub(crate) fn from_command_line(args: &[&str]) -> Options {
        use clap::Parser;
        let argv = std::iter::once("copyup-trace").chain(args.iter().copied());
        Options::new(&Args::try_parse_from(argv).expect("valid arguments"))
            .expect("a combination that is not refused")
    }

    /// How often the outputs are ticked: each `--interval`, else each heartbeat.
    pub fn tick_every(&self) -> Option<Duration> {
        match self.format {
            Format::Table { every: Some(every) } => Some(every),
            _ => self.heartbeat.then_some(HEARTBEAT),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(args: &[&str]) -> Options {
        Options::from_command_line(args)
    }

    #[test]
    fn interval_tables_belong_to_the_table_format() {
        let o = options(&["-i", "5s"]);
        assert_eq!(
            o.format,
            Format::Table {
                every: Some(Duration::from_secs(5))
            }
        );
        assert_eq!(o.tick_every(), Some(Duration::from_secs(5)));
        assert!(!o.heartbeat);
    }

    /// What a machine-readable stream cannot do is refused, not ignored.
    #[test]
    fn machine_formats_refuse_what_they_cannot_show() {
        use clap::Parser;
        let refused = |args: &[&str]| {
            let argv = std::iter::once("copyup-trace").chain(args.iter().copied());
            Options::new(&Args::try_parse_from(argv).unwrap()).err()
        };
        for fmt in ["json", "csv"] {
            let e = refused(&["-o", fmt, "-i", "5s"]).expect("refused");
            assert!(e.0.starts_with("--interval prints tables"), "{e}");
            let e = refused(&["-o", fmt, "--events"]).expect("refused");
            assert!(e.0.starts_with("--events prints text lines"), "{e}");
        }
        assert_eq!(refused(&["--events", "-i", "1"]), None);
        assert_eq!(options(&["-o", "json"]).tick_every(), None);
    }

    #[test]
    fn heartbeat_only_when_nothing_else_shows_progress() {
        assert!(options(&[]).heartbeat);
        assert_eq!(options(&[]).tick_every(), Some(HEARTBEAT));
        for busy in [
            &["--events"][..],
            &["-o", "csv"],
            &["-o", "json"],
            &["-i", "1"],
            &["--", "true"],
        ] {
            let o = options(busy);
            assert!(!o.heartbeat, "{busy:?}");
        }
    }

    #[test]
    fn stacks_wanted_for_either_file() {
        assert!(options(&[]).stacks.is_none());
        let o = options(&["--flamegraph", "/tmp/f.svg"]);
        let s = o.stacks.unwrap();
        assert!(s.folded.is_none() && s.svg.is_some());
        assert!(options(&["--stacks", "/tmp/s.folded"]).stacks.is_some());
    }

    #[test]
    fn metrics_and_timeline() {
        let o = options(&[]);
        assert!(o.metrics.is_none() && o.timeline.is_none());
        let o = options(&[
            "--metrics",
            "127.0.0.1:29435",
            "--metrics-labels",
            "kind",
            "--timeline",
            "/tmp/t.json",
        ]);
        let m = o.metrics.unwrap();
        assert_eq!(m.addr, "127.0.0.1:29435".parse().unwrap());
        assert_eq!(m.labels.0.len(), 1);
        assert_eq!(m.max_series, crate::output::labels::DEFAULT_MAX_SERIES);
        assert_eq!(
            o.timeline.as_deref(),
            Some(std::path::Path::new("/tmp/t.json"))
        );
        // The defaults apply once --metrics is given.
        let m = options(&["--metrics", "[::1]:1", "--metrics-max-series", "7"])
            .metrics
            .unwrap();
        assert_eq!(m.labels.0.len(), 5);
        assert_eq!(m.max_series, 7);
    }

    #[test]
    fn filters_and_tables() {
        let o = options(&[
            "--min-size",
            "4K",
            "-m",
            "1ms",
            "--top",
            "3",
            "--by",
            "trigger",
        ]);
        let mut c = CopyUp {
            bytes: 4096,
            copy_ns: 1_000_000,
            ..CopyUp::default()
        };
        assert!(o.keeps(&c));
        c.bytes = 4095;
        assert!(!o.keeps(&c));
        assert_eq!(o.table.top, 3);
        assert_eq!(o.table.by, [crate::cli::By::Trigger]);
        assert!(options(&[]).keeps(&CopyUp::default()));
    }
}
