//! Latency distributions: a bcc-style power-of-two histogram for terminal output and an
//! HDR histogram for percentile summaries.

use hdrhistogram::Histogram;

/// Power-of-two histogram in the style of bcc's `print_log2_hist`.
///
/// Bucket `k` holds the values whose bit length is `k`: bucket 0 holds 0, bucket 1 holds 1,
/// bucket 2 holds 2..=3, bucket `k` holds `2^(k-1) ..= 2^k - 1`. The unit is the caller's
/// (e.g. µs). [`Log2Hist::render`] shows buckets 0 and 1 as one `0 -> 1` row, exactly as bcc
/// does (bcc's `bpf_log2l` counts 0 in the same slot as 1).
#[derive(Default, Clone, Debug, PartialEq)]
pub struct Log2Hist {
    buckets: Vec<u64>,
}

/// Width of the bar when the histogram has at most 32 rows, as in bcc.
const STARS_MAX: u64 = 40;

impl Log2Hist {
    pub fn add(&mut self, v: u64) {
        let idx = (u64::BITS - v.leading_zeros()) as usize;
        if self.buckets.len() <= idx {
            self.buckets.resize(idx + 1, 0);
        }
        self.buckets[idx] = self.buckets[idx].saturating_add(1);
    }

    pub fn count(&self) -> u64 {
        self.buckets
            .iter()
            .fold(0u64, |acc, &c| acc.saturating_add(c))
    }

    /// Counts per bucket, indexed by bit length; trailing empty buckets may be absent.
    pub fn buckets(&self) -> &[u64] {
        &self.buckets
    }

    /// Renders the histogram in bcc's `print_log2_hist` layout, e.g.
    ///
    /// ```text
    ///      usecs               : count     distribution
    ///          0 -> 1          : 0        |                                        |
    ///          2 -> 3          : 4        |****************************************|
    /// ```
    ///
    /// Rows run from `0 -> 1` to the last non-empty bucket; every line ends with a newline.
    /// An empty histogram renders as an empty string.
    pub fn render(&self, label: &str) -> String {
        // Row i (i >= 1) covers bcc's slot i; slot 1 also takes our bucket 0 (the zeros).
        let row_count = |i: usize| -> u64 {
            let c = self.buckets.get(i).copied().unwrap_or(0);
            if i == 1 {
                c.saturating_add(self.buckets.first().copied().unwrap_or(0))
            } else {
                c
            }
        };
        let Some(last_nonempty) = self.buckets.iter().rposition(|&c| c > 0) else {
            return String::new();
        };
        let idx_max = last_nonempty.max(1);
        let val_max = (1..=idx_max).map(row_count).max().unwrap_or(0);

        // bcc switches to wider columns and half-width bars once values exceed 32 bits.
        let (pad, label_width, num_width, stars) = if idx_max <= 32 {
            (5, 19, 10, STARS_MAX)
        } else {
            (15, 29, 20, STARS_MAX / 2)
        };

        let mut out = format!(
            "{:pad$}{label:<label_width$} : count     distribution\n",
            ""
        );
        for i in 1..=idx_max {
            // u128 so that the top bucket's bound (2^64 - 1) does not overflow.
            let high = (1u128 << i) - 1;
            let mut low = (1u128 << i) >> 1;
            if low == high {
                low -= 1;
            }
            let val = row_count(i);
            let n = if val_max == 0 {
                0
            } else {
                (u128::from(stars) * u128::from(val) / u128::from(val_max)).min(u128::from(stars))
                    as usize
            };
            out.push_str(&format!(
                "{low:>num_width$} -> {high:<num_width$} : {val:<8} |{bar:<width$}|\n",
                bar = "*".repeat(n),
                width = stars as usize,
            ));
        }
        out
    }
}

/// Percentile summary of nanosecond latencies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Percentiles {
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// Nanosecond latencies kept in an HDR histogram (2 significant digits, growing as needed).
///
/// Percentiles are accurate to the histogram's precision (about 1%); the maximum is tracked
/// separately so it is exact, and percentiles are capped at it so that a summary never reports
/// a p99 above its max. Up to `FEW` samples are kept as they are, without a histogram: most
/// processes and containers of a host-wide run copy up a handful of files, and a histogram
/// costs kilobytes to create and to merge.
#[derive(Clone, Default)]
pub struct Latencies {
    few: [u64; FEW],
    /// Samples in `few`, while there is no histogram.
    n_few: usize,
    hist: Option<Box<Histogram<u64>>>,
    max: u64,
}

const FEW: usize = 8;

fn new_hist() -> Box<Histogram<u64>> {
    // 2 significant digits (about 1%) keep a row's counters near 20 KiB at millisecond
    // latencies; 3 would cost 136 KiB per row.
    Box::new(Histogram::new(2).expect("2 significant digits is a valid precision"))
}

