//! Where the session's records go, in one direction: totals (`aggregate`), advice, the
//! look of each output (`render`), and one `Sink` (`sink`) a file per output (the table
//! and interval tables, JSON lines, CSV rows, `--events` lines, the heartbeat, the
//! `--stacks`, `--report` and `--timeline` files, the metrics endpoint). `Outputs`, here,
//! is the set of sinks the `Options` ask for. Which copy-ups they see is the session's.

pub mod advice;
pub mod aggregate;
pub mod csv;
pub mod event_lines;
pub mod heartbeat;
pub mod hist;
pub mod json;
pub mod labels;
pub mod metrics;
pub mod render;
pub mod report;
pub mod sink;
pub mod stacks;
pub mod table;
pub mod timeline;

use std::io::{self, IsTerminal, Write};

use anyhow::Result;

use crate::{
    events::decode::{CopyUp, OpDone},
    options::{Format, Options},
    output::{
        aggregate::Aggregate,
        csv::CsvRows,
        event_lines::EventLines,
        heartbeat::Heartbeat,
        json::JsonLines,
        metrics::MetricsSink,
        report::ReportFile,
        sink::{End, Sink, Status, Tick},
        stacks::{StackCollector, StackFiles},
        table::{IntervalTables, Table},
        timeline::TimelineFile,
    },
};

/// All outputs of a session, in the order they write: `--events` lines before the
/// format's own record of the same copy-up, the stdout summary before the files, the
/// metrics endpoint last.
pub struct Outputs {
    sinks: Vec<Box<dyn Sink>>,
}

impl Outputs {
    /// The outputs `opts` asks for. `stdout` opens the stream that the format and the
    /// `--events` lines share; headers are written here, before tracing starts.
    pub fn new<W: Write + 'static>(opts: &Options, stdout: impl Fn() -> W) -> Result<Outputs> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if opts.events {
            sinks.push(Box::new(EventLines::new(stdout())?));
        }
        let table = |out| Table {
            out,
            opts: opts.table.clone(),
        };
        sinks.push(match opts.format {
            Format::Table { every: None } => Box::new(table(stdout())),
            Format::Table { every: Some(every) } => Box::new(IntervalTables {
                table: table(stdout()),
                window: Aggregate::default(),
                every,
            }),
            Format::Json => Box::new(JsonLines { out: stdout() }),
            Format::Csv => Box::new(CsvRows::new(stdout())?),
        });
        if opts.heartbeat {
            sinks.push(Box::new(Heartbeat));
        }
        if let Some(to) = &opts.stacks {
            // Kernel frames are named at the end: a kallsyms that shows no addresses is
            // said now, not after the whole run.
            let shown = crate::kernel::kallsyms::open()
                .and_then(|t| Ok(crate::kernel::kallsyms::shows_addresses(t)?))
                .map_err(|e| e.context("--stacks"))?;
            if !shown {
                anyhow::bail!(
                    "--stacks: {} shows no addresses (kernel.kptr_restrict, or no CAP_SYSLOG \
                     where kernel.perf_event_paranoid is above 1): kernel frames could not be named",
                    crate::kernel::kallsyms::PATH
                );
            }
            sinks.push(Box::new(StackFiles {
                collector: StackCollector::default(),
                to: to.clone(),
            }));
        }
        if let Some(path) = &opts.report {
            sinks.push(Box::new(ReportFile {
                path: path.clone(),
                opts: opts.table.clone(),
            }));
        }
        if let Some(path) = &opts.timeline {
            sinks.push(Box::new(TimelineFile::create(path)?));
        }
        if let Some(m) = &opts.metrics {
            sinks.push(Box::new(MetricsSink::start(m)?));
        }
        Ok(Outputs { sinks })
    }
}

impl Sink for Outputs {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.copy_up(c))
    }

    fn op(&mut self, d: &OpDone) -> Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.op(d))
    }

    fn tick(&mut self, t: &Tick) -> Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.tick(t))
    }

    fn flush(&mut self) -> Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.flush())
    }

    fn finish(&mut self, end: &End) -> Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.finish(end))
    }

    fn status(&mut self, st: &Status) -> Result<()> {
        self.sinks.iter_mut().try_for_each(|s| s.status(st))
    }

    fn status_every(&self) -> Option<std::time::Duration> {
        self.sinks.iter().filter_map(|s| s.status_every()).min()
    }
}

/// What stdout holds back when it is not a terminal: Rust's stdout is line-buffered
/// even into a file or a pipe, a write(2) per record; through this buffer a batch of
/// records is one write, made when the session flushes the batch (every drain of the
/// ring, at most 25 ms apart while records come), at each tick, and at the end.
const STDOUT_BUFFER: usize = 64 * 1024;

