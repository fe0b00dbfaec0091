//! A fixed-capacity sliding window of timed samples (fsync latencies, event-loop lags,
//! write errors): bounded memory whatever the rate, summarised over the last N ms.

/// Timed samples, oldest overwritten first once `capacity` is reached.
#[derive(Clone, Debug)]
pub struct Window {
    /// (at_ms, value), a ring.
    samples: Vec<(u64, f64)>,
    next: usize,
    capacity: usize,
}

impl Window {
    pub fn new(capacity: usize) -> Window {
        let capacity = capacity.max(1);
        Window { samples: Vec::with_capacity(capacity), next: 0, capacity }
    }

    pub fn push(&mut self, at_ms: u64, value: f64) {
        if self.samples.len() < self.capacity {
            self.samples.push((at_ms, value));
        } else {
            self.samples[self.next] = (at_ms, value);
        }
        self.next = (self.next + 1) % self.capacity;
    }

    fn recent(&self, now_ms: u64, window_ms: u64) -> impl Iterator<Item = f64> + '_ {
        let since = now_ms.saturating_sub(window_ms);
        self.samples.iter().filter(move |(at, _)| *at >= since).map(|(_, v)| *v)
    }

    /// Samples within the window.
    pub fn count(&self, now_ms: u64, window_ms: u64) -> usize {
        self.recent(now_ms, window_ms).count()
    }

    /// Largest value within the window.
    pub fn max(&self, now_ms: u64, window_ms: u64) -> Option<f64> {
        self.recent(now_ms, window_ms).reduce(f64::max)
    }

    /// Samples within the window above `threshold`.
    pub fn count_over(&self, now_ms: u64, window_ms: u64, threshold: f64) -> usize {
        self.recent(now_ms, window_ms).filter(|v| *v > threshold).count()
    }

    /// The `q` quantile (0..=1, nearest rank) of the values within the window.
    pub fn quantile(&self, now_ms: u64, window_ms: u64, q: f64) -> Option<f64> {
        let mut values: Vec<f64> = self.recent(now_ms, window_ms).collect();
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let rank = ((q.clamp(0.0, 1.0) * values.len() as f64).ceil() as usize).clamp(1, values.len());
        Some(values[rank - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_cover_only_the_window() {
        let mut w = Window::new(8);
        for (at, v) in [(0, 500.0), (1_000, 1.0), (1_100, 2.0), (1_200, 3.0)] {
            w.push(at, v);
        }
        assert_eq!(w.count(1_200, 300), 3, "the sample at 0 ms is outside");
        assert_eq!(w.max(1_200, 300), Some(3.0));
        assert_eq!(w.max(1_200, 2_000), Some(500.0));
        assert_eq!(w.count_over(1_200, 300, 1.5), 2);
        assert_eq!(w.quantile(5_000, 100, 0.99), None, "nothing recent");
    }

    #[test]
    fn p99_is_nearest_rank() {
        let mut w = Window::new(200);
        for i in 1..=100 {
            w.push(10, i as f64);
        }
        assert_eq!(w.quantile(10, 100, 0.99), Some(99.0));
        assert_eq!(w.quantile(10, 100, 0.5), Some(50.0));
        assert_eq!(w.quantile(10, 100, 1.0), Some(100.0));
    }

    #[test]
    fn capacity_bounds_memory_and_drops_the_oldest() {
        let mut w = Window::new(3);
        for i in 0..10u64 {
            w.push(i, i as f64);
        }
        assert_eq!(w.count(9, 100), 3);
        assert_eq!(w.quantile(9, 100, 0.0), Some(7.0), "0..=6 were overwritten");
    }
}
