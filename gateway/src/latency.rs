//! Live reply latency: per gateway, the time from a client message's
//! receive timestamp to the transmit of the reply that answers it.
//!
//! Why this shape: the gateway already stamps every inbound message with
//! its receive time and the sequencer copies that stamp onto each reply
//! ([`OutboundSlot::rx_ns`](peregrine_sequencer::slot::OutboundSlot)), so
//! the transmit side only has to subtract. Values go into two
//! HdrHistograms allocated at start-up (1 ns to 60 s, 3 significant
//! digits): one since start, one for the current publishing interval,
//! which the publisher resets. Recording is an index computation and an
//! increment: no allocation, no lock. A value above the range is counted
//! in [`ReplyLatency::out_of_range`] and recorded as the highest trackable
//! value, never a panic.
//!
//! For publishing (a shared-memory file read by other processes) a
//! histogram is converted into [`LatencyBuckets`]: a fixed log-linear
//! layout of [`BUCKET_COUNT`] counters (exact below 32 ns, then 16 linear
//! buckets per power of two, so a bucket is at most 1/16 = 6.25% wide),
//! cheap to copy and independent of the HdrHistogram encoding.

use hdrhistogram::Histogram;

/// Lowest recordable latency, ns.
pub const LOWEST_NS: u64 = 1;
/// Highest recordable latency, ns (60 s); larger values are counted as out
/// of range and recorded as this.
pub const HIGHEST_NS: u64 = 60_000_000_000;
/// Significant decimal digits the HdrHistograms keep.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// log2 of the linear buckets per power of two in [`LatencyBuckets`].
pub const SUB_BITS: u32 = 4;
const SUB: usize = 1 << SUB_BITS;
/// Buckets in [`LatencyBuckets`]: enough for every value below 2^36 ns
/// (about 68.7 s, above [`HIGHEST_NS`]).
pub const BUCKET_COUNT: usize = (36 - SUB_BITS as usize + 1) * SUB;

/// The bucket of value `v` (ns) in the fixed layout; values beyond the
/// layout go to the last bucket.
#[inline]
pub fn bucket_of(v: u64) -> usize {
    if v < 2 * SUB as u64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros();
    let shift = msb - SUB_BITS;
    let sub = (v >> shift) as usize & (SUB - 1);
    (((msb - SUB_BITS) as usize + 1) * SUB + sub).min(BUCKET_COUNT - 1)
}

/// The lowest value (ns) of bucket `i`.
#[inline]
pub fn bucket_low(i: usize) -> u64 {
    if i < 2 * SUB {
        return i as u64;
    }
    let octave = (i / SUB - 1) as u32;
    ((SUB + i % SUB) as u64) << octave
}

/// The highest value (ns) of bucket `i`, inclusive.
#[inline]
pub fn bucket_high(i: usize) -> u64 {
    if i + 1 >= BUCKET_COUNT {
        return u64::MAX;
    }
    bucket_low(i + 1) - 1
}

/// One latency histogram in the fixed bucket layout, with its count, sum
/// and maximum (ns). Plain data: what the publisher copies out and the
/// readers get back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyBuckets {
    /// Values recorded.
    pub count: u64,
    /// Sum of the values, ns (saturating).
    pub sum_ns: u64,
    /// Largest value, ns (0 when empty).
    pub max_ns: u64,
    /// Values above [`HIGHEST_NS`] (also in the last non-empty bucket).
    pub out_of_range: u64,
    /// Count per bucket, see [`bucket_low`] / [`bucket_high`].
    pub buckets: [u64; BUCKET_COUNT],
}

impl Default for LatencyBuckets {
    fn default() -> Self {
        LatencyBuckets {
            count: 0,
            sum_ns: 0,
            max_ns: 0,
            out_of_range: 0,
            buckets: [0; BUCKET_COUNT],
        }
    }
}

impl LatencyBuckets {
    /// Fills `self` from HdrHistogram `h` (ns) with its sum and out-of-range
    /// count. Walks the recorded values only; no allocation.
    pub fn fill_from(&mut self, h: &Histogram<u64>, sum_ns: u64, out_of_range: u64) {
        fill_one(h, sum_ns, out_of_range, self);
    }

    /// Sets `self` to what was recorded after `earlier` up to `later` (two
    /// snapshots of one since-start histogram). The maximum is the upper
    /// bound of the highest bucket that grew, at most `later`'s maximum.
    pub fn set_difference(&mut self, later: &LatencyBuckets, earlier: &LatencyBuckets) {
        self.count = later.count.saturating_sub(earlier.count);
        self.sum_ns = later.sum_ns.saturating_sub(earlier.sum_ns);
        self.out_of_range = later.out_of_range.saturating_sub(earlier.out_of_range);
        self.max_ns = 0;
        for (i, ((d, l), e)) in self
            .buckets
            .iter_mut()
            .zip(&later.buckets)
            .zip(&earlier.buckets)
            .enumerate()
        {
            *d = l.saturating_sub(*e);
            if *d > 0 {
                self.max_ns = bucket_high(i).min(later.max_ns);
            }
        }
    }

