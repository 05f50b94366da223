//! Output formats: human tables, JSON lines and CSV. Every name from the traced system
//! passes through `escape` on its way out.

use std::{io::Write, time::Duration};

use anyhow::Result;
use bytesize::ByteSize;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde::Serialize;

use crate::{
    aggregate::Aggregate,
    decode::{CopyUp, OpDone},
    escape::escape,
};

/// Version of the JSON-lines and CSV record layouts; bumped on incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Events the kernel side could not deliver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Losses {
    /// Dropped because the ring buffer was full.
    pub lost_events: u64,
    /// Copy-ups whose per-thread state could not be kept.
    pub lost_state: u64,
}

impl Losses {
    pub fn total(&self) -> u64 {
        self.lost_events + self.lost_state
    }
}

/// `1.23ms`-style, rounded to what a reader can use.
pub fn human_ns(ns: u64) -> String {
    let d = Duration::from_nanos(ns);
    let rounded = if d >= Duration::from_secs(1) {
        Duration::from_millis(d.as_millis() as u64)
    } else if d >= Duration::from_micros(1) {
        Duration::from_micros(d.as_micros() as u64)
    } else {
        d
    };
    humantime::format_duration(rounded).to_string()
}

pub fn human_bytes(b: u64) -> String {
    ByteSize::b(b).display().iec().to_string()
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    #[serde(rename = "type")]
    kind_of_record: &'static str,
    schema: u32,
    ts_ns: u64,
    pid: u32,
    tid: u32,
    ppid: u32,
    comm: String,
    cgroup_id: u64,
    trigger: &'a str,
    path: String,
    path_truncated: bool,
    kind: &'a str,
    filename: Option<String>,
    bytes: u64,
    copy_ns: u64,
    data_ns: u64,
    ret: i32,
    waited: bool,
    metacopy: bool,
    size: u64,
    cause_ts_ns: u64,
}

impl<'a> JsonEvent<'a> {
    fn new(c: &'a CopyUp) -> Self {
        JsonEvent {
            kind_of_record: "copy_up",
            schema: SCHEMA_VERSION,
            ts_ns: c.start_ns,
            pid: c.pid,
            tid: c.tid,
            ppid: c.ppid,
            comm: escape(&c.comm),
            cgroup_id: c.cgroup_id,
            trigger: c.trigger.name(),
            path: escape(&c.path),
            path_truncated: c.path_truncated,
            kind: c.kind.name(),
            filename: c.filename.as_deref().map(escape),
            bytes: c.bytes,
            copy_ns: c.copy_ns,
            data_ns: c.data_ns,
            ret: c.ret,
            waited: c.waited,
            metacopy: c.metacopy,
            size: c.size,
            cause_ts_ns: c.cause_start_ns,
        }
    }
}

pub fn json_event(out: &mut impl Write, c: &CopyUp) -> Result<()> {
    serde_json::to_writer(&mut *out, &JsonEvent::new(c))?;
    out.write_all(b"\n")?;
    Ok(())
}

#[derive(Serialize)]
struct JsonOp<'a> {
    #[serde(rename = "type")]
    kind_of_record: &'static str,
    schema: u32,
    ts_ns: u64,
    pid: u32,
    tid: u32,
    trigger: &'a str,
    duration_ns: u64,
    copy_ups: u32,
    ret: i32,
}

/// A syscall or operation that caused copy-ups has returned: its own latency. Copy-up
/// records with the same `tid` and `cause_ts_ns` == this `ts_ns` belong to it.
pub fn json_op(out: &mut impl Write, d: &OpDone) -> Result<()> {
    let rec = JsonOp {
        kind_of_record: "op",
        schema: SCHEMA_VERSION,
        ts_ns: d.start_ns,
        pid: d.pid,
        tid: d.tid,
        trigger: d.trigger.name(),
        duration_ns: d.duration_ns,
        copy_ups: d.copy_ups,
        ret: d.ret,
    };
    serde_json::to_writer(&mut *out, &rec)?;
    out.write_all(b"\n")?;
    Ok(())
}

#[derive(Serialize)]
struct JsonSummary {
    #[serde(rename = "type")]
    kind_of_record: &'static str,
    schema: u32,
    copy_ups: u64,
    bytes: u64,
    copy_ns: u64,
    max_copy_ns: u64,
    data_ns: u64,
    errors: u64,
    waits: u64,
    lost: u64,
    lost_events: u64,
    lost_state: u64,
    duration_ns: u64,
    /// Wall time of `-- COMMAND`, from spawn to exit.
    command_ns: Option<u64>,
}

