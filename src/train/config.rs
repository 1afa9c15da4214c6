//! The typed settings of a training run, saved as `config.json` next to every run.

use crate::data::batch::Preprocess;
use crate::data::randomize::Randomization;
use crate::data::source::DataKind;
use crate::device::DeviceSpec;
use crate::model::{Arch, ModelSpec, WrnSpec, parse_mlp_spec};
use crate::train::schedule::{LrSchedule, ScheduleKind};
use clap::Args;
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

/// Every setting that determines a run's numbers: both the `rethink train` flags (clap, flattened
/// into [`crate::cli::TrainArgs`]) and the saved `config.json` / checkpoint resume key (serde).
///
/// A new setting is added here once. The field order is the order of `config.json`'s keys. The
/// settings marked `#[arg(skip)]` have a command-line form that differs from the saved one; they
/// are filled by [`DerivedFlags::resolve`] after parsing.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Dataset.
    #[arg(long, value_enum, default_value = "cifar10")]
    pub data: DataKind,
    /// Directory with the dataset files (CIFAR-10: data_batch_1.bin … test_batch.bin, the
    /// cifar-10-batches-bin/ folder or cifar-10-binary.tar.gz).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Number of training images of --data synthetic.
    #[arg(long, default_value_t = 2000)]
    pub synthetic_train: usize,
    /// Number of test images of --data synthetic.
    #[arg(long, default_value_t = 500)]
    pub synthetic_test: usize,
    /// Use only the first N training examples.
    #[arg(long, value_name = "N")]
    pub train_size: Option<usize>,
    /// Use only the first N validation (test) examples.
    #[arg(long, value_name = "N")]
    pub val_size: Option<usize>,
    /// Train on the first N examples of the test files and validate on the rest (reads only the
    /// test files, e.g. the MNIST t10k set alone).
    #[arg(long, value_name = "N")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_test_set: Option<usize>,
    /// Number of classes (`--num-classes`, resolved from the dataset by default).
    #[arg(skip)]
    pub num_classes: usize,
    /// Which randomization test runs (`--randomize`, resolved from the label corruption by
    /// default).
    #[arg(skip)]
    #[serde(default)]
    pub randomize: Randomization,
    /// Input preprocessing: demo (per-channel normalisation) or paper (centre 28×28 crop +
    /// per-image whitening).
    #[arg(long, value_enum, default_value = "demo")]
    #[serde(default)]
    pub preprocess: Preprocess,
    /// Random crop (4-pixel zero padding) and horizontal flip of training images.
    #[arg(long, overrides_with = "no_data_augmentation")]
    pub data_augmentation: bool,
    /// Probability that a training label is replaced by a uniform random class.
    #[arg(long, default_value_t = 0.0, value_name = "P", allow_negative_numbers = true)]
    pub label_corrupt_prob: f64,
    /// Seed of numpy's legacy generator used for label corruption (the demo's 12345).
    #[arg(long, default_value_t = crate::data::corrupt::DEMO_CORRUPTION_SEED)]
    pub corrupt_seed: u32,
    /// Score validation against the clean test labels (the paper) or corrupted ones (the demo).
    #[arg(long, value_enum, default_value = "clean")]
    pub val_labels: ValLabels,
    /// Mini-batch size.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Number of epochs (0: build data and model, print the parameter count, exit).
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub learning_rate: f64,
    /// Learning-rate schedule (`--lr-schedule` with `--lr-decay`).
    #[arg(skip = LrSchedule::Step)]
    pub lr_schedule: LrSchedule,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f64,
    /// L2 weight decay, added to the gradient.
    #[arg(long, default_value_t = 1e-4, allow_negative_numbers = true)]
    pub weight_decay: f64,
    /// Re-evaluate the full train set in eval mode after each epoch (`--eval-full-trainset`,
    /// `--no-eval-full-trainset`).
    #[arg(skip)]
    pub eval_full_trainset: bool,
    /// Architecture: the demo's wide-resnet and mlp, the paper's inception, inception-nobn
    /// (no BatchNorm) and alexnet.
    #[arg(long, value_enum, default_value = "wide-resnet")]
    pub arch: Arch,
    /// Wide ResNet depth (6n+4).
    #[arg(long, default_value_t = 28)]
    pub wrn_depth: usize,
    /// Wide ResNet widen factor.
    #[arg(long, default_value_t = 1)]
    pub wrn_widen_factor: usize,
    /// Wide ResNet dropout rate between the two convolutions of a block.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub wrn_droprate: f64,
    /// MLP hidden widths joined by 'x', e.g. 512 or 512x128x512.
    #[arg(long, default_value = "512")]
    pub mlp_spec: String,
    /// Give the MLP's layers biases, as the paper's MLPs have (the demo's have none).
    // Left out of the JSON when off, so configs and checkpoints written before the flag existed
    // still match on `--resume`.
    #[arg(long)]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mlp_bias: bool,
    /// Prefix of the experiment name.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Stop at the first epoch whose train accuracy reaches A percent (time to fit).
    #[arg(long, value_name = "A", allow_negative_numbers = true)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_at_train_acc: Option<f64>,
    /// Seed of model init, shuffling, augmentation, dropout and synthetic data.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Compute device: cpu, wgpu[:N], vulkan[:N] or cuda[:N] (GPU ones need a build with that
    /// cargo feature; `rethink devices` lists them). A run may resume on another device.
    #[arg(long, default_value = "cpu", value_name = "DEVICE")]
    #[serde(alias = "backend")]
    pub device: DeviceSpec,
}

