//! `--timeline FILE.json`: copy-ups as Chrome trace-event JSON (Perfetto,
//! chrome://tracing). One track per process and thread, a span per causing call (`op`), per
//! copy-up (`copy_up`) and per data copy (`data`), nested per thread; times are the kernel's
//! CLOCK_MONOTONIC in microseconds, as `perf record -k mono` uses. It writes events as the
//! session hands them over; what they hold is decided by `decode`.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::{
    escape::escape,
    events::decode::{CopyUp, OpDone},
    hashing::IdSet,
    output::sink::{End, Sink},
};

/// Arguments of a span, by category.
#[derive(Serialize)]
#[serde(untagged)]
enum Args<'a> {
    Name {
        name: &'a str,
    },
    Op {
        copy_ups: u32,
        ret: i32,
    },
    CopyUp {
        path: &'a str,
        kind: &'static str,
        bytes: u64,
        trigger: &'static str,
        container: Option<&'a str>,
        ret: i32,
        waited: bool,
    },
    Data {
        bytes: u64,
    },
}

/// One trace event ("ph": "X" complete span, or "M" metadata).
#[derive(Serialize)]
struct Event<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    cat: &'static str,
    ph: &'static str,
    /// Microseconds; nanoseconds kept as three decimals.
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: u32,
    tid: u32,
    args: Args<'a>,
}

fn us(ns: u64) -> Option<f64> {
    Some(ns as f64 / 1000.0)
}

/// Writes the JSON Array Format: `[` at once, an event per line as records come, `]` at
/// the end. A run killed before the end leaves a file the viewers still open (the closing
/// bracket is optional in that format).
pub struct Timeline<W: Write> {
    out: W,
    first: bool,
    processes: IdSet<u32>,
    threads: IdSet<u32>,
    /// Reused for each copy-up's escaped path.
    path: Vec<u8>,
}

impl<W: Write> Timeline<W> {
    pub fn new(mut out: W) -> Result<Self> {
        out.write_all(b"[\n")?;
        Ok(Timeline {
            out,
            first: true,
            processes: IdSet::default(),
            threads: IdSet::default(),
            path: Vec::new(),
        })
    }

    fn event(&mut self, e: &Event) -> Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        serde_json::to_writer(&mut self.out, e)?;
        Ok(())
    }

    /// Names the process and thread tracks the first time they appear.
    fn tracks(&mut self, c: &CopyUp) -> Result<()> {
        let comm = escape(&c.comm);
        if self.processes.insert(c.pid) {
            self.meta("process_name", c.pid, c.pid, &comm)?;
        }
        if self.threads.insert(c.tid) {
            self.meta("thread_name", c.pid, c.tid, &comm)?;
        }
        Ok(())
    }

    fn meta(&mut self, what: &'static str, pid: u32, tid: u32, name: &str) -> Result<()> {
        self.event(&Event {
            name: what,
            cat: "",
            ph: "M",
            ts: None,
            dur: None,
            pid,
            tid,
            args: Args::Name { name },
        })
    }

    pub fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        self.tracks(c)?;
        c.display_path_into(&mut self.path);
        let path = escape(&self.path);
        let container = c.container.as_deref().map(|k| k.id.as_str());
        self.event(&Event {
            name: &path,
            cat: "copy_up",
            ph: "X",
            ts: us(c.start_ns),
            dur: us(c.copy_ns),
            pid: c.pid,
            tid: c.tid,
            args: Args::CopyUp {
                path: &path,
                kind: c.kind.name(),
                bytes: c.bytes,
                trigger: c.trigger.name(),
                container,
                ret: c.ret,
                waited: c.waited,
            },
        })?;
        if c.data_ns > 0 {
            // The record has the data copy's duration, not its start: it is drawn from the
            // copy-up's start (the data is copied early, before the metadata and the
            // rename into place).
            self.event(&Event {
                name: "data",
                cat: "data",
                ph: "X",
                ts: us(c.start_ns),
                dur: us(c.data_ns),
                pid: c.pid,
                tid: c.tid,
                args: Args::Data { bytes: c.bytes },
            })?;
        }
        Ok(())
    }

    pub fn op(&mut self, d: &OpDone) -> Result<()> {
        self.event(&Event {
            name: d.trigger.name(),
            cat: "op",
            ph: "X",
            ts: us(d.start_ns),
            dur: us(d.duration_ns),
            pid: d.pid,
            tid: d.tid,
            args: Args::Op {
                copy_ups: d.copy_ups,
                ret: d.ret,
            },
        })
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    pub fn finish(&mut self) -> Result<()> {
        self.out.write_all(b"\n]\n")?;
        self.flush()
    }
}

