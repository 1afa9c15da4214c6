//! Per-example memorization: accuracy on corrupted vs clean training examples, and for every
//! training example the first epoch from which it stayed fitted — the curve that shows clean
//! examples learned first and noisy ones memorized later.

use crate::atomic::write_atomic;
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

/// A 1-D `.npy` file (format 1.0) of little-endian int64 values.
pub fn npy_i64(values: &[i64]) -> Vec<u8> {
    npy("<i8", values.len(), &values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>())
}

/// A 1-D `.npy` file (format 1.0) of bytes (numpy `|u1`), e.g. a 0/1 mask.
pub fn npy_u8(values: &[u8]) -> Vec<u8> {
    npy("|u1", values.len(), values)
}

fn npy(descr: &str, len: usize, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({len},), }}");
    // Magic (6) + version (2) + header length (2) + header, padded to a multiple of 64 with a
    // final newline.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
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

    #[test]
    fn npy_layout_is_numpy_format_1() {
        let bytes = npy_i64(&[-1, 2, 3]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.starts_with("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(&bytes[10 + header_len..10 + header_len + 8], &(-1i64).to_le_bytes());
        assert_eq!(bytes.len(), 10 + header_len + 24);
    }
}