/// The `rethink train` flags whose saved setting is not the flag's value: defaults that depend on
/// other settings, `--x`/`--no-x` switch pairs, and the schedule built from two flags.
/// [`DerivedFlags::resolve`] turns them into the `#[arg(skip)]` fields of [`TrainConfig`].
#[derive(Debug, Clone, PartialEq, Args)]
pub struct DerivedFlags {
    /// Number of classes [default: the dataset's, 10 or 100 for cifar100].
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Randomization test [default: labels if --label-corrupt-prob > 0, else none].
    #[arg(long, value_enum)]
    pub randomize: Option<Randomization>,
    /// No data augmentation (the default).
    #[arg(long, overrides_with = "data_augmentation")]
    pub no_data_augmentation: bool,
    /// Learning-rate schedule: step (×0.1 from epoch 150, ×0.01 from 225) or exp (lr·decay^epoch).
    #[arg(long, value_enum, default_value = "step")]
    pub lr_schedule: ScheduleKind,
    /// Per-epoch factor of --lr-schedule exp (the paper's 0.95).
    #[arg(long, default_value_t = 0.95, allow_negative_numbers = true)]
    pub lr_decay: f64,
    /// After each epoch re-evaluate the whole train set in eval mode (the default).
    #[arg(long, overrides_with = "no_eval_full_trainset")]
    pub eval_full_trainset: bool,
    /// Report the running average over the epoch's mini-batches instead.
    #[arg(long, overrides_with = "eval_full_trainset")]
    pub no_eval_full_trainset: bool,
}

impl DerivedFlags {
    /// Fills the settings of `config` these flags determine (the only place they are resolved).
    pub fn resolve(&self, mut config: TrainConfig) -> TrainConfig {
        config.num_classes = self.num_classes.unwrap_or(config.data.num_classes());
        config.randomize = self.randomize.unwrap_or(if config.label_corrupt_prob > 0.0 {
            Randomization::Labels
        } else {
            Randomization::None
        });
        config.data_augmentation &= !self.no_data_augmentation;
        config.lr_schedule = LrSchedule::new(self.lr_schedule, self.lr_decay);
        config.eval_full_trainset = !self.no_eval_full_trainset;
        config
    }
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
        Self::without_resume_free(serde_json::to_value(self).expect("config serialises"))
    }

    /// A saved config without the settings a resume may change: the epochs, the data directory
    /// and the device (`backend` in configs written before `--device`).
    pub fn without_resume_free(mut value: serde_json::Value) -> serde_json::Value {
        if let Some(map) = value.as_object_mut() {
            for key in ["epochs", "data_dir", "device", "backend"] {
                map.remove(key);
            }
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
