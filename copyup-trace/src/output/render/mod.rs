//! What the output looks like: human tables, `--events` lines, JSON lines, CSV rows and
//! the `--report` JSON. Every name from the traced system passes through `escape` on its
//! way out. It writes to whatever writer it is handed; which outputs exist and when they
//! write is the sinks' business. The layer table and the advice text are its `layers`
//! and `advice`.

pub mod advice;
pub mod layers;

use std::{
    borrow::Cow,
    collections::BTreeMap,
    io::{IsTerminal, Write},
    time::Duration,
};

use anyhow::Result;
use bytesize::ByteSize;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ContentArrangement, Table};
use serde::Serialize;

use crate::kernel::plan::Attach;
use crate::{
    attribution::cgroups::Container,
    cli::{By, SortKey},
    escape::{escape, escape_cow},
    events::decode::{CopyUp, OpDone},
    kernel::probes::Losses,
    output::aggregate::{Aggregate, Folded, Row},
};

/// Version of the JSON-lines and CSV record layouts; bumped on incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

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

/// Which machine-readable format a `CopyUpRecord` is written in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Json,
    Csv,
}

/// One copy-up as `-o json` and `-o csv` write it: the JSON keys and the CSV columns are
/// these fields' names, in this order. A few fields exist in one layout only (`None` or
/// `false` leaves them out); each says why.
#[derive(Serialize)]
struct CopyUpRecord<'a> {
    /// JSON only: tells copy-up lines from `op` and `summary` lines. A CSV file holds
    /// copy-ups alone.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    record_type: Option<&'static str>,
    schema: u32,
    ts_ns: u64,
    pid: u32,
    tid: u32,
    ppid: u32,
    comm: Cow<'a, str>,
    cgroup_id: u64,
    trigger: &'static str,
    /// `kind` sits before `path` in CSV and after `path_truncated` in JSON: both orders
    /// were published, so each layout keeps its own.
    #[serde(rename = "kind", skip_serializing_if = "Option::is_none")]
    csv_kind: Option<&'static str>,
    path: Cow<'a, str>,
    path_truncated: bool,
    #[serde(rename = "kind", skip_serializing_if = "Option::is_none")]
    json_kind: Option<&'static str>,
    filename: Option<Cow<'a, str>>,
    bytes: u64,
    copy_ns: u64,
    data_ns: u64,
    ret: i32,
    waited: bool,
    metacopy: bool,
    /// JSON only, and only when true: the record was sent at the syscall's return. CSV
    /// columns cannot come and go per row, and this one was never added.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    return_missed: bool,
    size: u64,
    cause_ts_ns: u64,
    mount: Option<Cow<'a, str>>,
    cgroup: Option<Cow<'a, str>>,
    /// JSON: `{"runtime","id"}` or null. CSV cannot nest, so there it is the two
    /// columns below; the outer `Option` says whether the layout has the field at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<Option<&'a Container>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_runtime: Option<Option<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_id: Option<Option<Cow<'a, str>>>,
    /// `mount` + `path`, when the mount point is known.
    host_path: Option<HostPath<'a>>,
    /// JSON: `{"index","dir","store","id"}` or null; CSV: the columns below.
    #[serde(skip_serializing_if = "Option::is_none")]
    layer: Option<Option<crate::attribution::layers::LayerRecord<'a>>>,
    /// JSON: the layer that held the data when it is another one (a metacopy file's),
    /// else null.
    #[serde(skip_serializing_if = "Option::is_none")]
    data_layer: Option<Option<crate::attribution::layers::LayerRecord<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_index: Option<Option<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_dir: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_id: Option<Option<String>>,
    /// Made by another overlay's copy-up, at this depth (0 when not nested).
    nested: bool,
    nest_depth: u32,
    /// A chown or chmod to the owner and mode the file already had.
    noop: bool,
    /// CSV: the image step that created the lower layer (in JSON, `layer.created_by`).
    /// New columns go last, so that the columns before them keep their places.
    #[serde(skip_serializing_if = "Option::is_none")]
    layer_created_by: Option<Option<String>>,
}