/// The `--timeline` output: the file is created before tracing starts.
pub struct TimelineFile(Timeline<BufWriter<File>>);

impl TimelineFile {
    pub fn create(path: &Path) -> Result<TimelineFile> {
        let f = File::create(path)
            .with_context(|| format!("--timeline {}: cannot create", path.display()))?;
        Ok(TimelineFile(Timeline::new(BufWriter::new(f))?))
    }
}

impl Sink for TimelineFile {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        self.0.copy_up(c)
    }

    fn op(&mut self, d: &OpDone) -> Result<()> {
        self.0.op(d)
    }

    fn flush(&mut self) -> Result<()> {
        self.0.flush()
    }

    fn finish(&mut self, _end: &End) -> Result<()> {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::events::decode::{Kind, Trigger};

    fn cu(tid: u32, path: &[u8], start: u64, copy: u64, data: u64, bytes: u64) -> CopyUp {
        CopyUp {
            pid: 10,
            tid,
            comm: b"chown\x1b".to_vec(),
            path: path.to_vec(),
            start_ns: start,
            copy_ns: copy,
            data_ns: data,
            bytes,
            kind: Kind::File,
            trigger: Trigger::Chown,
            ..CopyUp::default()
        }
    }

    fn write(f: impl FnOnce(&mut Timeline<&mut Vec<u8>>)) -> Vec<Value> {
        let mut buf = Vec::new();
        let mut t = Timeline::new(&mut buf).unwrap();
        f(&mut t);
        t.finish().unwrap();
        serde_json::from_slice(&buf).expect("the timeline is one JSON array")
    }

    #[test]
    fn tracks_spans_and_escapes() {
        let events = write(|t| {
            t.copy_up(&cu(10, b"/a\n\x1b", 1_000_500, 2_000, 1_500, 4096))
                .unwrap();
            t.copy_up(&cu(11, b"/b", 1_010_000, 300, 0, 0)).unwrap();
            t.op(&OpDone {
                trigger: Trigger::Chown,
                start_ns: 1_000_000,
                duration_ns: 5_000,
                pid: 10,
                tid: 10,
                copy_ups: 1,
                ret: 0,
            })
            .unwrap();
        });
        let kinds: Vec<(&str, &str, u64)> = events
            .iter()
            .map(|e| {
                (
                    e["ph"].as_str().unwrap(),
                    e["name"].as_str().unwrap(),
                    e["tid"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("M", "process_name", 10),
                ("M", "thread_name", 10),
                ("X", "/a\\n\\x1b", 10),
                ("X", "data", 10),
                ("M", "thread_name", 11),
                ("X", "/b", 11),
                ("X", "chown", 10),
            ]
        );
        assert_eq!(events[0]["args"]["name"], "chown\\x1b");
        let copy = &events[2];
        assert_eq!(copy["cat"], "copy_up");
        assert_eq!(copy["ts"], 1000.5);
        assert_eq!(copy["dur"], 2.0);
        assert_eq!(copy["args"]["path"], "/a\\n\\x1b");
        assert_eq!(copy["args"]["kind"], "file");
        assert_eq!(copy["args"]["bytes"], 4096);
        assert_eq!(copy["args"]["trigger"], "chown");
        assert_eq!(copy["args"]["container"], Value::Null);
        assert_eq!(events[3]["cat"], "data");
        assert_eq!(events[3]["dur"], 1.5);
        assert_eq!(events[6]["cat"], "op");
        assert_eq!(events[6]["args"]["copy_ups"], 1);
        // Nesting on thread 10: op [1000, 1005] holds copy [1000.5, 1002.5] holds data.
        let span = |e: &Value| {
            let ts = e["ts"].as_f64().unwrap();
            (ts, ts + e["dur"].as_f64().unwrap())
        };
        let (op, copy, data) = (span(&events[6]), span(&events[2]), span(&events[3]));
        assert!(op.0 <= copy.0 && copy.1 <= op.1);
        assert!(copy.0 <= data.0 && data.1 <= copy.1);
    }

    #[test]
    fn nanoseconds_survive_as_microseconds() {
        // A day of uptime, to the nanosecond.
        let start = 86_400_000_000_123;
        let events = write(|t| t.copy_up(&cu(1, b"/x", start, 999_999, 0, 0)).unwrap());
        let copy = &events[2];
        assert_eq!(
            (copy["ts"].as_f64().unwrap() * 1000.0).round() as u64,
            start
        );
        assert_eq!(
            (copy["dur"].as_f64().unwrap() * 1000.0).round() as u64,
            999_999
        );
    }

    #[test]
    fn empty_run_is_an_empty_array() {
        assert!(write(|_| ()).is_empty());
    }
}
