//! Where the session's records go: one `Sink` per output (the table, interval tables,
//! JSON lines, CSV rows, `--events` lines, the heartbeat, the `--stacks` and `--report`
//! files), chosen once from the `Options`. Sinks decide when to write and to where; how
//! a record or table looks is `render`'s job, and which copy-ups they see is the
//! session's.

use std::{
    collections::BTreeMap,
    io::IsTerminal,
    io::{self, Write},
    path::PathBuf,
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context, Result};

use crate::{
    aggregate::Aggregate,
    decode::{CopyUp, OpDone},
    metrics::MetricsSink,
    options::{Format, Options},
    probes::{Losses, Probes},
    render::{self, TableOpts},
    stacks::{KernelSymbols, StackCollector, StackOutputs},
    timeline::TimelineFile,
};

/// One output. It sees every kept copy-up and every finished operation as they are
/// decoded, each tick of `--interval` or the heartbeat, and the end of the run.
pub trait Sink {
    fn copy_up(&mut self, _c: &CopyUp) -> Result<()> {
        Ok(())
    }

    fn op(&mut self, _d: &OpDone) -> Result<()> {
        Ok(())
    }

    fn tick(&mut self, _t: &Tick) -> Result<()> {
        Ok(())
    }

    /// After each batch of records: write out what is held back, so that a reader of a
    /// slow trickle sees each record promptly.
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self, _end: &End) -> Result<()> {
        Ok(())
    }

    /// What only the kernel side counts, at the start, every second while `--metrics`
    /// serves, and at the end.
    fn status(&mut self, _s: &Status) -> Result<()> {
        Ok(())
    }
}

/// The kernel side's counters and probes, for sinks that show them while tracing.
pub struct Status<'a> {
    pub losses: Losses,
    pub probes: &'a dyn Probed,
}

/// The state of the run at a tick.
pub struct Tick<'a> {
    /// Everything kept since the start.
    pub totals: &'a Aggregate,
    pub losses: Losses,
    pub now: SystemTime,
}

/// The state of the run at its end.
pub struct End<'a> {
    pub totals: &'a Aggregate,
    pub losses: Losses,
    /// When tracing began; each output measures the run's length when it writes it.
    pub started: Instant,
    /// Wall time of `-- COMMAND`, from spawn to exit.
    pub command_elapsed: Option<Duration>,
    pub probes: &'a dyn Probed,
}

/// What only the kernel side can tell at the end.
pub trait Probed {
    /// Entries left in the kernel's per-thread maps.
    fn state_entries(&self) -> Option<usize>;
    /// A recorded stack's instruction pointers, innermost first.
    fn stack_frames(&self, id: i32) -> Option<Vec<u64>>;
    /// How each probed function was attached ("fentry" or "kprobe"), by name.
    fn mechanisms(&self) -> BTreeMap<&'static str, &'static str>;
}

impl Probed for Probes {
    fn state_entries(&self) -> Option<usize> {
        Probes::state_entries(self).ok()
    }

    fn stack_frames(&self, id: i32) -> Option<Vec<u64>> {
        Probes::stack_frames(self, id)
    }

    fn mechanisms(&self) -> BTreeMap<&'static str, &'static str> {
        Probes::mechanisms(self).clone()
    }
}

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
}

/// `-o table`: the summary line and the tables of the whole run, at the end.
pub struct Table<W> {
    out: W,
    opts: TableOpts,
}

impl<W: Write> Sink for Table<W> {
    fn finish(&mut self, end: &End) -> Result<()> {
        render::tables(&mut self.out, end.totals, &end.losses, &self.opts)?;
        self.out.flush()?;
        Ok(())
    }
}

/// `-o table --interval`: the tables of each interval as it ends (then reset, like top),
/// and those of the whole run at the end.
pub struct IntervalTables<W> {
    table: Table<W>,
    /// Totals since the last tick.
    window: Aggregate,
    every: Duration,
}

impl<W: Write> Sink for IntervalTables<W> {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        self.window.add(c);
        Ok(())
    }

    fn op(&mut self, d: &OpDone) -> Result<()> {
        self.window.add_op(d);
        Ok(())
    }

    fn tick(&mut self, t: &Tick) -> Result<()> {
        let window = std::mem::take(&mut self.window);
        let out = &mut self.table.out;
        render::interval_header(out, t.now, self.every)?;
        render::tables(out, &window, &t.losses, &self.table.opts)?;
        writeln!(out)?;
        out.flush()?;
        Ok(())
    }

    fn finish(&mut self, end: &End) -> Result<()> {
        writeln!(self.table.out, "Totals for the whole run:")?;
        self.table.finish(end)
    }
}

