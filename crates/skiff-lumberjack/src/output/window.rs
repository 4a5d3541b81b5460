//! The window size of `slow_start`, as libbeat's Logstash output adapts it: start at 10 events,
//! grow by half after every fully acknowledged batch (never above the largest size that
//! succeeded before until it succeeds, never above `bulk_max_size`), halve it after an error.

/// The smallest window.
const MIN: usize = 1;
/// The first window with `slow_start`.
const START: usize = 10;

/// The adaptive window.
#[derive(Debug, Clone)]
pub struct Window {
    size: usize,
    max_ok: usize,
    max: usize,
}

impl Window {
    /// A window for `bulk_max_size`; fixed at `max` unless `slow_start`.
    pub fn new(slow_start: bool, max: usize) -> Self {
        let max = max.max(MIN);
        Window {
            size: if slow_start { START.min(max) } else { max },
            max_ok: 0,
            max,
        }
    }

    /// Events per window now.
    pub fn get(&self) -> usize {
        self.size
    }

    /// A batch of `batch` events was fully acknowledged.
    pub fn grow(&mut self, batch: usize) {
        if self.size > batch {
            return;
        }
        let grown = self.size + self.size.div_ceil(2);
        if self.max_ok < self.size {
            self.max_ok = self.size;
            self.size = if batch < grown {
                batch.max(self.size)
            } else {
                grown
            };
        } else if self.size < self.max_ok {
            self.size = grown.min(self.max_ok);
        }
        self.size = self.size.min(self.max);
    }

    /// Sending failed.
    pub fn shrink(&mut self) {
        self.size = (self.size / 2).max(MIN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_by_half_up_to_max_and_halves_on_errors() {
        let mut w = Window::new(true, 100);
        assert_eq!(w.get(), 10);
        let mut seen = vec![];
        for _ in 0..8 {
            w.grow(100);
            seen.push(w.get());
        }
        assert_eq!(seen, vec![15, 23, 35, 53, 80, 100, 100, 100]);
        w.shrink();
        assert_eq!(w.get(), 50);
        w.grow(100);
        assert_eq!(w.get(), 75);
        // A small batch does not grow the window past what it proved.
        let mut w = Window::new(true, 100);
        w.grow(4);
        assert_eq!(w.get(), 10);
        for _ in 0..10 {
            w.shrink();
        }
        assert_eq!(w.get(), 1);
        assert_eq!(Window::new(false, 2048).get(), 2048);
    }
}
