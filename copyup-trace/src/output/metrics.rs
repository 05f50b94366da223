//! `--metrics ADDR`: copy-up counts, bytes and latency histograms per label set, capped in
//! cardinality, served over HTTP as Prometheus text or OpenMetrics. It counts what the
//! session hands it (which copy-ups those are is the session's); the exposition format is
//! prometheus-client's and the HTTP server is axum's. It ends at the counters: tables and
//! files are other sinks'.

use std::{
    borrow::Cow,
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use anyhow::{Context, Result};
use axum::{
    extract::State,
    http::{header, HeaderMap},
    response::IntoResponse,
    routing::get,
    Router,
};
use prometheus_client::{
    collector::Collector,
    encoding::{self, DescriptorEncoder, EncodeMetric, LabelSetEncoder, MetricEncoder, NoLabelSet},
    metrics::{counter::ConstCounter, MetricType},
    registry::{Registry, Unit},
};

use crate::{
    attribution::cgroups::CGROUP2_ROOT,
    escape::escape,
    events::decode::{CopyUp, OpDone},
    hashing::{IdSet, NameHasher, NameMap},
    kernel::probes::Losses,
    output::{
        labels::{Label, Labels, MetricsOpts, MAX_LABEL_LEN, OTHER},
        sink::{Sink, Status},
    },
};

/// Log2 histogram bounds: bucket `i` counts values in (2^(k-1), 2^k] ns, k = FIRST_POW + i,
/// so its `le` (2^k ns) is a true upper bound. Below 2^FIRST_POW ns (1.024 us) all values
/// share the first bucket; past 2^LAST_POW ns (68.7 s) only `+Inf` counts them.
const FIRST_POW: u32 = 10;
const LAST_POW: u32 = 36;
const BUCKETS: usize = (LAST_POW - FIRST_POW + 1) as usize;

/// The `le` of bucket `i`, in seconds.
pub fn upper_bound(i: usize) -> f64 {
    (1u64 << (FIRST_POW + i as u32)) as f64 / 1e9
}

/// The bucket of `ns`: the first whose `le` is at least `ns`; `BUCKETS` past the last.
pub fn bucket_of(ns: u64) -> usize {
    // Smallest k with 2^k >= ns.
    let k = if ns <= 1 {
        0
    } else {
        u64::BITS - (ns - 1).leading_zeros()
    };
    (k.max(FIRST_POW) - FIRST_POW).min(BUCKETS as u32) as usize
}

#[derive(Debug, Clone, Default)]
struct Hist {
    /// Per bucket, not cumulative; the last slot is past the last bound (`+Inf` only).
    counts: [u64; BUCKETS + 1],
    count: u64,
    sum_ns: u128,
}

impl Hist {
    fn add(&mut self, ns: u64) {
        self.counts[bucket_of(ns)] += 1;
        self.count += 1;
        self.sum_ns += ns as u128;
    }

    fn encode(&self, mut enc: MetricEncoder) -> std::fmt::Result {
        let buckets: Vec<(f64, u64)> = (0..BUCKETS)
            .map(|i| (upper_bound(i), self.counts[i]))
            .collect();
        // The encoder adds `+Inf` with the total count.
        enc.encode_histogram::<NoLabelSet>(self.sum_ns as f64 / 1e9, self.count, &buckets, None)
    }
}

#[derive(Debug, Default)]
struct Series {
    values: Box<[Box<str>]>,
    /// The cgroups of the containers whose copy-ups it counts: when every one is gone,
    /// so is the series (and its place under `--metrics-max-series`), once
    /// `--metrics-expire-after` has passed since (`gone_since`).
    cgroups: Vec<Arc<str>>,
    gone_since: Option<std::time::Instant>,
    copy_ups: u64,
    bytes: u64,
    /// Of those, by a chown or chmod to what the file already had.
    noop_copy_ups: u64,
    noop_bytes: u64,
    duration: Hist,
}

/// A series' label names and values, for the encoder.
struct LabelSet<'a> {
    names: &'a [&'static str],
    values: &'a [Box<str>],
}