impl<'a> CopyUpRecord<'a> {
    fn new(c: &'a CopyUp, layout: Layout) -> Self {
        let is_json = layout == Layout::Json;
        let is_csv = layout == Layout::Csv;
        CopyUpRecord {
            record_type: is_json.then_some("copy_up"),
            schema: SCHEMA_VERSION,
            ts_ns: c.start_ns,
            pid: c.pid,
            tid: c.tid,
            ppid: c.ppid,
            comm: escape_cow(&c.comm),
            cgroup_id: c.cgroup_id,
            trigger: c.trigger.name(),
            csv_kind: is_csv.then(|| c.kind.name()),
            path: escape_cow(&c.path),
            path_truncated: c.path_truncated,
            json_kind: is_json.then(|| c.kind.name()),
            filename: c.filename.as_deref().map(escape_cow),
            bytes: c.bytes,
            copy_ns: c.copy_ns,
            data_ns: c.data_ns,
            ret: c.ret,
            waited: c.waited,
            metacopy: c.metacopy,
            return_missed: is_json && c.return_missed,
            size: c.size,
            cause_ts_ns: c.cause_start_ns,
            mount: c.mount.as_deref().map(escape_cow),
            cgroup: c.cgroup.as_deref().map(|p| escape_cow(p.as_bytes())),
            container: is_json.then_some(c.container.as_deref()),
            container_runtime: is_csv.then(|| c.container.as_ref().map(|k| k.runtime)),
            container_id: is_csv.then(|| c.container.as_ref().map(|k| escape_cow(k.id.as_bytes()))),
            host_path: c.mount.as_ref().map(|_| HostPath(c)),
            layer: is_json.then(|| c.lower_layer().map(|l| l.record())),
            data_layer: is_json.then(|| {
                c.data_layer
                    .and_then(|_| c.data_source_layer())
                    .map(|l| l.record())
            }),
            layer_index: is_csv.then_some(c.layer),
            layer_dir: is_csv.then(|| c.lower_layer().map(|l| escape(&l.resolved))),
            layer_id: is_csv.then(|| {
                c.lower_layer()
                    .and_then(|l| l.runtime.as_ref())
                    .map(|r| format!("{}:{}", r.store, escape(r.id.as_bytes())))
            }),
            nested: c.nest > 0,
            nest_depth: c.nest,
            noop: c.noop,
            layer_created_by: is_csv.then(|| {
                c.lower_layer()
                    .and_then(|l| l.created_by.get())
                    .map(|s| escape(s.as_bytes()))
            }),
        }
    }
}

/// A copy-up's `mount` + `path`, escaped, joined in a reused buffer as it is written.
struct HostPath<'a>(&'a CopyUp);

thread_local! {
    static HOST_PATH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Serialize for HostPath<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        HOST_PATH.with_borrow_mut(|joined| {
            self.0.display_path_into(joined);
            s.serialize_str(&escape_cow(joined))
        })
    }
}

thread_local! {
    /// The line being written: reused, so a record costs no allocation of its own.
    static JSON_LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One JSON line per streamed record. sonic-rs escapes strings with SIMD where
/// serde_json goes byte by byte: most of a record's bytes are paths and names, and this
/// is the cost `-o json` adds per copy-up (`BENCHMARKS.md`).
fn json_line(out: &mut impl Write, value: &impl Serialize) -> Result<()> {
    JSON_LINE.with_borrow_mut(|line| -> Result<()> {
        line.clear();
        sonic_rs::to_writer(&mut *line, value)?;
        line.push(b'\n');
        out.write_all(line)?;
        Ok(())
    })
}

pub fn json_event(out: &mut impl Write, c: &CopyUp) -> Result<()> {
    json_line(out, &CopyUpRecord::new(c, Layout::Json))
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
    json_line(out, &rec)
}

#[derive(Serialize)]
struct JsonSummary<'a> {
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
    /// Copy-ups by a chown or chmod to the owner and mode the file already had.
    noop_copy_ups: u64,
    noop_bytes: u64,
    lost: u64,
    #[serde(flatten)]
    losses: &'a Losses,
    duration_ns: u64,
    /// Wall time of `-- COMMAND`, from spawn to exit.
    command_ns: Option<u64>,
    /// Entries left in the kernel's per-thread maps at the end (0 when idle).
    state_entries: Option<usize>,
    /// How each probed kernel function was attached: "fentry" or "kprobe".
    probes: &'a BTreeMap<&'static str, Attach>,
}

