//! The typed settings of a training run, saved as `config.json` next to every run.

use crate::data::batch::Preprocess;
use crate::data::randomize::Randomization;
use crate::data::source::DataKind;
use crate::device::Backend;
use crate::model::{Arch, ModelSpec, WrnSpec, parse_mlp_spec};
use crate::train::schedule::LrSchedule;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which labels the validation (test) split is scored against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValLabels {
    /// The true test labels — the paper's measure of generalisation.
    Clean,
    /// Test labels corrupted like the train labels — what the demo reports.
    Corrupted,
}

/// Every setting that determines a run's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Dataset.
    pub data: DataKind,
    /// Directory holding the dataset files.
    pub data_dir: PathBuf,
    /// Synthetic dataset: number of train images.
    pub synthetic_train: usize,
    /// Synthetic dataset: number of test images.
    pub synthetic_test: usize,
    /// Use only the first N training examples (all if unset).
    pub train_size: Option<usize>,
    /// Use only the first N validation examples (all if unset).
    pub val_size: Option<usize>,
    /// Train on the first N test examples and validate on the rest (only the test files are read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_test_set: Option<usize>,
    /// Number of classes.
    pub num_classes: usize,
    /// Which randomization test runs (labels, shuffled/random pixels, Gaussian, or none).
    #[serde(default)]
    pub randomize: Randomization,
    /// Input preprocessing: the demo's normalisation or the paper's crop + whitening.
    #[serde(default)]
    pub preprocess: Preprocess,
    /// Random crop (4-pixel zero padding) and horizontal flip of training images.
    pub data_augmentation: bool,
    /// Probability that a training label is replaced by a uniform random class.
    pub label_corrupt_prob: f64,
    /// Seed of numpy's legacy generator for label corruption (the demo's 12345).
    pub corrupt_seed: u32,
    /// Labels the validation split is scored against.
    pub val_labels: ValLabels,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Number of epochs.
    pub epochs: usize,
    /// Base learning rate.
    pub learning_rate: f64,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// SGD momentum (PyTorch convention).
    pub momentum: f64,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
    /// Re-evaluate the full train set in eval mode after each epoch.
    pub eval_full_trainset: bool,
    /// Architecture.
    pub arch: Arch,
    /// Wide ResNet depth (6n+4).
    pub wrn_depth: usize,
    /// Wide ResNet widen factor.
    pub wrn_widen_factor: usize,
    /// Wide ResNet dropout rate.
    pub wrn_droprate: f64,
    /// MLP hidden widths joined by `x`.
    pub mlp_spec: String,
    /// MLP layers have biases (the paper's MLPs); off by default like the demo's.
    ///
    /// Left out of the JSON when off, so configs and checkpoints written before the flag existed
    /// still match on `--resume`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mlp_bias: bool,
    /// Experiment name prefix.
    pub name: String,
    /// Stop at the first epoch whose train accuracy (percent) reaches this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at_train_acc: Option<f64>,
    /// Seed of model initialisation, shuffling, augmentation, dropout and synthetic data.
    pub seed: u64,
    /// Compute backend.
    pub backend: Backend,
}

impl TrainConfig {
    /// Checks every value a flag can get wrong, naming the flag in the error.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::bail;
        if !(0.0..=1.0).contains(&self.label_corrupt_prob) {
            bail!("--label-corrupt-prob {} is outside [0, 1]", self.label_corrupt_prob);
        }
        if !(2..=256).contains(&self.num_classes) {
            bail!("--num-classes {} must be between 2 and 256", self.num_classes);
        }
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            bail!("--learning-rate {} must be a positive number", self.learning_rate);
        }
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            bail!("--momentum {} must be in [0, 1)", self.momentum);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay {} must be a non-negative number", self.weight_decay);
        }
        if !(0.0..1.0).contains(&self.wrn_droprate) {
            bail!("--wrn-droprate {} must be in [0, 1)", self.wrn_droprate);
        }
        if self.wrn_widen_factor == 0 {
            bail!("--wrn-widen-factor must be at least 1");
        }
        if matches!(self.train_size, Some(0)) || matches!(self.val_size, Some(0)) {
            bail!("--train-size and --val-size must be at least 1");
        }
        if self.data == DataKind::Synthetic && (self.synthetic_train == 0 || self.synthetic_test == 0) {
            bail!("--synthetic-train and --synthetic-test must be at least 1");
        }
        self.lr_schedule.validate()?;
        if let Some(acc) = self.stop_at_train_acc
            && !(acc > 0.0 && acc <= 100.0)
        {
            bail!("--stop-at-train-acc {acc} must be in (0, 100]");
        }
        if matches!(self.split_test_set, Some(0)) {
            bail!("--split-test-set must be at least 1");
        }
        match self.randomize {
            Randomization::Labels if self.label_corrupt_prob == 0.0 => {
                bail!("--randomize labels needs --label-corrupt-prob > 0 (1.0 = random labels)")
            }
            Randomization::None if self.label_corrupt_prob > 0.0 => {
                bail!("--randomize none contradicts --label-corrupt-prob {}", self.label_corrupt_prob)
            }
            _ => {}
        }
        self.wrn().blocks_per_group()?;
        parse_mlp_spec(&self.mlp_spec)?;
        Ok(())
    }

    /// The Wide ResNet shape these settings ask for.
    pub fn wrn(&self) -> WrnSpec {
        WrnSpec { depth: self.wrn_depth, widen_factor: self.wrn_widen_factor, droprate: self.wrn_droprate }
    }

    /// The network to build for images of shape `[C, H, W]`.
    pub fn model_spec(&self, input: [usize; 3]) -> anyhow::Result<ModelSpec> {
        Ok(ModelSpec {
            arch: self.arch,
            wrn: self.wrn(),
            mlp_hidden: parse_mlp_spec(&self.mlp_spec)?,
            mlp_bias: self.mlp_bias,
            input,
            num_classes: self.num_classes,
        })
    }

    /// The settings a resumed run must share with the checkpoint: all but the epoch count and
    /// the data directory (the data may move; the number of epochs may be extended).
    pub fn resume_key(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).expect("config serialises");
        if let Some(map) = value.as_object_mut() {
            map.remove("epochs");
            map.remove("data_dir");
        }
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::TrainArgs;

    fn config(args: &[&str]) -> TrainConfig {
        TrainArgs::parse_args(args).into_config().0
    }

    #[test]
    fn mlp_bias_reaches_the_model_and_keeps_old_configs_resumable() {
        let plain = config(&[]);
        assert!(!plain.mlp_bias && !plain.model_spec([3, 32, 32]).unwrap().mlp_bias);
        assert!(plain.resume_key().get("mlp_bias").is_none());
        let mut old = serde_json::to_value(&plain).unwrap();
        old.as_object_mut().unwrap().remove("mlp_bias");
        assert_eq!(serde_json::from_value::<TrainConfig>(old).unwrap(), plain);

        let biased = config(&["--mlp-bias"]);
        assert!(biased.model_spec([3, 32, 32]).unwrap().mlp_bias);
        assert_eq!(biased.resume_key()["mlp_bias"], serde_json::Value::Bool(true));
    }
}