impl encoding::EncodeLabelSet for LabelSet<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        // An empty value is an absent label to Prometheus: left out (a container's pod
        // and namespace off Kubernetes, the container of a copy-up in none).
        let pairs: Vec<(&str, &str)> = self
            .names
            .iter()
            .zip(self.values.iter())
            .filter(|(_, v)| !v.is_empty())
            .map(|(n, v)| (*n, &**v))
            .collect();
        encoding::EncodeLabelSet::encode(&pairs.as_slice(), encoder)
    }
}

/// The label value shown for `raw`: escaped (it may come from the traced system) and at
/// most `MAX_LABEL_LEN` characters.
pub fn label_value(raw: &str) -> Cow<'_, str> {
    let plain =
        raw.len() <= MAX_LABEL_LEN && raw.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
    if plain {
        return Cow::Borrowed(raw);
    }
    let escaped = escape(raw.as_bytes());
    Cow::Owned(escaped.chars().take(MAX_LABEL_LEN).collect())
}

/// Everything the endpoint shows, updated by the session and read at each scrape.
#[derive(Debug)]
pub struct Counts {
    names: Vec<&'static str>,
    labels: Vec<&'static Label>,
    max_series: usize,
    /// Series by their label values joined with NUL (escaped values hold none).
    index: NameMap<Box<str>, usize>,
    series: Vec<Series>,
    /// The `_other_` series, once something was folded.
    other: Option<Series>,
    /// Hashes of the label sets folded into `_other_`: 8 bytes each, to count them once.
    folded: IdSet<u64>,
    /// Seeded, as label values are names from the traced system.
    folded_hasher: NameHasher,
    /// Operation latency by the labels an operation record has (`trigger`): at most one
    /// series per trigger.
    op_names: Vec<&'static str>,
    ops: BTreeMap<Box<[Box<str>]>, Hist>,
    losses: Losses,
    info: [(&'static str, String); 3],
    /// Reused to build each copy-up's key.
    key: String,
}

impl Counts {
    pub fn new(labels: &Labels, max_series: usize, kernel: String) -> Counts {
        let labels = labels.0.clone();
        Counts {
            names: labels.iter().map(|l| l.name).collect(),
            op_names: labels
                .iter()
                .filter(|l| l.op_value.is_some())
                .map(|l| l.name)
                .collect(),
            labels,
            max_series,
            index: NameMap::default(),
            series: Vec::new(),
            other: None,
            folded: IdSet::default(),
            folded_hasher: NameHasher::default(),
            ops: BTreeMap::new(),
            losses: Losses::default(),
            info: [
                ("version", env!("CARGO_PKG_VERSION").to_string()),
                ("kernel", kernel),
                ("probes", String::new()),
            ],
            key: String::new(),
        }
    }

    pub fn add(&mut self, c: &CopyUp) {
        self.key.clear();
        for (i, l) in self.labels.iter().enumerate() {
            if i > 0 {
                self.key.push('\0');
            }
            self.key.push_str(&label_value((l.value)(c).unwrap_or("")));
        }
        let series = match self.index.get(self.key.as_str()) {
            Some(&i) => &mut self.series[i],
            None if self.series.len() < self.max_series => {
                let values: Box<[Box<str>]> = if self.labels.is_empty() {
                    Box::new([])
                } else {
                    self.key.split('\0').map(Box::from).collect()
                };
                self.index
                    .insert(self.key.as_str().into(), self.series.len());
                self.series.push(Series {
                    values,
                    ..Series::default()
                });
                self.series.last_mut().expect("just pushed")
            }
            None => {
                self.folded
                    .insert(self.folded_hasher.hash_one(self.key.as_str()));
                let n = self.labels.len();
                self.other.get_or_insert_with(|| Series {
                    values: (0..n).map(|_| Box::from(OTHER)).collect(),
                    ..Series::default()
                })
            }
        };
        if let (Some(_), Some(cg)) = (&c.container, &c.cgroup) {
            if !series.cgroups.iter().any(|k| Arc::ptr_eq(k, cg) || k == cg) {
                series.cgroups.push(cg.clone());
            }
        }
        series.copy_ups += 1;
        series.bytes += c.bytes;
        if c.noop {
            series.noop_copy_ups += 1;
            series.noop_bytes += c.bytes;
        }
        series.duration.add(c.copy_ns);
    }

    pub fn add_op(&mut self, d: &OpDone) {
        let values: Box<[Box<str>]> = self
            .labels
            .iter()
            .filter_map(|l| l.op_value.map(|v| Box::from(v(d))))
            .collect();
        self.ops.entry(values).or_default().add(d.duration_ns);
    }

    pub fn status(&mut self, s: &Status) {
        self.losses.clone_from(&s.losses);
        let mut mechanisms: Vec<&str> = s
            .probes
            .mechanisms()
            .into_values()
            .map(|m| m.name())
            .collect();
        mechanisms.sort_unstable();
        mechanisms.dedup();
        self.info[2].1 = mechanisms.join("+");
    }

    /// Drops the series whose containers have all been gone (`gone` says of a cgroup
    /// path) for `after` at `now`; their places go to new label sets. The `_other_`
    /// series stays. A series whose container comes back (a new one with the same
    /// labels) is kept.
    pub fn expire(
        &mut self,
        gone: impl Fn(&str) -> bool,
        now: std::time::Instant,
        after: std::time::Duration,
    ) -> usize {
        let before = self.series.len();
        self.series.retain_mut(|s| {
            if s.cgroups.is_empty() || !s.cgroups.iter().all(|c| gone(c)) {
                s.gone_since = None;
                return true;
            }
            let since = *s.gone_since.get_or_insert(now);
            now.duration_since(since) < after
        });
        if self.series.len() != before {
            self.index = self
                .series
                .iter()
                .enumerate()
                .map(|(i, s)| (s.values.join("\0").into(), i))
                .collect();
        }
        before - self.series.len()
    }

    /// Label sets kept apart, and those folded into `_other_`.
    pub fn series(&self) -> (usize, usize) {
        (self.series.len(), self.folded.len())
    }

    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let all = || self.series.iter().chain(self.other.iter());
        fn set<'a>(names: &'a [&'static str], s: &'a Series) -> LabelSet<'a> {
            LabelSet {
                names,
                values: &s.values,
            }
        }
        // The counter families of the copy-up series: name, help, unit, value.
        type Value = fn(&Series) -> u64;
        let counters: [(&str, &str, Option<Unit>, Value); 4] = [
            (
                "copyup_trace_copy_ups",
                "Copy-ups of overlay objects (files, directories, symlinks) to the upper layer",
                None,
                |s| s.copy_ups,
            ),
            (
                "copyup_trace_copied",
                "File data copied to the upper layer by copy-ups",
                Some(Unit::Bytes),
                |s| s.bytes,
            ),
            (
                "copyup_trace_noop_copy_ups",
                "Of the copy-ups, those by a chown or chmod to the owner and mode the file already had",
                None,
                |s| s.noop_copy_ups,
            ),
            (
                "copyup_trace_noop_copied",
                "File data those copy-ups copied for nothing",
                Some(Unit::Bytes),
                |s| s.noop_bytes,
            ),
        ];
        for (name, help, unit, value) in counters {
            let mut m = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
            for s in all() {
                ConstCounter::new(value(s)).encode(m.encode_family(&set(&self.names, s))?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "copyup_trace_copy_up_duration",
            "Time each copy-up took (ovl_copy_up_one), log2 buckets",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for s in all() {
            s.duration.encode(m.encode_family(&set(&self.names, s))?)?;
        }
        let mut m = enc.encode_descriptor(
            "copyup_trace_operation_duration",
            "Latency of each call (syscall or overlayfs operation) that caused copy-ups, log2 buckets",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (values, h) in &self.ops {
            h.encode(m.encode_family(&LabelSet {
                names: &self.op_names,
                values,
            })?)?;
        }
        let mut m = enc.encode_descriptor(
            "copyup_trace_lost_events",
            "Copy-ups the kernel side could not report: ring buffer full, or no room for in-flight state",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in [
            ("ring_full", self.losses.lost_events),
            ("no_state", self.losses.lost_state),
        ] {
            ConstCounter::new(n).encode(m.encode_family(&[("reason", reason)])?)?;
        }
        // Counters of the run as a whole, without labels.
        for (name, help, value) in [
            (
                "copyup_trace_missed_returns",
                "Copy-ups whose return probe the kernel skipped (all kretprobe instances in use)",
                self.losses.missed_returns,
            ),
            (
                "copyup_trace_skipped_runs",
                "Runs of our BPF programs the kernel skipped because another run was in progress on that CPU",
                self.losses.skipped_runs,
            ),
            (
                "copyup_trace_folded_series",
                "Label sets past --metrics-max-series, counted once each, whose copy-ups went to the _other_ series",
                self.folded.len() as u64,
            ),
        ] {
            let m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(m)?;
        }
        let mut m = enc.encode_descriptor(
            "copyup_trace",
            "The tool's version, the kernel release and the probe mechanisms in use",
            None,
            MetricType::Info,
        )?;
        let info: Vec<(&str, &str)> = self.info.iter().map(|(k, v)| (*k, v.as_str())).collect();
        m.encode_info(&info)
    }
}

/// The registry's view of the shared counts.
#[derive(Debug)]
struct Exposed(Arc<Mutex<Counts>>);

fn lock(counts: &Mutex<Counts>) -> MutexGuard<'_, Counts> {
    // Counting cannot leave the counts half-updated in a way worth refusing to show.
    counts.lock().unwrap_or_else(|p| p.into_inner())
}

impl Collector for Exposed {
    fn encode(&self, encoder: DescriptorEncoder) -> std::fmt::Result {
        lock(&self.0).encode(encoder)
    }
}

pub fn registry(counts: Arc<Mutex<Counts>>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(Box::new(Exposed(counts)));
    r
}

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (Prometheus sends it first, with text
/// 0.0.4 as a fallback); anything else gets the Prometheus text format.
pub fn wants_openmetrics(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        parts.next() == Some("application/openmetrics-text")
            && !parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_some_and(|q| q <= 0.0)
            })
    })
}

/// The body and content type of one scrape.
pub fn exposition(registry: &Registry, openmetrics: bool) -> (String, &'static str) {
    let mut body = String::new();
    // Writing to a String cannot fail.
    if openmetrics {
        let _ = encoding::text::encode(&mut body, registry);
        (body, OPENMETRICS_CONTENT_TYPE)
    } else {
        let _ = encoding::prometheus_text::encode(&mut body, registry);
        (body, encoding::prometheus_text::CONTENT_TYPE)
    }
}

async fn scrape(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> impl IntoResponse {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(wants_openmetrics);
    let (body, content_type) = exposition(&registry, openmetrics);
    ([(header::CONTENT_TYPE, content_type)], body)
}

/// Binds `opts.addr` now (so that a busy port is an error before tracing starts) and
/// serves `/metrics` and `/healthz` on the session's runtime until the process ends.
pub fn serve(opts: &MetricsOpts, counts: Arc<Mutex<Counts>>) -> Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(opts.addr)
        .with_context(|| format!("--metrics {}: cannot listen", opts.addr))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = Router::new()
        .route("/metrics", get(scrape))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(Arc::new(registry(counts)));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            log::warn!("metrics endpoint stopped: {e}");
        }
    });
    Ok(bound)
}