pub fn json_summary(
    out: &mut impl Write,
    agg: &Aggregate,
    losses: &Losses,
    elapsed: Duration,
    command: Option<Duration>,
    state_entries: Option<usize>,
    probes: &BTreeMap<&'static str, Attach>,
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
        noop_copy_ups: t.noop_copy_ups,
        noop_bytes: t.noop_bytes,
        lost: losses.total(),
        losses,
        duration_ns: elapsed.as_nanos() as u64,
        command_ns: command.map(|d| d.as_nanos() as u64),
        state_entries,
        probes,
    };
    serde_json::to_writer(&mut *out, &s)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The published CSV column order, pinned for the tests; the writer derives its header
/// from `CopyUpRecord` instead.
#[cfg(test)]
const CSV_HEADER: &[&str] = &[
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
    "mount",
    "cgroup",
    "container_runtime",
    "container_id",
    "host_path",
    "layer_index",
    "layer_dir",
    "layer_id",
    "nested",
    "nest_depth",
    "noop",
    "layer_created_by",
];

/// A CSV writer whose header is already written: a run without copy-ups still prints
/// it. The header is the one `csv::Writer::serialize` derives from `CopyUpRecord`.
pub fn csv_writer<W: Write>(out: W) -> Result<csv::Writer<W>> {
    let mut scratch = csv::Writer::from_writer(Vec::new());
    scratch.serialize(CopyUpRecord::new(&CopyUp::default(), Layout::Csv))?;
    scratch.flush()?;
    let header = csv::Reader::from_reader(scratch.get_ref().as_slice())
        .byte_headers()?
        .clone();
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    w.write_byte_record(&header)?;
    Ok(w)
}

pub fn csv_event<W: Write>(w: &mut csv::Writer<W>, c: &CopyUp) -> Result<()> {
    w.serialize(CopyUpRecord::new(c, Layout::Csv))?;
    Ok(())
}

fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

/// A table in the house style that fits the terminal: its width where stdout is one,
/// else `COLUMNS` where that is set; long cells wrap. Into a file or a pipe without
/// `COLUMNS`, rows stay whole.
pub fn new_table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    if let Some(w) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        if !std::io::stdout().is_terminal() {
            t.set_width(w);
        }
    }
    t
}

/// What the human tables show.
#[derive(Debug, Clone)]
pub struct TableOpts {
    pub by: Vec<By>,
    pub sort: SortKey,
    pub top: usize,
    pub hist: bool,
}

impl TableOpts {
    fn wants(&self, b: By) -> bool {
        if self.by.is_empty() {
            matches!(b, By::File | By::Process)
        } else {
            self.by.contains(&b)
        }
    }
}

fn sort_name(s: SortKey) -> &'static str {
    match s {
        SortKey::Time => "longest first",
        SortKey::Bytes => "most bytes first",
        SortKey::Count => "most copy-ups first",
    }
}

/// COPY-UPS, BYTES, TIME, P50, P99, MAX, WAITS cells of a row.
fn row_cells(r: &Row) -> Vec<Cell> {
    let p = r.percentiles();
    vec![
        right(r.stats.copy_ups.to_string()),
        right(human_bytes(r.stats.bytes)),
        right(human_ns(r.stats.copy_ns)),
        right(human_ns(p.p50_ns)),
        right(human_ns(p.p99_ns)),
        right(human_ns(p.max_ns)),
        right(r.stats.waits.to_string()),
    ]
}

const ROW_HEADER: [&str; 7] = ["COPY-UPS", "BYTES", "TIME", "P50", "P99", "MAX", "WAITS"];

