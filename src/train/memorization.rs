//! Per-example memorization: accuracy on corrupted vs clean training examples, and for every
//! training example the first epoch from which it stayed fitted — the curve that shows clean
//! examples learned first and noisy ones memorized later.

use crate::atomic::write_atomic;
use crate::npy::npy_i64;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Tracks, for every training example, since which epoch it has been predicted correctly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitTracker {
    /// First epoch of the current run of correct predictions, or −1 if wrong at the last epoch.
    pub fitted_since: Vec<i64>,
}

/// Train accuracy split by whether the corruption mask drew the example.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitAccuracy {
    /// Accuracy (percent) on examples whose label the mask drew; `None` if there are none.
    pub corrupted: Option<f64>,
    /// Accuracy (percent) on the other examples; `None` if there are none.
    pub clean: Option<f64>,
}

impl FitTracker {
    /// A tracker for `n` examples, none fitted yet.
    pub fn new(n: usize) -> Self {
        Self { fitted_since: vec![-1; n] }
    }

    /// Records which examples are predicted correctly (on their training labels) after `epoch`.
    pub fn update(&mut self, epoch: usize, correct: &[bool]) {
        for (since, &ok) in self.fitted_since.iter_mut().zip(correct) {
            *since = match (ok, *since) {
                (false, _) => -1,
                (true, -1) => epoch as i64,
                (true, e) => e,
            };
        }
    }

    /// Writes `fitted_since` as a little-endian int64 `.npy` vector.
    pub fn save_npy(&self, path: &Path) -> Result<()> {
        write_atomic(path, &npy_i64(&self.fitted_since))
    }
}

/// Accuracy on the corrupted and on the clean examples, given per-example correctness.
pub fn split_accuracy(correct: &[bool], corrupted: &[bool]) -> SplitAccuracy {
    let rate = |want: bool| {
        let (hits, n) = correct
            .iter()
            .zip(corrupted)
            .filter(|(_, c)| **c == want)
            .fold((0usize, 0usize), |(h, n), (ok, _)| (h + *ok as usize, n + 1));
        (n > 0).then(|| 100.0 * hits as f64 / n as f64)
    };
    SplitAccuracy { corrupted: rate(true), clean: rate(false) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_the_start_of_the_last_correct_run() {
        let mut t = FitTracker::new(3);
        t.update(0, &[true, false, true]);
        t.update(1, &[true, true, false]);
        t.update(2, &[true, true, true]);
        assert_eq!(t.fitted_since, vec![0, 1, 2]);
        t.update(3, &[false, true, true]);
        assert_eq!(t.fitted_since, vec![-1, 1, 2]);
    }

    #[test]
    fn splits_accuracy_by_mask() {
        let s = split_accuracy(&[true, false, true, true], &[true, true, false, false]);
        assert_eq!(s.corrupted, Some(50.0));
        assert_eq!(s.clean, Some(100.0));
        assert_eq!(split_accuracy(&[true], &[false]).corrupted, None);
    }
}
