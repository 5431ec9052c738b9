//! Summaries of measured samples (latencies, block intervals, block sizes): count, min, mean,
//! nearest-rank percentiles and max. Kept apart from the network code so the arithmetic the
//! benchmark figures rest on is unit-tested on its own.

use serde::Serialize;

/// The distribution of one measured quantity.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// The summary of `samples` (any order), or `None` when there are none. NaNs are dropped:
    /// they cannot be ranked and mean no measurement.
    pub fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let sum: f64 = sorted.iter().sum();
        Some(Self {
            count: sorted.len(),
            min: sorted[0],
            mean: sum / sorted.len() as f64,
            p50: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p99: percentile(&sorted, 99.0),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The nearest-rank percentile of ascending `sorted` (non-empty): the smallest sample such
/// that at least `p` percent of the samples are less than or equal to it. Always a measured
/// value, never an interpolation, so "p99 < 1 s" means 99 % of the samples really were.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    assert!(!sorted.is_empty(), "percentile of no samples");
    let p = p.clamp(0.0, 100.0);
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Differences between consecutive values of an ascending series (e.g. block times).
pub fn intervals(series: &[f64]) -> Vec<f64> {
    series.windows(2).map(|w| w[1] - w[0]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_on_one_to_hundred() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 90.0), 90.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
    }

    #[test]
    fn nearest_rank_rounds_up_on_small_sets() {
        let v = [10.0, 20.0, 30.0];
        // 50 % of 3 is rank 1.5 -> 2; 99 % -> rank 2.97 -> 3.
        assert_eq!(percentile(&v, 50.0), 20.0);
        assert_eq!(percentile(&v, 99.0), 30.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert_eq!(percentile(&[7.0], 1.0), 7.0);
    }

    #[test]
    fn one_slow_sample_in_a_hundred_is_p99_not_p90() {
        let mut v = vec![100.0; 99];
        v.push(5_000.0);
        let s = Summary::of(&v).unwrap();
        assert_eq!(s.p90, 100.0);
        assert_eq!(s.p99, 100.0);
        assert_eq!(s.max, 5_000.0);
        v.push(5_000.0);
        let s = Summary::of(&v).unwrap();
        assert_eq!(s.p99, 5_000.0, "2 of 101 above: p99 sees it");
    }

    #[test]
    fn summary_ignores_order_and_nan() {
        let s = Summary::of(&[3.0, f64::NAN, 1.0, 2.0, 4.0]).unwrap();
        assert_eq!(s.count, 4);
        assert_eq!(s.min, 1.0);
        assert_eq!(s.max, 4.0);
        assert_eq!(s.mean, 2.5);
        assert_eq!(s.p50, 2.0);
    }

    #[test]
    fn empty_summary_is_none() {
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[f64::NAN]), None);
    }

    #[test]
    fn intervals_of_a_series() {
        assert_eq!(
            intervals(&[0.0, 200.0, 450.0, 600.0]),
            vec![200.0, 250.0, 150.0]
        );
        assert!(intervals(&[5.0]).is_empty());
        assert!(intervals(&[]).is_empty());
    }
}