fn with_row_header(first: &[&'static str]) -> Vec<&'static str> {
    let mut h = first.to_vec();
    h.extend(ROW_HEADER);
    h
}

/// One-line summary, then the tables chosen by `opts`.
pub fn tables(
    out: &mut impl Write,
    agg: &Aggregate,
    losses: &Losses,
    opts: &TableOpts,
) -> Result<()> {
    let t = agg.total;
    writeln!(
        out,
        "{} copy-ups, {} copied, {} in copy-up ({} copying data){}{}{}{}",
        t.copy_ups,
        human_bytes(t.bytes),
        human_ns(t.copy_ns),
        human_ns(t.data_ns),
        if t.metacopies > 0 {
            format!(", {} metadata-only", t.metacopies)
        } else {
            String::new()
        },
        if t.noop_copy_ups > 0 {
            format!(
                ", {} for nothing ({}: owner or mode set to what the file had)",
                t.noop_copy_ups,
                human_bytes(t.noop_bytes)
            )
        } else {
            String::new()
        },
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
    write!(out, "lost events: {}", losses.total())?;
    if losses.skipped_runs > 0 {
        // A skipped fentry of the copy-up loses it; a skipped fexit only delays it.
        write!(
            out,
            ", {} probe runs skipped (program already running on that CPU)",
            losses.skipped_runs
        )?;
    }
    writeln!(out)?;
    if agg.is_empty() {
        return Ok(());
    }
    let order = sort_name(opts.sort);

    if opts.wants(By::File) {
        let mut table = new_table(&[
            "PATH",
            "KIND",
            "TRIGGER",
            "COPY-UPS",
            "BYTES",
            "TIME",
            "DATA TIME",
        ]);
        let rows = agg.files(opts.sort);
        for f in rows.iter().take(opts.top) {
            table.add_row(vec![
                Cell::new(escape(&f.path)),
                Cell::new(if f.stats.metacopies > 0 && f.stats.bytes == 0 {
                    "file (meta)"
                } else {
                    f.kind.name()
                }),
                Cell::new(f.trigger.name()),
                right(f.stats.copy_ups.to_string()),
                right(human_bytes(f.stats.bytes)),
                right(human_ns(f.stats.copy_ns)),
                right(human_ns(f.stats.data_ns)),
            ]);
        }
        writeln!(out, "\nCopy-ups by file ({order}):\n{table}")?;
        if rows.len() > opts.top {
            writeln!(out, "... {} more files", rows.len() - opts.top)?;
        }
        folded_line(out, "file", agg.files_folded())?;
    }

    if opts.wants(By::Process) {
        // Copy-ups of a chown or chmod to what the file already had, where any were.
        let noops = agg.total.noop_copy_ups > 0;
        let mut header = with_row_header(&["PID", "COMM"]);
        if noops {
            header.push("NO-OP");
        }
        let mut table = new_table(&header);
        for p in agg.processes(opts.sort).iter().take(opts.top) {
            let mut cells = vec![right(p.pid.to_string()), Cell::new(escape(&p.comm))];
            cells.extend(row_cells(&p.row));
            if noops {
                cells.push(right(p.row.stats.noop_copy_ups.to_string()));
            }
            table.add_row(cells);
        }
        writeln!(out, "\nCopy-ups by process ({order}):\n{table}")?;
        folded_line(out, "process", agg.processes_folded())?;
    }

    if opts.wants(By::Container) {
        let mut table = new_table(&with_row_header(&["CONTAINER", "RUNTIME", "IMAGE", "POD"]));
        for c in agg.containers(opts.sort).iter().take(opts.top) {
            let ct = c.container.as_deref();
            // Names from a runtime are escaped already (`Container::with_details`).
            let image = ct.and_then(|k| k.image.as_deref()).unwrap_or("");
            let pod = match ct.map(|k| (&k.namespace, &k.pod)) {
                Some((Some(ns), Some(pod))) => format!("{ns}/{pod}"),
                Some((None, Some(pod))) => pod.clone(),
                _ => String::new(),
            };
            let mut cells = vec![
                Cell::new(escape(c.name.as_bytes())),
                Cell::new(c.runtime),
                Cell::new(image),
                Cell::new(pod),
            ];
            cells.extend(row_cells(&c.row));
            table.add_row(cells);
        }
        writeln!(out, "\nCopy-ups by container ({order}):\n{table}")?;
        folded_line(out, "container", agg.containers_folded())?;
    }

    if opts.wants(By::Image) {
        let mut table = new_table(&with_row_header(&["IMAGE", "IMAGE ID", "CONTAINERS"]));
        for r in agg.images(opts.sort).iter().take(opts.top) {
            let image = if r.image.is_empty() {
                "(no container image)"
            } else {
                &r.image
            };
            let id = r.image_id.as_deref().unwrap_or("");
            let mut cells = vec![
                Cell::new(image),
                Cell::new(&id[..id.len().min(12)]),
                right(r.containers.to_string()),
            ];
            cells.extend(row_cells(&r.row));
            table.add_row(cells);
        }
        writeln!(out, "\nCopy-ups by image ({order}):\n{table}")?;
    }

    if opts.wants(By::Trigger) {
        let mut header = with_row_header(&["TRIGGER"]);
        header.extend(["CALLS", "CALL TIME", "CALL MAX"]);
        let mut table = new_table(&header);
        for (trig, r) in agg.triggers() {
            let mut cells = vec![Cell::new(trig.name())];
            cells.extend(row_cells(&r.row));
            cells.extend([
                right(r.calls.calls.to_string()),
                right(human_ns(r.calls.total_ns)),
                right(human_ns(r.calls.max_ns)),
            ]);
            table.add_row(cells);
        }
        writeln!(
            out,
            "\nCopy-ups by trigger (CALL = the syscall or operation that copied up):\n{table}"
        )?;
    }

    if opts.wants(By::Layer) {
        layers::write_table(out, &agg.layers, opts.top)?;
    }

    if opts.hist {
        for (trig, r) in agg.triggers() {
            if r.hist_us.count() > 0 {
                writeln!(
                    out,
                    "\nCopy-up latency, trigger = {}:\n{}",
                    trig.name(),
                    r.hist_us.render("usecs")
                )?;
            }
        }
    }
    advice::write_text(out, &agg.mounts)?;
    Ok(())
}

/// The `--events` header and one line per copy-up, in the style of fsslower.
pub const EVENT_HEADER: &str =
    "TIME     COMM             PID     TRIGGER      KIND     BYTES       LAT(ms) PATH";

pub fn event_line(out: &mut impl Write, c: &CopyUp, now: std::time::SystemTime) -> Result<()> {
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    let kind = if c.waited {
        "wait"
    } else if c.metacopy {
        "meta"
    } else {
        c.kind.name()
    };
    write!(
        out,
        "{:<8} {:<16} {:<7} {:<12} {:<8} {:>11} {:>7.2} {}",
        stamp.get(11..19).unwrap_or(&stamp),
        escape(&c.comm),
        c.pid,
        c.trigger.name(),
        kind,
        human_bytes(c.bytes),
        c.copy_ns as f64 / 1e6,
        escape(&c.display_path()),
    )?;
    if c.nest > 0 {
        // Made by another overlay's copy-up: after the path, which may contain spaces.
        write!(out, " (nested, depth {})", c.nest)?;
    }
    writeln!(out)?;
    Ok(())
}

/// The line under a table whose lighter rows were folded to bound memory.
fn folded_line(out: &mut impl Write, what: &str, f: &Folded) -> Result<()> {
    if f.rows == 0 {
        return Ok(());
    }
    let s = &f.row.stats;
    writeln!(
        out,
        "... and {} {what} rows folded to bound memory: {} copy-ups, {}, {} in all",
        f.rows,
        s.copy_ups,
        human_bytes(s.bytes),
        human_ns(s.copy_ns)
    )?;
    Ok(())
}

fn row_json(r: &Row) -> serde_json::Value {
    serde_json::json!({
        "stats": r.stats,
        "latency": r.percentiles(),
    })
}

/// `--report FILE.json`: the final summary with the top rows of every breakdown, for
/// performance reports. Names are escaped as everywhere else.
pub fn report(
    agg: &Aggregate,
    losses: &Losses,
    elapsed: Duration,
    command: Option<Duration>,
    opts: &TableOpts,
) -> serde_json::Value {
    use serde_json::json;
    let top = opts.top;
    let mut v = json!({
        "type": "report",
        "schema": SCHEMA_VERSION,
        "duration_ns": elapsed.as_nanos() as u64,
        "command_ns": command.map(|d| d.as_nanos() as u64),
        "lost": losses.total(),
        "total": row_json(&agg.total_row()),
        "files": agg.files(opts.sort).iter().take(top).map(|f| json!({
            "path": escape(&f.path),
            "kind": f.kind.name(),
            "trigger": f.trigger.name(),
            "stats": f.stats,
        })).collect::<Vec<_>>(),
        "processes": agg.processes(opts.sort).iter().take(top).map(|p| json!({
            "pid": p.pid,
            "comm": escape(&p.comm),
            "row": row_json(&p.row),
        })).collect::<Vec<_>>(),
        "files_folded": json!({"rows": agg.files_folded().rows, "stats": agg.files_folded().row.stats}),
        "processes_folded": json!({"rows": agg.processes_folded().rows, "row": row_json(&agg.processes_folded().row)}),
        "containers_folded": json!({"rows": agg.containers_folded().rows, "row": row_json(&agg.containers_folded().row)}),
        "containers": agg.containers(opts.sort).iter().take(top).map(|c| json!({
            "name": escape(c.name.as_bytes()),
            "runtime": c.runtime,
            "container": c.container.as_deref(),
            "row": row_json(&c.row),
        })).collect::<Vec<_>>(),
        "layers": layers::report_rows(&agg.layers, top),
        "advice": agg.mounts.rows().iter().map(|m| m.advice()).collect::<Vec<_>>(),
        "images": agg.images(opts.sort).iter().take(top).map(|r| json!({
            "image": r.image,
            "image_id": r.image_id,
            "containers": r.containers,
            "row": row_json(&r.row),
        })).collect::<Vec<_>>(),
        "triggers": agg.triggers().iter().map(|(t, r)| json!({
            "trigger": t.name(),
            "row": row_json(&r.row),
            "calls": r.calls,
            "hist_us_log2": r.hist_us.buckets(),
        })).collect::<Vec<_>>(),
    });
    if let (Some(report), Ok(serde_json::Value::Object(l))) =
        (v.as_object_mut(), serde_json::to_value(losses))
    {
        report.extend(l);
    }
    v
}

/// The line that opens each `--interval` table.
pub fn interval_header(
    out: &mut impl Write,
    now: std::time::SystemTime,
    every: Duration,
) -> Result<()> {
    writeln!(
        out,
        "=== {} (last {}) ===",
        humantime::format_rfc3339_seconds(now),
        humantime::format_duration(every)
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::decode::{Kind, Trigger};

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
            return_missed: false,
            metacopy: false,
            noop: false,
            nest: 0,
            size: 8 << 20,
            dev: 0,
            cause_start_ns: 4,
            mount: Some(std::sync::Arc::from(&b"/merged"[..])),
            cgroup: Some("/system.slice/docker-abc.scope".into()),
            container: Some(std::sync::Arc::new(Container {
                runtime: "docker",
                id: "abc".into(),
                ..Default::default()
            })),
            overlay: None,
            layer: None,
            data_layer: None,
            kstack_id: -1,
            ustack_id: -1,
        }
    }

    /// A nested copy-up says so, with its depth, in JSON and on its event line.
    #[test]
    fn nested_copy_ups_are_marked() {
        let mut c = evil();
        let mut buf = Vec::new();
        json_event(&mut buf, &c).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!((&v["nested"], &v["nest_depth"]), (&false.into(), &0.into()));
        c.nest = 1;
        let mut buf = Vec::new();
        json_event(&mut buf, &c).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!((&v["nested"], &v["nest_depth"]), (&true.into(), &1.into()));
        let mut line = Vec::new();
        event_line(&mut line, &c, std::time::SystemTime::UNIX_EPOCH).unwrap();
        let line = String::from_utf8(line).unwrap();
        assert!(line.ends_with(" (nested, depth 1)\n"), "{line:?}");
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
        assert_eq!(v["mount"], "/merged");
        assert_eq!(v["container"]["runtime"], "docker");
        assert_eq!(v["container"]["id"], "abc");
        assert_eq!(v["cgroup"], "/system.slice/docker-abc.scope");
        assert!(v.get("return_missed").is_none(), "only present when true");
        let mut late = evil();
        late.return_missed = true;
        let mut buf = Vec::new();
        json_event(&mut buf, &late).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["return_missed"], true);
    }

    #[test]
    fn summary_counts_losses() {
        let mut agg = Aggregate::default();
        agg.add(&evil());
        let mut buf = Vec::new();
        let losses = Losses {
            lost_events: 3,
            lost_state: 1,
            missed_returns: 2,
            skipped_runs: 6,
            skipped_by: BTreeMap::from([("fe_copy_up_one".into(), 4), ("chown_exit".into(), 2)]),
        };
        json_summary(
            &mut buf,
            &agg,
            &losses,
            Duration::from_millis(2),
            None,
            Some(0),
            &BTreeMap::from([
                ("ovl_copy_up_one", Attach::Fentry),
                ("do_fchownat", Attach::Kprobe),
            ]),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["type"], "summary");
        assert_eq!(v["probes"]["ovl_copy_up_one"], "fentry");
        assert_eq!(v["probes"]["do_fchownat"], "kprobe");
        assert_eq!(v["copy_ups"], 1);
        assert_eq!(v["bytes"], 8388608);
        assert_eq!(v["lost"], 4, "copy-ups sent late are not lost");
        assert_eq!(v["missed_returns"], 2);
        assert_eq!(v["skipped_runs"], 6, "counted apart from lost");
        assert_eq!(
            v["skipped_by"],
            serde_json::json!({"chown_exit": 2, "fe_copy_up_one": 4})
        );
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

    /// A copy-up with none of the optional fields, sent late by a skipped return.
    fn bare_late() -> CopyUp {
        CopyUp {
            filename: None,
            mount: None,
            cgroup: None,
            container: None,
            waited: true,
            return_missed: true,
            ret: -5,
            nest: 2,
            noop: true,
            ..evil()
        }
    }

    /// The exact bytes of the CSV header and rows: the column order and every value's
    /// spelling are published and must not drift.
    #[test]
    fn csv_bytes_are_pinned() {
        let w = csv_writer(Vec::new()).unwrap();
        let header = "schema,ts_ns,pid,tid,ppid,comm,cgroup_id,trigger,kind,path,\
                      path_truncated,filename,bytes,copy_ns,data_ns,ret,waited,metacopy,size,\
                      cause_ts_ns,mount,cgroup,container_runtime,container_id,host_path,\
                      layer_index,layer_dir,layer_id,nested,nest_depth,noop,layer_created_by\n";
        // The header comes first, even when no copy-up follows.
        assert_eq!(String::from_utf8(w.into_inner().unwrap()).unwrap(), header);
        let mut w = csv_writer(Vec::new()).unwrap();
        csv_event(&mut w, &evil()).unwrap();
        csv_event(&mut w, &bare_late()).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        let rows = [
            r"1,5,100,101,1,ch\x1b]0;own,7,chown,file,/dir/evil\n\x1b[2Jname\xff,false,",
            r"/merged/dir/evil\n,8388608,2500000,2000000,0,false,false,8388608,4,/merged,",
            r"/system.slice/docker-abc.scope,docker,abc,/merged/dir/evil\n\x1b[2Jname\xff,,,,",
            "false,0,false,\n",
            r"1,5,100,101,1,ch\x1b]0;own,7,chown,file,/dir/evil\n\x1b[2Jname\xff,false,,",
            "8388608,2500000,2000000,-5,true,false,8388608,4,,,,,,,,,true,2,true,\n",
        ];
        assert_eq!(text, format!("{header}{}", rows.concat()));
    }

    /// The exact bytes of JSON copy-up lines: key order included.
    #[test]
    fn json_bytes_are_pinned() {
        let mut buf = Vec::new();
        json_event(&mut buf, &evil()).unwrap();
        json_event(&mut buf, &bare_late()).unwrap();
        let lines = [
            r#"{"type":"copy_up","schema":1,"ts_ns":5,"pid":100,"tid":101,"ppid":1,"#,
            r#""comm":"ch\\x1b]0;own","cgroup_id":7,"trigger":"chown","#,
            r#""path":"/dir/evil\\n\\x1b[2Jname\\xff","path_truncated":false,"kind":"file","#,
            r#""filename":"/merged/dir/evil\\n","bytes":8388608,"copy_ns":2500000,"#,
            r#""data_ns":2000000,"ret":0,"waited":false,"metacopy":false,"size":8388608,"#,
            r#""cause_ts_ns":4,"mount":"/merged","cgroup":"/system.slice/docker-abc.scope","#,
            r#""container":{"runtime":"docker","id":"abc"},"#,
            r#""host_path":"/merged/dir/evil\\n\\x1b[2Jname\\xff","layer":null,"data_layer":null,"nested":false,"#,
            r#""nest_depth":0,"noop":false}"#,
            "\n",
            r#"{"type":"copy_up","schema":1,"ts_ns":5,"pid":100,"tid":101,"ppid":1,"#,
            r#""comm":"ch\\x1b]0;own","cgroup_id":7,"trigger":"chown","#,
            r#""path":"/dir/evil\\n\\x1b[2Jname\\xff","path_truncated":false,"kind":"file","#,
            r#""filename":null,"bytes":8388608,"copy_ns":2500000,"data_ns":2000000,"#,
            r#""ret":-5,"waited":true,"metacopy":false,"return_missed":true,"size":8388608,"#,
            r#""cause_ts_ns":4,"mount":null,"cgroup":null,"container":null,"host_path":null,"#,
            r#""layer":null,"data_layer":null,"nested":true,"nest_depth":2,"noop":true}"#,
            "\n",
        ];
        assert_eq!(String::from_utf8(buf).unwrap(), lines.concat());
    }

    /// A copy-up from a docker layer: the JSON `layer` object and the CSV columns.
    #[test]
    fn layer_fields() {
        use crate::attribution::layers::{Layer, LayerSize, LayerStep, OverlayInfo, RuntimeLayer};
        let dir = b"/var/lib/docker/overlay2/abc/diff".to_vec();
        let info = OverlayInfo {
            mount_point: std::sync::Arc::from(&b"/merged"[..]),
            options: Default::default(),
            lowers: vec![
                std::sync::Arc::new(Layer {
                    index: 0,
                    dir: b"/x".to_vec(),
                    resolved: b"/x".to_vec(),
                    runtime: None,
                    data_only: false,
                    size: LayerSize::default(),
                    created_by: LayerStep::default(),
                }),
                std::sync::Arc::new(Layer {
                    index: 1,
                    dir: b"/var/lib/docker/overlay2/l/S".to_vec(),
                    resolved: dir,
                    runtime: Some(RuntimeLayer {
                        store: "docker",
                        id: "abc".into(),
                    }),
                    data_only: false,
                    size: LayerSize::default(),
                    created_by: LayerStep::known("COPY app /app\n"),
                }),
            ],
        };
        let c = CopyUp {
            overlay: Some(std::sync::Arc::new(info)),
            layer: Some(1),
            path: b"/etc/passwd".to_vec(),
            ..evil()
        };
        let mut buf = Vec::new();
        json_event(&mut buf, &c).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["host_path"], "/merged/etc/passwd");
        assert_eq!(
            v["layer"],
            serde_json::json!({"index": 1, "dir": "/var/lib/docker/overlay2/abc/diff",
                               "store": "docker", "id": "abc",
                               "created_by": "COPY app /app\\n"})
        );
        let mut w = csv_writer(Vec::new()).unwrap();
        csv_event(&mut w, &c).unwrap();
        let text = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert!(
            text.ends_with(
                ",/merged/etc/passwd,1,/var/lib/docker/overlay2/abc/diff,docker:abc,false,0,false,COPY app /app\\n\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn table_is_escaped_and_summarised() {
        let mut agg = Aggregate::default();
        agg.add(&evil());
        let mut buf = Vec::new();
        let opts = TableOpts {
            by: vec![By::File, By::Process, By::Container, By::Trigger],
            sort: SortKey::Time,
            top: 20,
            hist: true,
        };
        tables(&mut buf, &agg, &Losses::default(), &opts).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.starts_with("1 copy-ups, 8.0 MiB copied, 2ms 500us in copy-up"),
            "{text}"
        );
        assert!(text.contains("lost events: 0"));
        assert!(
            text.contains("/merged/dir/evil\\n\\x1b[2Jname\\xff"),
            "{text}"
        );
        for needle in [
            "Copy-ups by container",
            "docker",
            "Copy-ups by trigger",
            "trigger = chown",
            "usecs",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
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