/// The sink that counts for the endpoint.
pub struct MetricsSink {
    counts: Arc<Mutex<Counts>>,
    expire_after: std::time::Duration,
}

impl MetricsSink {
    /// Starts the endpoint; it shows what this sink counts.
    pub fn start(opts: &MetricsOpts) -> Result<MetricsSink> {
        let kernel = crate::kernel::facts::release().unwrap_or_else(|_| "unknown".into());
        let counts = Arc::new(Mutex::new(Counts::new(
            &opts.labels,
            opts.max_series,
            label_value(&kernel).into_owned(),
        )));
        let bound = serve(opts, counts.clone())?;
        eprintln!("Serving metrics on http://{bound}/metrics");
        Ok(MetricsSink {
            counts,
            expire_after: opts.expire_after,
        })
    }
}

impl Sink for MetricsSink {
    fn copy_up(&mut self, c: &CopyUp) -> Result<()> {
        lock(&self.counts).add(c);
        Ok(())
    }

    fn op(&mut self, d: &OpDone) -> Result<()> {
        lock(&self.counts).add_op(d);
        Ok(())
    }

    /// Also where series of containers that are gone (their cgroup removed) expire.
    fn status(&mut self, s: &Status) -> Result<()> {
        let mut counts = lock(&self.counts);
        counts.status(s);
        let root = std::path::Path::new(CGROUP2_ROOT);
        let gone = counts.expire(
            |cg| !root.join(cg.trim_start_matches('/')).exists(),
            std::time::Instant::now(),
            self.expire_after,
        );
        if gone > 0 {
            log::debug!("metrics: {gone} series of containers that are gone expired");
        }
        Ok(())
    }

