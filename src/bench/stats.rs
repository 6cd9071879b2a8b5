//! The figures `hotline bench` prints: percentiles and a text histogram of latencies.
//!
//! Owns nothing but pure functions over millisecond values, so they are tested on plain
//! numbers. Percentiles use the nearest-rank method (the value at rank `ceil(p/100 × n)` of the
//! sorted samples): every figure printed is a latency that was really measured, and p99 of fewer
//! than 100 samples is the largest one. Invariants: no function panics on empty input or on
//! NaN (NaN samples are dropped); histogram buckets are of one "round" width (1, 2 or 5 times a
//! power of ten milliseconds, 10 ms at least), cover every sample, and their counts add up to
//! the samples.

use serde::{Deserialize, Serialize};

/// The most buckets a histogram gets.
pub const MAX_BUCKETS: usize = 12;

/// p50, p95 and p99 of a set of latencies, in milliseconds (`None` when there are no samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    /// How many samples the percentiles are taken over.
    #[serde(default)]
    pub count: usize,
}

impl Percentiles {
    /// The percentiles of `values_ms` (any order; NaN is dropped).
    pub fn of(values_ms: &[f64]) -> Self {
        let sorted = sorted(values_ms);
        Self {
            p50: percentile(&sorted, 50.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            count: sorted.len(),
        }
    }
}

/// The values without NaN, in ascending order.
pub fn sorted(values: &[f64]) -> Vec<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    sorted.sort_by(f64::total_cmp);
    sorted
}

/// The nearest-rank percentile `p` (0–100) of ascending `sorted` values; `None` when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One histogram bucket: `[low_ms, high_ms)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub low_ms: f64,
    pub high_ms: f64,
    pub count: usize,
}

/// The smallest round width (1, 2 or 5 × 10^k ms, at least 10 ms: finer is below what a
/// 20 ms packet clock can tell) that covers `span_ms` in at most `buckets` buckets.
pub fn round_width(span_ms: f64, buckets: usize) -> f64 {
    let buckets = buckets.max(1) as f64;
    let mut scale = 10.0;
    loop {
        for step in [1.0, 2.0, 5.0] {
            let width = step * scale;
            if span_ms / width < buckets {
                return width;
            }
        }
        scale *= 10.0;
    }
}