pub fn json_summary(
    out: &mut impl Write,
    agg: &Aggregate,
    losses: Losses,
    elapsed: Duration,
    command: Option<Duration>,
) -> Result<()> {
    let t = agg.total;
    let s = JsonSummary {
        kind_of_record: "summary",
        schema: SCHEMA_VERSION,
        copy_ups: t.copy_ups,
        bytes: t.bytes,
        copy_ns: t.copy_ns,
        max_copy_ns: t.max_copy_ns,
        data_ns: t.data_ns,
        errors: t.errors,
        waits: t.waits,
        lost: losses.total(),
        lost_events: losses.lost_events,
        lost_state: losses.lost_state,
        duration_ns: elapsed.as_nanos() as u64,
        command_ns: command.map(|d| d.as_nanos() as u64),
    };
    serde_json::to_writer(&mut *out, &s)?;
    out.write_all(b"\n")?;
    Ok(())
}

pub const CSV_HEADER: &[&str] = &[
    "schema",
    "ts_ns",
    "pid",
    "tid",
    "ppid",
    "comm",
    "cgroup_id",
    "trigger",
    "kind",
    "path",
    "path_truncated",
    "filename",
    "bytes",
    "copy_ns",
    "data_ns",
    "ret",
    "waited",
    "metacopy",
    "size",
    "cause_ts_ns",
];

pub fn csv_writer<W: Write>(out: W) -> Result<csv::Writer<W>> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(CSV_HEADER)?;
    Ok(w)
}

pub fn csv_event<W: Write>(w: &mut csv::Writer<W>, c: &CopyUp) -> Result<()> {
    w.write_record([
        SCHEMA_VERSION.to_string(),
        c.start_ns.to_string(),
        c.pid.to_string(),
        c.tid.to_string(),
        c.ppid.to_string(),
        escape(&c.comm),
        c.cgroup_id.to_string(),
        c.trigger.name().to_string(),
        c.kind.name().to_string(),
        escape(&c.path),
        c.path_truncated.to_string(),
        c.filename.as_deref().map(escape).unwrap_or_default(),
        c.bytes.to_string(),
        c.copy_ns.to_string(),
        c.data_ns.to_string(),
        c.ret.to_string(),
        c.waited.to_string(),
        c.metacopy.to_string(),
        c.size.to_string(),
        c.cause_start_ns.to_string(),
    ])?;
    Ok(())
}

fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_header(header.to_vec());
    t
}