/// `-o json`: a line per copy-up and per finished operation as they come, then a
/// summary line.
pub struct JsonLines<W> {
    out: W,
}

impl<W: Write> Sink for JsonLines<W> {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        render::json_event(&mut self.out, c)
    }

    fn op(&mut self, d: &OpDone) -> Result<()> {
        render::json_op(&mut self.out, d)
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    fn finish(&mut self, end: &End) -> Result<()> {
        render::json_summary(
            &mut self.out,
            end.totals,
            &end.losses,
            end.started.elapsed(),
            end.command_elapsed,
            end.probes.state_entries(),
            &end.probes.mechanisms(),
        )?;
        self.out.flush()?;
        Ok(())
    }
}

/// `-o csv`: the header at once, a row per copy-up as it comes. Lost events go to
/// stderr, as a CSV file has no place for them.
pub struct CsvRows<W: Write> {
    rows: csv::Writer<W>,
}

impl<W: Write> CsvRows<W> {
    fn new(out: W) -> Result<Self> {
        Ok(CsvRows {
            rows: render::csv_writer(out)?,
        })
    }
}

impl<W: Write> Sink for CsvRows<W> {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        render::csv_event(&mut self.rows, c)
    }

    fn flush(&mut self) -> Result<()> {
        self.rows.flush()?;
        Ok(())
    }

    fn finish(&mut self, end: &End) -> Result<()> {
        self.rows.flush()?;
        if end.losses.total() > 0 {
            eprintln!("copyup-trace: lost events: {}", end.losses.total());
        }
        Ok(())
    }
}

/// `--events`: the header at once, then an fsslower-style line per copy-up.
pub struct EventLines<W> {
    out: W,
}

impl<W: Write> EventLines<W> {
    fn new(mut out: W) -> Result<Self> {
        writeln!(out, "{}", render::EVENT_HEADER)?;
        Ok(EventLines { out })
    }
}

impl<W: Write> Sink for EventLines<W> {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        render::event_line(&mut self.out, c, SystemTime::now())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

/// A quiet host-wide trace: a progress line on stderr at each tick.
pub struct Heartbeat;

impl Sink for Heartbeat {
    fn tick(&mut self, t: &Tick) -> Result<()> {
        let total = t.totals.total;
        eprintln!(
            "copyup-trace: {} copy-ups ({}) so far, lost events: {}",
            total.copy_ups,
            render::human_bytes(total.bytes),
            t.losses.total()
        );
        Ok(())
    }
}

/// `--stacks` / `--flamegraph`: copy-up time per stack, written to files at the end.
pub struct StackFiles {
    collector: StackCollector,
    to: StackOutputs,
}

impl Sink for StackFiles {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        self.collector.add(c);
        Ok(())
    }

    fn finish(&mut self, end: &End) -> Result<()> {
        let ksyms = KernelSymbols::load()?;
        let lines = self
            .collector
            .fold(&ksyms, |id| end.probes.stack_frames(id));
        self.to.write(&lines)
    }
}

/// `--report`: the final summary with every breakdown, as a JSON file.
pub struct ReportFile {
    path: PathBuf,
    opts: TableOpts,
}

impl Sink for ReportFile {
    fn finish(&mut self, end: &End) -> Result<()> {
        let mut report = render::report(
            end.totals,
            &end.losses,
            end.started.elapsed(),
            end.command_elapsed,
            &self.opts,
        );
        // As in the JSON summary: the mechanism each probed function got.
        report["probes"] = serde_json::json!(end.probes.mechanisms());
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(&self.path, text + "\n")
            .with_context(|| format!("writing report {}", self.path.display()))
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
    use std::{cell::RefCell, rc::Rc};

    use super::*;
    use crate::{aggregate::tests::cu, decode::Trigger};

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

        fn mechanisms(&self) -> BTreeMap<&'static str, &'static str> {
            BTreeMap::from([("ovl_copy_up_one", "fentry"), ("ovl_open", "kprobe")])
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