    /// The value at quantile `q` (0..=1), ns: the upper bound of the bucket
    /// holding it, never above the maximum. 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for (i, c) in self.buckets.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(i).min(self.max_ns);
            }
        }
        self.max_ns
    }
}

/// A gateway's reply latency recorder: since start and the current
/// interval.
pub struct ReplyLatency {
    since_start: Histogram<u64>,
    interval: Histogram<u64>,
    since_start_sum: u64,
    interval_sum: u64,
    since_start_out: u64,
    interval_out: u64,
    interval_start_ns: u64,
}

impl std::fmt::Debug for ReplyLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyLatency")
            .field("count", &self.since_start.len())
            .field("interval_count", &self.interval.len())
            .finish()
    }
}

impl Default for ReplyLatency {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram() -> Histogram<u64> {
    // The bounds are constants within the crate's limits: cannot fail.
    Histogram::new_with_bounds(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

impl ReplyLatency {
    /// Allocates both histograms (a few hundred KiB); nothing allocates
    /// afterwards.
    pub fn new() -> Self {
        ReplyLatency {
            since_start: histogram(),
            interval: histogram(),
            since_start_sum: 0,
            interval_sum: 0,
            since_start_out: 0,
            interval_out: 0,
            interval_start_ns: 0,
        }
    }

    /// Records one latency of `ns` nanoseconds (0 is recorded as 1 ns;
    /// above [`HIGHEST_NS`] as that, and counted out of range). Only the
    /// interval histogram is touched per reply; it is folded into the
    /// since-start one when the interval ends, so recording costs one
    /// histogram update, not two.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.record_n(ns, 1);
    }

    /// Records `n` latencies of `ns` nanoseconds each, as `n` calls of
    /// [`record`](Self::record) would, in one histogram update (the
    /// replies to one datagram's messages share their receive time).
    #[inline]
    pub fn record_n(&mut self, ns: u64, n: u64) {
        let v = ns.max(LOWEST_NS);
        if v > HIGHEST_NS {
            self.interval_out += n;
        }
        self.interval.saturating_record_n(v, n);
        self.interval_sum = self.interval_sum.saturating_add(v.saturating_mul(n));
    }

    /// Latencies recorded since start (the current interval included).
    pub fn count(&self) -> u64 {
        self.since_start.len() + self.interval.len()
    }

    /// Latencies above [`HIGHEST_NS`] since start.
    pub fn out_of_range(&self) -> u64 {
        self.since_start_out + self.interval_out
    }

    /// The HdrHistogram (ns) of every latency before the current interval
    /// (see [`interval`](Self::interval) for the rest).
    pub fn since_start(&self) -> &Histogram<u64> {
        &self.since_start
    }

    /// The current interval's HdrHistogram (ns).
    pub fn interval(&self) -> &Histogram<u64> {
        &self.interval
    }

    /// When the current interval started (the clock passed to the last
    /// [`reset_interval`](Self::reset_interval), ns; 0 before the first).
    pub fn interval_start_ns(&self) -> u64 {
        self.interval_start_ns
    }

    /// Copies the since-start histogram into `since` and the interval one
    /// into `interval` (fixed layout). Walks the recorded values only; no
    /// allocation.
    pub fn fill(&self, since: &mut LatencyBuckets, interval: &mut LatencyBuckets) {
        fill_one(&self.interval, self.interval_sum, self.interval_out, interval);
        fill_one(
            &self.since_start,
            self.since_start_sum,
            self.since_start_out,
            since,
        );
        // Since start = everything before this interval + this interval.
        for (a, b) in since.buckets.iter_mut().zip(interval.buckets.iter()) {
            *a += b;
        }
        since.count += interval.count;
        since.sum_ns = since.sum_ns.saturating_add(interval.sum_ns);
        since.max_ns = since.max_ns.max(interval.max_ns);
        since.out_of_range += interval.out_of_range;
    }

    /// Starts a new interval at `now_ns`: the interval histogram is
    /// emptied.
    pub fn reset_interval(&mut self, now_ns: u64) {
        // Same bounds and precision: adding never resizes or fails.
        let _ = self.since_start.add(&self.interval);
        self.since_start_sum = self.since_start_sum.saturating_add(self.interval_sum);
        self.since_start_out += self.interval_out;
        self.interval.reset();
        self.interval_sum = 0;
        self.interval_out = 0;
        self.interval_start_ns = now_ns;
    }
}

fn fill_one(h: &Histogram<u64>, sum: u64, out: u64, to: &mut LatencyBuckets) {
    to.buckets.fill(0);
    to.count = h.len();
    to.sum_ns = sum;
    to.max_ns = if h.is_empty() { 0 } else { h.max() };
    to.out_of_range = out;
    for v in h.iter_recorded() {
        let b = bucket_of(h.lowest_equivalent(v.value_iterated_to()));
        to.buckets[b] += v.count_at_value();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_is_contiguous_and_covers_the_range() {
        for i in 0..BUCKET_COUNT - 1 {
            assert_eq!(bucket_high(i) + 1, bucket_low(i + 1), "bucket {i}");
            assert_eq!(bucket_of(bucket_low(i)), i);
            assert_eq!(bucket_of(bucket_high(i)), i);
        }
        assert!(bucket_low(BUCKET_COUNT - 1) > HIGHEST_NS / 2);
        assert_eq!(bucket_of(HIGHEST_NS), bucket_of(HIGHEST_NS - 1));
        assert!(bucket_of(HIGHEST_NS) < BUCKET_COUNT);
        assert_eq!(bucket_of(u64::MAX), BUCKET_COUNT - 1);
    }

    proptest! {
        #[test]
        fn a_bucket_is_at_most_a_sixteenth_wide(v in 32u64..31u64 << 31) {
            let b = bucket_of(v);
            prop_assert!(bucket_low(b) <= v && v <= bucket_high(b));
            prop_assert!((bucket_high(b) - bucket_low(b)) * 16 <= bucket_low(b));
        }

        #[test]
        fn a_run_recorded_at_once_counts_as_its_replies(
            runs in proptest::collection::vec((0u64..HIGHEST_NS * 2, 1u64..20), 1..50)
        ) {
            let (mut one_by_one, mut in_runs) = (ReplyLatency::new(), ReplyLatency::new());
            for &(v, n) in &runs {
                for _ in 0..n {
                    one_by_one.record(v);
                }
                in_runs.record_n(v, n);
            }
            let fill = |r: &ReplyLatency| {
                let (mut s, mut i) = (LatencyBuckets::default(), LatencyBuckets::default());
                r.fill(&mut s, &mut i);
                (s, r.count(), r.out_of_range())
            };
            prop_assert_eq!(fill(&in_runs), fill(&one_by_one));
        }

        #[test]
        fn quantiles_match_a_sorted_model(mut vs in proptest::collection::vec(1u64..10_000_000, 1..300)) {
            let mut r = ReplyLatency::new();
            for &v in &vs {
                r.record(v);
            }
            let (mut s, mut i) = (LatencyBuckets::default(), LatencyBuckets::default());
            r.fill(&mut s, &mut i);
            prop_assert_eq!(&s, &i);
            prop_assert_eq!(s.count, vs.len() as u64);
            prop_assert_eq!(s.buckets.iter().sum::<u64>(), vs.len() as u64);
            vs.sort_unstable();
            prop_assert_eq!(s.sum_ns, vs.iter().sum::<u64>());
            for q in [0.5, 0.99, 0.999, 1.0] {
                let exact = vs[((q * vs.len() as f64).ceil() as usize).clamp(1, vs.len()) - 1];
                let got = s.quantile(q);
                // Upper bound of the bucket: within a sixteenth (plus the
                // HdrHistogram's own 0.1%) above the exact value.
                prop_assert!(got + got / 500 >= exact, "q {} exact {} got {}", q, exact, got);
                prop_assert!(got <= exact + exact / 16 + exact / 500 + 1, "q {} exact {} got {}", q, exact, got);
            }
        }
    }

    #[test]
    fn a_difference_of_snapshots_is_what_was_recorded_between_them() {
        let mut r = ReplyLatency::new();
        r.record(100);
        let (mut a, mut b, mut i) = (
            LatencyBuckets::default(),
            LatencyBuckets::default(),
            LatencyBuckets::default(),
        );
        r.fill(&mut a, &mut i);
        r.record(5_000);
        r.record(7);
        r.fill(&mut b, &mut i);
        let mut d = LatencyBuckets::default();
        d.set_difference(&b, &a);
        assert_eq!((d.count, d.sum_ns), (2, 5_007));
        assert_eq!(d.buckets.iter().sum::<u64>(), 2);
        assert_eq!((d.buckets[7], d.buckets[bucket_of(5_000)]), (1, 1));
        assert!(d.max_ns >= 5_000 && d.max_ns <= b.max_ns);
        d.set_difference(&b, &b);
        assert_eq!((d.count, d.max_ns, d.buckets.iter().sum::<u64>()), (0, 0, 0));
    }

    #[test]
    fn interval_resets_and_out_of_range_is_counted() {
        let mut r = ReplyLatency::new();
        r.record(0);
        r.record(5_000);
        r.record(HIGHEST_NS * 10);
        assert_eq!(r.count(), 3);
        assert_eq!(r.out_of_range(), 1);
        r.reset_interval(77);
        r.record(1_000);
        let (mut s, mut i) = (LatencyBuckets::default(), LatencyBuckets::default());
        r.fill(&mut s, &mut i);
        assert_eq!((s.count, i.count), (4, 1));
        assert_eq!((s.out_of_range, i.out_of_range), (1, 0));
        assert_eq!(r.interval_start_ns(), 77);
        assert!(s.max_ns >= HIGHEST_NS);
        assert_eq!(i.quantile(0.5), i.max_ns);
        assert!(i.max_ns >= 1_000 && i.max_ns <= 1_001);
    }
}