/// Counts `values_ms` into at most [`MAX_BUCKETS`] buckets of one round width, from the bucket
/// holding the smallest value to the one holding the largest. Empty input gives no buckets.
pub fn histogram(values_ms: &[f64]) -> Vec<Bucket> {
    let sorted = sorted(values_ms);
    let (Some(&min), Some(&max)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    let mut width = round_width(max - min, MAX_BUCKETS);
    // Aligning the first bucket on the width can push the largest value one bucket further.
    let mut low = (min / width).floor() * width;
    while ((max - low) / width).floor() as usize >= MAX_BUCKETS {
        width = round_width(width * MAX_BUCKETS as f64, MAX_BUCKETS - 1);
        low = (min / width).floor() * width;
    }
    let count = ((max - low) / width).floor() as usize + 1;
    let mut buckets: Vec<Bucket> = (0..count)
        .map(|i| Bucket {
            low_ms: low + i as f64 * width,
            high_ms: low + (i + 1) as f64 * width,
            count: 0,
        })
        .collect();
    for value in sorted {
        let index = (((value - low) / width).floor() as usize).min(count - 1);
        buckets[index].count += 1;
    }
    buckets
}

/// The buckets as text: one line per bucket, its range, a bar scaled to `bar_width` characters
/// for the fullest bucket, and the count.
pub fn render_histogram(buckets: &[Bucket], bar_width: usize) -> String {
    let most = buckets.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let mut text = String::new();
    for bucket in buckets {
        let bar = (bucket.count * bar_width).div_ceil(most);
        text.push_str(&format!(
            "  {:>6.0}–{:<6.0} ms |{:<bar_width$}| {}\n",
            bucket.low_ms,
            bucket.high_ms,
            "#".repeat(bar),
            bucket.count
        ));
    }
    text
}

/// `a` → `b` as text: the difference and, when `a` is not zero, the relative change.
pub fn change(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a != 0.0 => {
            format!("{:+.1} ({:+.1} %)", b - a, (b - a) / a.abs() * 100.0)
        }
        (Some(a), Some(b)) => format!("{:+.1}", b - a),
        _ => "n/a".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        let p = Percentiles::of(&values);
        assert_eq!(p.p50, Some(50.0));
        assert_eq!(p.p95, Some(95.0));
        assert_eq!(p.p99, Some(99.0));
        assert_eq!(p.count, 100);
    }

    #[test]
    fn few_samples_take_real_values() {
        let p = Percentiles::of(&[300.0, 100.0, 200.0]);
        assert_eq!(p.p50, Some(200.0));
        assert_eq!(p.p95, Some(300.0));
        assert_eq!(p.p99, Some(300.0));
        let one = Percentiles::of(&[42.0]);
        assert_eq!((one.p50, one.p99, one.count), (Some(42.0), Some(42.0), 1));
    }

    #[test]
    fn empty_and_nan_give_no_figures() {
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
        let p = Percentiles::of(&[f64::NAN, 7.0]);
        assert_eq!((p.p50, p.count), (Some(7.0), 1));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0, 2.0], 0.0), Some(1.0));
        assert_eq!(percentile(&[1.0, 2.0], 250.0), Some(2.0));
    }

    #[test]
    fn widths_are_round() {
        assert_eq!(round_width(0.0, 12), 10.0);
        assert_eq!(round_width(119.0, 12), 10.0);
        assert_eq!(round_width(120.0, 12), 20.0);
        assert_eq!(round_width(500.0, 12), 50.0);
        assert_eq!(round_width(900.0, 12), 100.0);
        assert_eq!(round_width(1_300.0, 12), 200.0);
    }

    #[test]
    fn histogram_covers_every_sample_once() {
        let values = [812.0, 905.0, 1_010.0, 1_499.0, 2_300.0, 905.0];
        let buckets = histogram(&values);
        assert!(buckets.len() <= MAX_BUCKETS);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<usize>(), values.len());
        assert!(buckets[0].low_ms <= 812.0);
        assert!(buckets.last().map(|b| b.high_ms > 2_300.0).unwrap_or(false));
        let width = buckets[0].high_ms - buckets[0].low_ms;
        assert!(buckets
            .windows(2)
            .all(|w| (w[1].low_ms - w[0].high_ms).abs() < 1e-9));
        assert_eq!(width, 200.0);
    }

    #[test]
    fn histogram_of_one_value_and_of_none() {
        let buckets = histogram(&[250.0]);
        assert_eq!(buckets.len(), 1);
        assert_eq!(buckets[0].count, 1);
        assert!(histogram(&[]).is_empty());
    }

    #[test]
    fn histogram_with_unaligned_span_stays_within_the_bucket_limit() {
        // A span just under 12 widths that starts mid-bucket needs a wider bucket.
        let values = [55.0, 172.0];
        let buckets = histogram(&values);
        assert!(buckets.len() <= MAX_BUCKETS, "{buckets:?}");
        assert_eq!(buckets[0].high_ms - buckets[0].low_ms, 20.0);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<usize>(), 2);
    }

    #[test]
    fn rendered_bars_scale_to_the_fullest_bucket() {
        let buckets = [
            Bucket {
                low_ms: 0.0,
                high_ms: 100.0,
                count: 4,
            },
            Bucket {
                low_ms: 100.0,
                high_ms: 200.0,
                count: 1,
            },
        ];
        let text = render_histogram(&buckets, 8);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].contains("|########| 4"), "{text}");
        assert!(lines[1].contains("|##      | 1"), "{text}");
    }

    #[test]
    fn changes_read_both_ways() {
        assert_eq!(change(Some(100.0), Some(90.0)), "-10.0 (-10.0 %)");
        assert_eq!(change(Some(0.0), Some(2.0)), "+2.0");
        assert_eq!(change(None, Some(2.0)), "n/a");
    }
}