    /// Lost events and missed returns live in a kernel map: a scrape sees them at most
    /// this old.
    fn status_every(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        attribution::cgroups::Container,
        events::decode::{Kind, Trigger},
        output::{
            labels::{parse_labels, DEFAULT_LABELS},
            sink::Probed,
        },
    };

    fn cu(trigger: Trigger, kind: Kind, container: Option<&str>, bytes: u64, ns: u64) -> CopyUp {
        CopyUp {
            trigger,
            kind,
            bytes,
            copy_ns: ns,
            container: container.map(|id| {
                Arc::new(Container {
                    runtime: "docker",
                    id: id.to_string(),
                    ..Default::default()
                })
            }),
            ..CopyUp::default()
        }
    }

    fn labels(s: &str) -> Labels {
        parse_labels(s).unwrap()
    }

    fn text(counts: Counts, openmetrics: bool) -> String {
        let r = registry(Arc::new(Mutex::new(counts)));
        exposition(&r, openmetrics).0
    }

    /// Copy-ups to the owner a file already had count in their own series, beside the
    /// copy-ups they are part of.
    #[test]
    fn noop_copy_ups_are_a_series() {
        let mut c = Counts::new(&labels("trigger"), 10, "k".into());
        c.add(&cu(Trigger::Chown, Kind::File, None, 100, 1));
        c.add(&CopyUp {
            noop: true,
            ..cu(Trigger::Chown, Kind::File, None, 40, 1)
        });
        let t = text(c, false);
        for line in [
            r#"copyup_trace_copy_ups_total{trigger="chown"} 2"#,
            r#"copyup_trace_copied_bytes_total{trigger="chown"} 140"#,
            r#"copyup_trace_noop_copy_ups_total{trigger="chown"} 1"#,
            r#"copyup_trace_noop_copied_bytes_total{trigger="chown"} 40"#,
        ] {
            assert!(t.lines().any(|l| l == line), "{line} not in\n{t}");
        }
    }