/// The process's stdout, locked once for the session (each record is several small
/// writes, and the session is the only writer), and buffered unless it is a terminal,
/// where each line shows as it is written.
pub fn stdout() -> io::BufWriter<io::StdoutLock<'static>> {
    let out = io::stdout();
    let capacity = if out.is_terminal() { 0 } else { STDOUT_BUFFER };
    io::BufWriter::with_capacity(capacity, out.lock())
}

#[cfg(test)]
mod tests {
    use std::{
        cell::RefCell,
        collections::BTreeMap,
        rc::Rc,
        time::{Instant, SystemTime},
    };

    use super::*;
    use crate::{
        events::decode::Trigger,
        kernel::probes::Losses,
        output::{aggregate::tests::cu, sink::Probed},
    };

    /// One stdout that every sink of a test writes to, as they share the real one.
    #[derive(Clone, Default)]
    struct Shared(Rc<RefCell<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.borrow().clone()).unwrap()
        }
    }

    struct NoProbes;

    impl Probed for NoProbes {
        fn state_entries(&self) -> Option<usize> {
            Some(0)
        }

        fn stack_frames(&self, _id: i32) -> Option<Vec<u64>> {
            None
        }

        fn mechanisms(&self) -> BTreeMap<&'static str, crate::kernel::plan::Attach> {
            BTreeMap::from([
                ("ovl_copy_up_one", crate::kernel::plan::Attach::Fentry),
                ("ovl_open", crate::kernel::plan::Attach::Kprobe),
            ])
        }
    }

    /// Runs one copy-up and one finished chown through the outputs of `args`, with a
    /// tick in between, and returns what they wrote to stdout.
    fn session(args: &[&str]) -> String {
        let stdout = Shared::default();
        let out = stdout.clone();
        let mut outputs =
            Outputs::new(&Options::from_command_line(args), move || out.clone()).expect("outputs");
        // The session drains, and so flushes, as soon as it starts.
        outputs.flush().unwrap();
        let mut totals = Aggregate::default();
        let c = cu(42, "/etc/passwd", 4096, 2_000_000);
        outputs.copy_up(&c).unwrap();
        totals.add(&c);
        let op = OpDone {
            trigger: Trigger::Chown,
            start_ns: 0,
            duration_ns: 3_000_000,
            pid: 42,
            tid: 42,
            copy_ups: 1,
            ret: 0,
        };
        outputs.op(&op).unwrap();
        totals.add_op(&op);
        outputs.flush().unwrap();
        let losses = Losses::default();
        let now = SystemTime::UNIX_EPOCH;
        outputs
            .tick(&Tick {
                totals: &totals,
                losses: losses.clone(),
                now,
            })
            .unwrap();
        outputs
            .finish(&End {
                totals: &totals,
                losses,
                started: Instant::now(),
                command_elapsed: None,
                probes: &NoProbes,
            })
            .unwrap();
        stdout.text()
    }

    #[test]
    fn table_only_at_the_end() {
        let text = session(&[]);
        assert!(text.starts_with("1 copy-ups, 4.0 KiB copied"), "{text}");
        assert!(
            text.contains("Copy-ups by file") && !text.contains("==="),
            "{text}"
        );
    }

    #[test]
    fn interval_tables_then_the_whole_run() {
        let text = session(&["-i", "5s"]);
        let (interval, run) = text.split_once("Totals for the whole run:\n").unwrap();
        assert!(
            interval.starts_with("=== 1970-01-01T00:00:00Z (last 5s) ===\n1 copy-ups"),
            "{text}"
        );
        assert!(
            interval.ends_with("\n\n"),
            "a blank line after each interval"
        );
        assert!(run.starts_with("1 copy-ups, 4.0 KiB copied"), "{text}");
    }

    #[test]
    fn json_lines_then_summary() {
        let text = session(&["-o", "json"]);
        let types: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].to_string())
            .collect();
        assert_eq!(types, [r#""copy_up""#, r#""op""#, r#""summary""#]);
    }

    #[test]
    fn events_before_the_tables() {
        let text = session(&["--events"]);
        assert!(text.starts_with(render::EVENT_HEADER), "{text}");
        let (events, tables) = text.split_once("\n1 copy-ups").unwrap();
        assert_eq!(events.lines().count(), 2, "{text}");
        assert!(tables.contains("Copy-ups by process"));
    }

    #[test]
    fn report_file_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        session(&["-o", "csv", "--report", path.to_str().unwrap()]);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["type"], "report");
        assert_eq!(v["files"][0]["path"], "/etc/passwd");
        assert_eq!(
            v["probes"],
            serde_json::json!({"ovl_copy_up_one": "fentry", "ovl_open": "kprobe"})
        );
    }
}