/// The per-file and per-process tables plus a one-line summary.
pub fn tables(out: &mut impl Write, agg: &Aggregate, losses: Losses, top: usize) -> Result<()> {
    let t = agg.total;
    writeln!(
        out,
        "{} copy-ups, {} copied, {} in copy-up ({} copying data){}{}",
        t.copy_ups,
        human_bytes(t.bytes),
        human_ns(t.copy_ns),
        human_ns(t.data_ns),
        if t.waits > 0 {
            format!(", {} waits on another thread's copy-up", t.waits)
        } else {
            String::new()
        },
        if t.errors > 0 {
            format!(", {} failed", t.errors)
        } else {
            String::new()
        },
    )?;
    writeln!(out, "lost events: {}", losses.total())?;
    if t.copy_ups == 0 && t.waits == 0 {
        return Ok(());
    }

    let mut files = new_table(&[
        "PATH",
        "KIND",
        "TRIGGER",
        "COPY-UPS",
        "BYTES",
        "TIME",
        "DATA TIME",
    ]);
    let rows = agg.files();
    for f in rows.iter().take(top) {
        let mut path = escape(&f.path);
        if f.path.first() != Some(&b'/') || path.is_empty() {
            path.insert(0, '/');
        }
        files.add_row(vec![
            Cell::new(path),
            Cell::new(f.kind.name()),
            Cell::new(f.trigger.name()),
            right(f.stats.copy_ups.to_string()),
            right(human_bytes(f.stats.bytes)),
            right(human_ns(f.stats.copy_ns)),
            right(human_ns(f.stats.data_ns)),
        ]);
    }
    writeln!(out, "\nCopy-ups by file (longest first):\n{files}")?;
    if rows.len() > top {
        writeln!(out, "... {} more files", rows.len() - top)?;
    }

    let mut procs = new_table(&["PID", "COMM", "COPY-UPS", "BYTES", "TIME", "MAX", "WAITS"]);
    for p in agg.processes().iter().take(top) {
        procs.add_row(vec![
            right(p.pid.to_string()),
            Cell::new(escape(&p.comm)),
            right(p.stats.copy_ups.to_string()),
            right(human_bytes(p.stats.bytes)),
            right(human_ns(p.stats.copy_ns)),
            right(human_ns(p.stats.max_copy_ns)),
            right(p.stats.waits.to_string()),
        ]);
    }
    writeln!(out, "\nCopy-ups by process (longest first):\n{procs}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Kind, Trigger};

    fn evil() -> CopyUp {
        CopyUp {
            start_ns: 5,
            copy_ns: 2_500_000,
            data_ns: 2_000_000,
            bytes: 8 << 20,
            cgroup_id: 7,
            pid: 100,
            tid: 101,
            ppid: 1,
            ret: 0,
            comm: b"ch\x1b]0;own".to_vec(),
            trigger: Trigger::Chown,
            kind: Kind::File,
            path: b"/dir/evil\n\x1b[2Jname\xff".to_vec(),
            path_truncated: false,
            filename: Some(b"/merged/dir/evil\n".to_vec()),
            waited: false,
            metacopy: false,
            size: 8 << 20,
            dev: 0,
            cause_start_ns: 4,
        }
    }

    #[test]
    fn json_round_trip_and_escaping() {
        let mut buf = Vec::new();
        json_event(&mut buf, &evil()).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.matches('\n').count(), 1, "one record per line");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "copy_up");
        assert_eq!(v["schema"], 1);
        assert_eq!(v["bytes"], 8388608);
        assert_eq!(v["trigger"], "chown");
        assert_eq!(v["kind"], "file");
        assert_eq!(v["path"], "/dir/evil\\n\\x1b[2Jname\\xff");
        assert_eq!(v["comm"], "ch\\x1b]0;own");
        assert_eq!(v["filename"], "/merged/dir/evil\\n");
    }

    #[test]
    fn summary_counts_losses() {
        let mut agg = Aggregate::default();
        agg.add(&evil());
        let mut buf = Vec::new();
        let losses = Losses {
            lost_events: 3,
            lost_state: 1,
        };
        json_summary(&mut buf, &agg, losses, Duration::from_millis(2), None).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["type"], "summary");
        assert_eq!(v["copy_ups"], 1);
        assert_eq!(v["bytes"], 8388608);
        assert_eq!(v["lost"], 4);
        assert_eq!(v["duration_ns"], 2_000_000);
        assert!(v["command_ns"].is_null());
    }

    #[test]
    fn csv_round_trip() {
        let mut w = csv_writer(Vec::new()).unwrap();
        csv_event(&mut w, &evil()).unwrap();
        let data = w.into_inner().unwrap();
        assert!(!data.contains(&0x1b), "no raw escape byte in CSV");
        let mut r = csv::Reader::from_reader(&data[..]);
        let headers = r.headers().unwrap().clone();
        assert_eq!(headers.iter().collect::<Vec<_>>(), CSV_HEADER);
        let rows: Vec<_> = r.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 1);
        let get =
            |name: &str| rows[0][CSV_HEADER.iter().position(|h| *h == name).unwrap()].to_string();
        assert_eq!(get("path"), "/dir/evil\\n\\x1b[2Jname\\xff");
        assert_eq!(get("bytes"), "8388608");
        assert_eq!(get("trigger"), "chown");
    }

    #[test]
    fn table_is_escaped_and_summarised() {
        let mut agg = Aggregate::default();
        agg.add(&evil());
        let mut buf = Vec::new();
        tables(&mut buf, &agg, Losses::default(), 20).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.starts_with("1 copy-ups, 8.0 MiB copied, 2ms 500us in copy-up"),
            "{text}"
        );
        assert!(text.contains("lost events: 0"));
        assert!(text.contains("/dir/evil\\n\\x1b[2Jname\\xff"), "{text}");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(1_234_567), "1ms 234us");
        assert_eq!(human_ns(2_500_000_000), "2s 500ms");
        assert_eq!(human_ns(999), "999ns");
        assert_eq!(human_bytes(8 << 20), "8.0 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