    #[test]
    fn buckets_are_true_upper_bounds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(1024), 0);
        assert_eq!(bucket_of(1025), 1);
        assert_eq!(bucket_of(2048), 1);
        assert_eq!(bucket_of(2049), 2);
        assert_eq!(bucket_of(1 << 36), BUCKETS - 1);
        assert_eq!(bucket_of((1 << 36) + 1), BUCKETS);
        assert_eq!(bucket_of(u64::MAX), BUCKETS);
        // Every value lies at or under its bucket's le and above the previous one's.
        for ns in (0..70u32)
            .flat_map(|k| {
                let p = 1u64.checked_shl(k).unwrap_or(u64::MAX);
                [p.saturating_sub(1), p, p.saturating_add(1)]
            })
            .chain([3, 999, 1_000_000, 1_500_000_000])
        {
            let b = bucket_of(ns);
            let secs = ns as f64 / 1e9;
            if b < BUCKETS {
                assert!(
                    secs <= upper_bound(b),
                    "{ns} ns above le {}",
                    upper_bound(b)
                );
            }
            if b > 0 {
                assert!(
                    secs > upper_bound(b - 1),
                    "{ns} ns at or under the previous le"
                );
            }
        }
        assert_eq!(upper_bound(0), 1.024e-6);
        assert_eq!(upper_bound(BUCKETS - 1), 68.719476736);
    }

    #[test]
    fn exposition_in_both_formats() {
        let mut c = Counts::new(&labels(DEFAULT_LABELS), 10, "6.12.0-test".into());
        c.add(&cu(Trigger::Chown, Kind::File, Some("abc"), 4096, 3000));
        c.add(&cu(Trigger::Chown, Kind::File, Some("abc"), 100, 1024));
        c.add(&cu(Trigger::Mkdir, Kind::Dir, None, 0, 5_000_000));
        c.add_op(&OpDone {
            trigger: Trigger::Chown,
            start_ns: 0,
            duration_ns: 10_000,
            pid: 1,
            tid: 1,
            copy_ups: 2,
            ret: 0,
        });
        let t = text(c, false);
        for line in [
            "# TYPE copyup_trace_copy_ups_total counter",
            r#"copyup_trace_copy_ups_total{trigger="chown",kind="file",container="abc"} 2"#,
            r#"copyup_trace_copied_bytes_total{trigger="chown",kind="file",container="abc"} 4196"#,
            r#"copyup_trace_copied_bytes_total{trigger="mkdir",kind="dir"} 0"#,
            "# TYPE copyup_trace_copy_up_duration_seconds histogram",
            r#"copyup_trace_copy_up_duration_seconds_bucket{trigger="chown",kind="file",container="abc",le="1.024e-06"} 1"#,
            r#"copyup_trace_copy_up_duration_seconds_bucket{trigger="chown",kind="file",container="abc",le="4.096e-06"} 2"#,
            r#"copyup_trace_copy_up_duration_seconds_bucket{trigger="chown",kind="file",container="abc",le="+Inf"} 2"#,
            r#"copyup_trace_copy_up_duration_seconds_count{trigger="chown",kind="file",container="abc"} 2"#,
            r#"copyup_trace_copy_up_duration_seconds_sum{trigger="chown",kind="file",container="abc"} 0.000004024"#,
            r#"copyup_trace_operation_duration_seconds_count{trigger="chown"} 1"#,
            r#"copyup_trace_lost_events_total{reason="ring_full"} 0"#,
            "copyup_trace_missed_returns_total 0",
            "copyup_trace_skipped_runs_total 0",
            "copyup_trace_folded_series_total 0",
            r#"copyup_trace_info{version=""#,
        ] {
            assert!(
                t.lines().any(|l| l.starts_with(line)),
                "no {line:?} in\n{t}"
            );
        }
        assert!(t.contains(r#"kernel="6.12.0-test",probes=""} 1"#), "{t}");
        assert!(!t.contains("# EOF"));

        let mut c = Counts::new(&labels("kind"), 10, "k".into());
        c.add(&cu(Trigger::Chown, Kind::File, None, 1, 1));
        let om = text(c, true);
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert!(
            om.contains("# TYPE copyup_trace_copied_bytes counter\n"),
            "{om}"
        );
        assert!(
            om.contains("# UNIT copyup_trace_copied_bytes bytes\n"),
            "{om}"
        );
        assert!(
            om.contains("copyup_trace_copied_bytes_total{kind=\"file\"} 1\n"),
            "{om}"
        );
        assert!(om.contains("# TYPE copyup_trace info\n"), "{om}");
    }

    /// A copy-up of container `id` in cgroup `/c/<id>`, of pod `pod` when given.
    fn in_cgroup(id: &str, pod: Option<(&str, &str)>) -> CopyUp {
        let mut c = cu(Trigger::Chown, Kind::File, Some(id), 1, 1);
        c.cgroup = Some(Arc::from(format!("/c/{id}").as_str()));
        if let Some((ns, p)) = pod {
            c.container = Some(Arc::new(Container {
                runtime: "containerd",
                id: format!("{id}-{p}"),
                name: Some(id.into()),
                namespace: Some(ns.into()),
                pod: Some(p.into()),
                ..Default::default()
            }));
        }
        c
    }

    /// The series of a container that is gone goes, and its place under the cap goes to
    /// a new one; the `_other_` series and those of live containers stay.
    #[test]
    fn series_of_gone_containers_expire() {
        let mut c = Counts::new(&labels("container"), 2, "k".into());
        for id in ["a", "b", "c"] {
            c.add(&in_cgroup(id, None));
        }
        assert_eq!(c.series(), (2, 1), "c folded");
        let (t0, after) = (
            std::time::Instant::now(),
            std::time::Duration::from_secs(300),
        );
        assert_eq!(c.expire(|cg| cg == "/c/x", t0, after), 0, "all alive");
        // Gone, but kept to be scraped once more until `after` has passed.
        assert_eq!(c.expire(|cg| cg == "/c/a", t0, after), 0);
        assert_eq!(c.expire(|cg| cg == "/c/a", t0 + after / 2, after), 0);
        assert_eq!(c.expire(|cg| cg == "/c/a", t0 + after, after), 1);
        c.add(&in_cgroup("d", None));
        c.add(&in_cgroup("b", None));
        let t = text(c, false);
        for line in [
            r#"copyup_trace_copy_ups_total{container="b"} 2"#,
            r#"copyup_trace_copy_ups_total{container="d"} 1"#,
            r#"copyup_trace_copy_ups_total{container="_other_"} 1"#,
        ] {
            assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
        }
        assert!(!t.contains(r#"container="a""#), "{t}");
    }

    /// By default two pods' containers of one name are two series.
    #[test]
    fn pods_are_kept_apart_by_default() {
        let mut c = Counts::new(&labels(DEFAULT_LABELS), 10, "k".into());
        c.add(&in_cgroup("web", Some(("shop", "web-0"))));
        c.add(&in_cgroup("web", Some(("shop", "web-1"))));
        let t = text(c, false);
        for pod in ["web-0", "web-1"] {
            let line = format!(
                r#"copyup_trace_copy_ups_total{{trigger="chown",kind="file",namespace="shop",pod="{pod}",container="web"}} 1"#
            );
            assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
        }
    }

    #[test]
    fn series_past_the_cap_fold_into_other() {
        let mut c = Counts::new(&labels("container"), 2, "k".into());
        for (id, bytes) in [("a", 1), ("b", 2), ("c", 4), ("d", 8), ("c", 16), ("a", 32)] {
            c.add(&cu(Trigger::Chown, Kind::File, Some(id), bytes, 1));
        }
        assert_eq!(c.series(), (2, 2), "a and b kept; c and d folded, c once");
        let t = text(c, false);
        for line in [
            r#"copyup_trace_copied_bytes_total{container="a"} 33"#,
            r#"copyup_trace_copied_bytes_total{container="b"} 2"#,
            r#"copyup_trace_copied_bytes_total{container="_other_"} 28"#,
            r#"copyup_trace_copy_ups_total{container="_other_"} 3"#,
            "copyup_trace_folded_series_total 2",
        ] {
            assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
        }
        assert!(!t.contains("container=\"c\"") && !t.contains("container=\"d\""));
    }

    #[test]
    fn label_values_are_escaped_and_bounded() {
        assert_eq!(label_value("chown"), "chown");
        assert_eq!(label_value("a\"b"), "a\"b", "quotes are the encoder's");
        assert_eq!(label_value("a\nb\x1b"), "a\\nb\\x1b");
        assert_eq!(label_value(&"x".repeat(500)).len(), MAX_LABEL_LEN);
        assert_eq!(label_value(&"é".repeat(500)).chars().count(), MAX_LABEL_LEN);
        let mut c = Counts::new(&labels("container"), 5, "k".into());
        c.add(&cu(
            Trigger::Chown,
            Kind::File,
            Some("evil\"} x{y=\"\n"),
            1,
            1,
        ));
        let t = text(c, false);
        assert!(
            t.contains(r#"copyup_trace_copy_ups_total{container="evil\"} x{y=\"\\n"} 1"#),
            "{t}"
        );
    }

    #[test]
    fn labels_option() {
        let l = labels(DEFAULT_LABELS);
        let names: Vec<&str> = l.0.iter().map(|l| l.name).collect();
        assert_eq!(names, ["trigger", "kind", "namespace", "pod", "container"]);
        assert!(labels("").0.is_empty());
        assert!(parse_labels("path")
            .unwrap_err()
            .contains("unknown label \"path\""));
        assert!(parse_labels("kind,kind").is_err());
        // Without labels, one series for everything.
        let mut c = Counts::new(&labels(""), 5, "k".into());
        c.add(&cu(Trigger::Chown, Kind::File, None, 3, 1));
        c.add(&cu(Trigger::Mkdir, Kind::Dir, None, 4, 1));
        assert!(text(c, false).contains("\ncopyup_trace_copied_bytes_total 7\n"));
    }

    #[test]
    fn accept_header() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(prometheus));
        assert!(!wants_openmetrics("text/plain"));
        assert!(!wants_openmetrics("*/*"));
        assert!(!wants_openmetrics("application/openmetrics-text; q=0"));
    }

    struct TwoMechanisms;

    impl Probed for TwoMechanisms {
        fn state_entries(&self) -> Option<usize> {
            None
        }

        fn stack_frames(&self, _id: i32) -> Option<Vec<u64>> {
            None
        }

        fn mechanisms(&self) -> BTreeMap<&'static str, crate::kernel::plan::Attach> {
            BTreeMap::from([
                ("a", crate::kernel::plan::Attach::Kprobe),
                ("b", crate::kernel::plan::Attach::Fentry),
                ("c", crate::kernel::plan::Attach::Kprobe),
            ])
        }
    }

    #[test]
    fn status_sets_losses_and_probes() {
        let mut c = Counts::new(&labels(DEFAULT_LABELS), 5, "k".into());
        c.status(&Status {
            losses: Losses {
                lost_events: 3,
                lost_state: 4,
                missed_returns: 5,
                skipped_runs: 6,
                skipped_by: BTreeMap::from([("fe_copy_up_one".into(), 6)]),
            },
            probes: &TwoMechanisms,
        });
        let t = text(c, false);
        for line in [
            r#"copyup_trace_lost_events_total{reason="ring_full"} 3"#,
            r#"copyup_trace_lost_events_total{reason="no_state"} 4"#,
            "copyup_trace_missed_returns_total 5",
            "copyup_trace_skipped_runs_total 6",
        ] {
            assert!(t.lines().any(|l| l == line), "no {line:?} in\n{t}");
        }
        assert!(t.contains(r#"probes="fentry+kprobe""#), "{t}");
    }
}
