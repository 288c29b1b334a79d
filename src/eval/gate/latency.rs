//! Per-image latency over every timed run of a model.
use crate::eval::model::median;
use serde::{Deserialize, Serialize};

/// Per-image latency over all timed runs.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Latency {
    pub samples: usize,
    pub median_ms: f64,
    pub p10_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(samples: &[f64]) -> Latency {
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        // Nearest rank: the sample below which q of the samples lie.
        let q = |q: f64| s.get(((q * s.len() as f64).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0);
        Latency {
            samples: s.len(),
            median_ms: median(&s),
            p10_ms: q(0.1),
            p90_ms: q(0.9),
            min_ms: s.first().copied().unwrap_or(0.0),
            max_ms: s.last().copied().unwrap_or(0.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Latency;

    #[test]
    fn nearest_rank_percentiles_and_the_upper_median() {
        let l = Latency::of(&[5.0, 1.0, 4.0, 2.0, 3.0, 10.0, 6.0, 7.0, 9.0, 8.0]);
        assert_eq!((l.samples, l.median_ms, l.p10_ms, l.p90_ms, l.min_ms, l.max_ms), (10, 6.0, 1.0, 9.0, 1.0, 10.0));
        let none = Latency::of(&[]);
        assert_eq!((none.samples, none.median_ms, none.p90_ms), (0, 0.0, 0.0));
    }
}
