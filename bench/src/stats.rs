//! Order statistics of timings.

use std::time::Duration;

/// Samples of one measured thing.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    values: Vec<Duration>,
}

impl Samples {
    pub fn push(&mut self, d: Duration) {
        self.values.push(d);
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut v = self.values.clone();
        v.sort_unstable();
        v
    }

    /// Nearest-rank percentile (`p` in 0..=100); zero when empty.
    pub fn percentile(&self, p: f64) -> Duration {
        let v = self.sorted();
        if v.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    }

    /// The median (mean of the two middle values for an even count).
    pub fn median(&self) -> Duration {
        let v = self.sorted();
        match v.len() {
            0 => Duration::ZERO,
            n if !n.is_multiple_of(2) => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
    }

    pub fn min(&self) -> Duration {
        self.values.iter().copied().min().unwrap_or_default()
    }

    pub fn max(&self) -> Duration {
        self.values.iter().copied().max().unwrap_or_default()
    }

    /// `median_ms=.. p10_ms=.. p90_ms=.. min_ms=.. max_ms=.. n=..`
    pub fn summary(&self) -> String {
        format!(
            "median_ms={:.1} p10_ms={:.1} p90_ms={:.1} min_ms={:.1} max_ms={:.1} n={}",
            ms(self.median()),
            ms(self.percentile(10.0)),
            ms(self.percentile(90.0)),
            ms(self.min()),
            ms(self.max()),
            self.len()
        )
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// a / b of two medians, as printed on a `ratio` line.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        f64::NAN
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

/// The order of the two sides in round `i`: ABBA, so a drift of the machine
/// during the run weighs on both sides alike.
pub fn a_first(i: usize) -> bool {
    matches!(i % 4, 0 | 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(ms: &[u64]) -> Samples {
        let mut s = Samples::default();
        for m in ms {
            s.push(Duration::from_millis(*m));
        }
        s
    }

    #[test]
    fn median_and_percentiles() {
        let s = samples(&[5, 1, 3, 2, 4]);
        assert_eq!(s.median(), Duration::from_millis(3));
        assert_eq!(s.percentile(99.0), Duration::from_millis(5));
        assert_eq!(s.percentile(50.0), Duration::from_millis(3));
        assert_eq!(s.percentile(0.0), Duration::from_millis(1));
        assert_eq!(samples(&[1, 2, 3, 4]).median(), Duration::from_micros(2500));
        assert_eq!(Samples::default().median(), Duration::ZERO);
    }

    #[test]
    fn abba_order() {
        let order: Vec<bool> = (0..8).map(a_first).collect();
        assert_eq!(order, [true, false, false, true, true, false, false, true]);
    }
}
