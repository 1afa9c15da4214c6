//! Per-epoch numbers: the demo's log line and the run's `metrics.csv`.

use serde::{Deserialize, Serialize};

/// What one epoch produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 0-based epoch.
    pub epoch: usize,
    /// Learning rate used in the epoch.
    pub lr: f64,
    /// Train loss (full train set in eval mode, or the epoch's running mini-batch average).
    pub train_loss: f64,
    /// Train accuracy in percent, on the labels the model is trained on.
    pub train_acc: f64,
    /// Train accuracy (percent) on the examples whose label the corruption mask drew.
    #[serde(default)]
    pub train_acc_corrupted: Option<f64>,
    /// Train accuracy (percent) on the examples whose label was kept.
    #[serde(default)]
    pub train_acc_clean: Option<f64>,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy in percent.
    pub val_acc: f64,
    /// Wall-clock seconds of the epoch (training and evaluation).
    pub seconds: f64,
    /// SGD steps taken since the start of the run, up to the end of this epoch (the x axis of
    /// the paper's Figure 1a and the step of the TensorBoard scalars). 0 in checkpoints written
    /// before the field existed.
    #[serde(default)]
    pub steps: usize,
}

impl EpochMetrics {
    /// The demo's line: `%03d: Acc-tr: %6.2f, Acc-val: %6.2f, L-tr: %6.4f, L-val: %6.4f`,
    /// followed — only when some but not all labels are corrupted — by the train accuracy on
    /// the corrupted and on the clean examples.
    pub fn log_line(&self) -> String {
        let mut line = format!(
            "{:03}: Acc-tr: {:6.2}, Acc-val: {:6.2}, L-tr: {:6.4}, L-val: {:6.4}",
            self.epoch, self.train_acc, self.val_acc, self.train_loss, self.val_loss
        );
        if let (Some(corrupted), Some(clean)) = (self.train_acc_corrupted, self.train_acc_clean) {
            line.push_str(&format!(", Acc-tr-corrupted: {corrupted:6.2}, Acc-tr-clean: {clean:6.2}"));
        }
        line
    }
}

/// Header of `metrics.csv`.
pub const CSV_HEADER: &str =
    "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds,train_acc_corrupted,train_acc_clean,steps";

/// The whole `metrics.csv` for a run's history.
pub fn to_csv(history: &[EpochMetrics]) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for m in history {
        out.push_str(&format!(
            "{},{},{},{},{},{},{:.3},{},{},{}\n",
            m.epoch,
            m.lr,
            m.train_loss,
            m.train_acc,
            m.val_loss,
            m.val_acc,
            m.seconds,
            cell(m.train_acc_corrupted),
            cell(m.train_acc_clean),
            m.steps
        ));
    }
    out
}

/// Running sums of loss and correct predictions over examples.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Sum of per-example losses.
    pub loss_sum: f64,
    /// Number of correct top-1 predictions.
    pub correct: usize,
    /// Number of examples.
    pub count: usize,
}

impl Tally {
    /// Adds a batch: its mean loss, its correct count and its size (batch-size weighted).
    pub fn add(&mut self, mean_loss: f64, correct: usize, count: usize) {
        self.loss_sum += mean_loss * count as f64;
        self.correct += correct;
        self.count += count;
    }

    /// Mean loss per example.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.count.max(1) as f64
    }

    /// Top-1 accuracy in percent.
    pub fn accuracy(&self) -> f64 {
        100.0 * self.correct as f64 / self.count.max(1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_line_matches_the_demo_format() {
        let m = EpochMetrics {
            epoch: 7,
            lr: 0.1,
            train_loss: 2.31054,
            train_acc: 10.3,
            train_acc_corrupted: None,
            train_acc_clean: None,
            val_loss: 2.3129,
            val_acc: 9.91,
            seconds: 1.0,
            steps: 8,
        };
        assert_eq!(m.log_line(), "007: Acc-tr:  10.30, Acc-val:   9.91, L-tr: 2.3105, L-val: 2.3129");
        let m = EpochMetrics { epoch: 154, train_acc: 100.0, val_loss: 10.29, ..m };
        assert_eq!(m.log_line(), "154: Acc-tr: 100.00, Acc-val:   9.91, L-tr: 2.3105, L-val: 10.2900");
        let m = EpochMetrics { train_acc_corrupted: Some(55.5), train_acc_clean: Some(99.0), ..m };
        assert!(m.log_line().ends_with("L-val: 10.2900, Acc-tr-corrupted:  55.50, Acc-tr-clean:  99.00"));
    }

    #[test]
    fn tally_weights_by_batch_size() {
        let mut t = Tally::default();
        t.add(1.0, 3, 4);
        t.add(4.0, 0, 2);
        assert!((t.loss() - 2.0).abs() < 1e-12);
        assert!((t.accuracy() - 50.0).abs() < 1e-12);
    }
}