fn hist_record(h: &mut Histogram<u64>, ns: u64, n: u64) {
    if h.record_n(ns, n).is_err() {
        // Only if growing the histogram failed; keep the sample, clamped, rather than lose it.
        h.saturating_record_n(ns, n);
    }
}

impl Latencies {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&mut self, ns: u64) {
        self.max = self.max.max(ns);
        match &mut self.hist {
            Some(h) => hist_record(h, ns, 1),
            None if self.n_few < FEW => {
                self.few[self.n_few] = ns;
                self.n_few += 1;
            }
            None => {
                let h = self.promote();
                hist_record(h, ns, 1);
            }
        }
    }

    /// Moves the samples kept as they are into a new histogram.
    fn promote(&mut self) -> &mut Histogram<u64> {
        let mut h = new_hist();
        for &v in &self.few[..self.n_few] {
            hist_record(&mut h, v, 1);
        }
        self.n_few = 0;
        self.hist.insert(h)
    }

    /// Adds `other`'s samples to these.
    pub fn merge(&mut self, other: &Latencies) {
        self.max = self.max.max(other.max);
        match &other.hist {
            None => {
                for &v in &other.few[..other.n_few] {
                    self.record(v);
                }
            }
            Some(o) => {
                let h = match self.hist.is_some() {
                    true => self.hist.as_mut().expect("checked"),
                    false => self.promote(),
                };
                if h.add(&**o).is_err() {
                    // Only if growing the histogram failed: keep every sample, clamped.
                    for v in o.iter_recorded() {
                        h.saturating_record_n(v.value_iterated_to(), v.count_at_value());
                    }
                }
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.hist.as_ref().map_or(self.n_few as u64, |h| h.len())
    }

    pub fn is_empty(&self) -> bool {
        self.hist.as_ref().map_or(self.n_few == 0, |h| h.is_empty())
    }

    /// The value at percentile `p` (0..=100, clamped; NaN counts as 0); 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.is_empty() {
            return 0;
        }
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
        match &self.hist {
            Some(h) => h.value_at_percentile(p).min(self.max),
            None => {
                // Exactly: the smallest sample with at least p% of them at or below it.
                let mut v = self.few;
                let v = &mut v[..self.n_few];
                v.sort_unstable();
                let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
                v[rank.clamp(1, v.len()) - 1]
            }
        }
    }

    /// The largest recorded value, exactly; 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    pub fn summary(&self) -> Percentiles {
        Percentiles {
            p50_ns: self.percentile(50.0),
            p90_ns: self.percentile(90.0),
            p99_ns: self.percentile(99.0),
            max_ns: self.max(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket_of(v: u64) -> usize {
        let mut h = Log2Hist::default();
        h.add(v);
        h.buckets().iter().position(|&c| c == 1).unwrap()
    }

    #[test]
    fn bucket_placement_is_bit_length() {
        let cases = [
            (0, 0),
            (1, 1),
            (2, 2),
            (3, 2),
            (4, 3),
            (7, 3),
            (8, 4),
            (1023, 10),
            (1024, 11),
            (u64::MAX, 64),
        ];
        for (v, k) in cases {
            assert_eq!(bucket_of(v), k, "value {v}");
        }
    }

    #[test]
    fn count_sums_buckets() {
        let mut h = Log2Hist::default();
        for v in [0, 1, 2, 3, 4, 7, 8, 1023, 1024] {
            h.add(v);
        }
        assert_eq!(h.count(), 9);
        assert_eq!(h.buckets(), &[1, 1, 2, 2, 1, 0, 0, 0, 0, 0, 1, 1]);
    }

    #[test]
    fn render_matches_bcc_layout() {
        let mut h = Log2Hist::default();
        // 2..=3: 4 samples (the max), 8..=15: 1 sample, 16..=31: 3 samples.
        for v in [2, 3, 3, 2, 8, 16, 20, 31] {
            h.add(v);
        }
        let expected = "     usecs               : count     distribution\n\
\x20        0 -> 1          : 0        |                                        |\n\
\x20        2 -> 3          : 4        |****************************************|\n\
\x20        4 -> 7          : 0        |                                        |\n\
\x20        8 -> 15         : 1        |**********                              |\n\
\x20       16 -> 31         : 3        |******************************          |\n";
        assert_eq!(h.render("usecs"), expected);
    }

    #[test]
    fn render_merges_zero_and_one_like_bcc() {
        let mut h = Log2Hist::default();
        h.add(0);
        h.add(1);
        h.add(1);
        let expected = "     nsecs               : count     distribution\n\
\x20        0 -> 1          : 3        |****************************************|\n";
        assert_eq!(h.render("nsecs"), expected);
    }

    #[test]
    fn render_uses_wide_layout_beyond_32_buckets() {
        let mut h = Log2Hist::default();
        h.add(1 << 33); // bucket 34
        let out = h.render("nsecs");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1 + 34);
        assert_eq!(
            lines[0],
            "               nsecs                         : count     distribution"
        );
        assert_eq!(
            lines[34],
            "          8589934592 -> 17179869183          : 1        |********************|"
        );
    }

    #[test]
    fn render_top_bucket_does_not_overflow() {
        let mut h = Log2Hist::default();
        h.add(u64::MAX);
        let out = h.render("nsecs");
        assert!(out
            .lines()
            .last()
            .unwrap()
            .starts_with(" 9223372036854775808 -> 18446744073709551615 : 1 "));
    }

    #[test]
    fn render_empty_is_empty() {
        assert_eq!(Log2Hist::default().render("usecs"), "");
    }

    #[test]
    fn percentiles_of_one_to_hundred_micros() {
        let mut l = Latencies::new();
        for i in 1..=100u64 {
            l.record(i * 1000);
        }
        assert_eq!(l.len(), 100);
        assert!(!l.is_empty());
        // With 2 significant digits hdrhistogram answers with the highest value equivalent to
        // the true sample; at 2 digits buckets are under 1% of the value they hold, so the
        // answer may exceed the true value by at most one bucket width (< 1% of it).
        let s = l.summary();
        for (got, want) in [(s.p50_ns, 50_000), (s.p90_ns, 90_000), (s.p99_ns, 99_000)] {
            assert!(
                l.hist.as_ref().unwrap().equivalent(got, want),
                "{got} not equivalent to {want}"
            );
            assert!(got >= want && got - want <= want / 100, "{got} vs {want}");
        }
        // The max is tracked outside the histogram, so it is exact rather than 100_031.
        assert_eq!(s.max_ns, 100_000);
        assert_eq!(l.max(), 100_000);
        // p100 would be the top bucket's highest equivalent value; it is capped at the max.
        assert_eq!(l.percentile(100.0), 100_000);
        assert_eq!(l.percentile(f64::INFINITY), 100_000);
        // Values below 2048 are stored exactly.
        assert_eq!(l.percentile(0.0), 1000);
        assert_eq!(l.percentile(f64::NAN), 1000);
    }

    #[test]
    fn a_few_samples_are_exact_and_merge_like_many() {
        let mut few = Latencies::new();
        for v in [5_000, 1_000, 3_000] {
            few.record(v);
        }
        assert!(few.hist.is_none());
        assert_eq!(
            few.summary(),
            Percentiles {
                p50_ns: 3_000,
                p90_ns: 5_000,
                p99_ns: 5_000,
                max_ns: 5_000
            }
        );
        assert_eq!(few.percentile(0.0), 1_000);
        // Merged past FEW samples, the result is the one recording them all gives.
        let (mut a, mut b, mut direct) = (Latencies::new(), Latencies::new(), Latencies::new());
        for i in 1..=6u64 {
            a.record(i * 1_234_567);
            b.record(i * 7_654);
            direct.record(i * 1_234_567);
            direct.record(i * 7_654);
        }
        a.merge(&b);
        assert!(a.hist.is_some());
        assert_eq!(a.len(), 12);
        assert_eq!(a.summary(), direct.summary());
        // A large histogram merged into a few samples.
        let mut c = Latencies::new();
        c.record(42);
        c.merge(&direct);
        assert_eq!(c.len(), 13);
        assert_eq!(c.percentile(0.0), 42);
        assert_eq!(c.max(), direct.max());
    }

    #[test]
    fn small_values_are_exact() {
        let mut l = Latencies::default();
        for v in [5, 10, 15, 20] {
            l.record(v);
        }
        assert_eq!(l.percentile(50.0), 10);
        assert_eq!(l.percentile(75.0), 15);
        assert_eq!(l.max(), 20);
    }

    #[test]
    fn empty_latencies_are_zero() {
        let l = Latencies::new();
        assert!(l.is_empty());
        assert_eq!(l.len(), 0);
        assert_eq!(l.percentile(50.0), 0);
        assert_eq!(l.max(), 0);
        assert_eq!(l.summary(), Percentiles::default());
    }

    #[test]
    fn huge_values_are_kept() {
        let mut l = Latencies::new();
        l.record(0);
        l.record(u64::MAX);
        assert_eq!(l.len(), 2);
        assert_eq!(l.max(), u64::MAX);
        assert_eq!(l.percentile(50.0), 0);
    }
}
