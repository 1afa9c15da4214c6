//! `results.json`: what a finished run found, including the paper's "time to fit".

use super::config::TrainConfig;
use super::metrics::EpochMetrics;
use crate::atomic::write_atomic;
use crate::data::download::hex;
use crate::data::prepared::PreparedData;
use anyhow::Result;
use md5::{Digest, Md5};
use serde::Serialize;
use std::path::Path;

/// When the train accuracy first reached `--stop-at-train-acc` (Figure 1b of the paper).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeToFit {
    /// The threshold, in percent.
    pub threshold: f64,
    /// First (0-based) epoch whose train accuracy reached it.
    pub epoch: usize,
    /// SGD steps taken up to the end of that epoch.
    pub steps: usize,
}

/// The summary written at the end of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunResults {
    /// Experiment name.
    pub experiment: String,
    /// The randomization test that ran.
    pub randomize: &'static str,
    /// Trainable parameters.
    pub param_count: usize,
    /// Number of epochs the run was asked for (`--epochs`): a sweep treats the run as finished
    /// when its results were written for at least the epochs the sweep asks.
    pub epochs_planned: usize,
    /// Number of completed epochs.
    pub epochs_completed: usize,
    /// SGD steps per epoch (training examples / batch size, rounded up).
    pub steps_per_epoch: usize,
    /// Metrics of the last epoch.
    pub last: Option<EpochMetrics>,
    /// Highest validation accuracy over the epochs.
    pub best_val_acc: Option<f64>,
    /// When `--stop-at-train-acc` was reached (absent if not asked or not reached).
    pub time_to_fit: Option<TimeToFit>,
}

impl RunResults {
    /// Summarises `history`; `steps_per_epoch` converts epochs to SGD steps.
    pub fn new(
        config: &TrainConfig,
        experiment: &str,
        param_count: usize,
        history: &[EpochMetrics],
        steps_per_epoch: usize,
    ) -> Self {
        let time_to_fit = config.stop_at_train_acc.and_then(|threshold| {
            history.iter().find(|m| m.train_acc >= threshold).map(|m| TimeToFit {
                threshold,
                epoch: m.epoch,
                steps: (m.epoch + 1) * steps_per_epoch,
            })
        });
        Self {
            experiment: experiment.to_string(),
            randomize: config.randomize.name(),
            param_count,
            epochs_planned: config.epochs,
            epochs_completed: history.len(),
            steps_per_epoch,
            last: history.last().cloned(),
            best_val_acc: history.iter().map(|m| m.val_acc).reduce(f64::max),
            time_to_fit,
        }
    }

    /// Writes the results atomically as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("results serialise");
        write_atomic(path, json.as_bytes())
    }
}

/// MD5 of the training and validation data a run sees (images after randomization and the
/// effective labels): a resumed run must see exactly the same data.
pub fn data_fingerprint(data: &PreparedData) -> String {
    let mut hasher = Md5::new();
    for split in [&data.train, &data.val] {
        hasher.update(&split.images.images);
        hasher.update(&split.labels);
        hasher.update(split.corrupted.iter().map(|&c| c as u8).collect::<Vec<_>>());
    }
    hex(&hasher.finalize())
}
