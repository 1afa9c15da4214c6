//! A training run: data → model → SGD epochs, with logging, checkpoints and resume.

use super::checkpoint::Checkpoint;
use super::config::{TrainConfig, ValLabels};
use super::epoch::{EpochContext, run_epoch};
use super::memorization::FitTracker;
use super::metrics::EpochMetrics;
use super::results::{RunResults, data_fingerprint};
use super::run_dir::{RunDir, experiment_name};
use super::sgd::{Sgd, SgdConfig};
use crate::atomic::write_atomic;
use crate::data::batch::InputPipeline;
use crate::data::prepared::{LabelPlan, PreparedData, prepare};
use crate::data::randomize::randomize_inputs;
use crate::data::source::{DataRequest, load_splits};
use crate::data::synthetic::SyntheticSpec;
use crate::model::params::load_named_tensors;
use crate::model::{Model, named_tensors, trainable_param_count};
use crate::npy::npy_u8;
use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use std::path::{Path, PathBuf};

/// How a run is carried out, beyond the settings that determine its numbers: the run-management
/// flags of `rethink train` (not saved in `config.json`).
#[derive(Debug, Clone, clap::Args)]
pub struct RunOptions {
    /// Root directory of runs; each run writes runs/<experiment>/.
    #[arg(long, default_value = "runs")]
    pub out: PathBuf,
    /// Continue the run from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Name of the run directory under --out [default: the experiment name].
    #[arg(long, value_name = "NAME")]
    pub run_name: Option<String>,
    /// Where a missing dataset is downloaded from.
    #[command(flatten)]
    pub download: DownloadOptions,
    /// Show the progress bar (on stderr, when it is a terminal); `--no-progress` hides it.
    #[arg(long = "no-progress", action = clap::ArgAction::SetFalse, help = "Hide the progress bar")]
    pub progress: bool,
}

/// Whether and from where a missing dataset is downloaded (`--download`, `--download-url`,
/// `--download-md5`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DownloadOptions {
    /// Download the official archive into --data-dir if it is not there (MD5-checked).
    #[arg(id = "download", long = "download")]
    pub enabled: bool,
    /// Download from this URL instead of the official one (a mirror).
    #[arg(id = "download_url", long = "download-url", value_name = "URL")]
    pub url: Option<String>,
    /// Expected MD5 of the file at --download-url (default: the official archive's).
    #[arg(id = "download_md5", long = "download-md5", value_name = "HEX")]
    pub md5: Option<String>,
}

/// What a finished (or parameter-count-only) run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Experiment name.
    pub experiment: String,
    /// Run directory (none for `--epochs 0`).
    pub dir: Option<PathBuf>,
    /// Trainable parameter count.
    pub param_count: usize,
    /// Metrics of every epoch so far.
    pub history: Vec<EpochMetrics>,
}

/// The data request described by `config` and `options`.
pub fn data_request(config: &TrainConfig, options: &RunOptions) -> DataRequest {
    DataRequest {
        kind: config.data,
        dir: config.data_dir.clone(),
        download: options.download.enabled,
        url: options.download.url.clone(),
        md5: options.download.md5.clone(),
        synthetic: SyntheticSpec {
            train: config.synthetic_train,
            test: config.synthetic_test,
            num_classes: config.num_classes,
        },
        seed: config.seed,
        split_test_set: config.split_test_set,
    }
}

/// The input pipeline (preprocessing and normalisation) of a run.
pub fn input_pipeline(config: &TrainConfig) -> InputPipeline {
    InputPipeline { preprocess: config.preprocess, norm: config.data.normalization() }
}

/// Loads the data and applies the input randomization, subsets and label corruption as
/// `config` says. Everything random is drawn here, once, from the seeds.
pub fn prepare_data(config: &TrainConfig, options: &RunOptions) -> Result<PreparedData> {
    let mut splits = load_splits(&data_request(config, options))?;
    randomize_inputs(&mut splits, config.randomize, config.seed);
    let plan = LabelPlan {
        train_size: config.train_size,
        val_size: config.val_size,
        corrupt_prob: config.label_corrupt_prob,
        corrupt_seed: config.corrupt_seed,
        corrupt_val: config.val_labels == ValLabels::Corrupted,
    };
    prepare(&splits, config.num_classes, &plan)
}

/// Runs `rethink train`.
pub fn train(config: &TrainConfig, options: &RunOptions) -> Result<RunSummary> {
    config.validate()?;
    if let Some(name) = &options.run_name
        && (name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']))
    {
        bail!("--run-name {name:?} must be a plain directory name");
    }
    // The device first: a missing GPU is reported before minutes of data preparation.
    let eval_device = config.device.device()?;
    let device = eval_device.clone().autodiff();
    let data = prepare_data(config, options)?;
    let pipeline = input_pipeline(config);
    let spec = config.model_spec(pipeline.input_shape(&data.train.images))?;
    let model = Model::new(&spec, config.seed, &device)?;
    let param_count = trainable_param_count(&model);
    let experiment = experiment_name(config);
    if config.epochs == 0 {
        println!("Number of parameters: {param_count}");
        return Ok(RunSummary { experiment, dir: None, param_count, history: Vec::new() });
    }

    let mut run = RunDir::open(&options.out, options.run_name.as_deref().unwrap_or(&experiment))?;
    let fingerprint = data_fingerprint(&data);
    let mut state = TrainState {
        model,
        sgd: Sgd::new(SgdConfig { momentum: config.momentum, weight_decay: config.weight_decay }),
        history: Vec::new(),
        tracker: FitTracker::new(data.train.len()),
        next_epoch: 0,
    };
    if run.checkpoint_path().exists() {
        if !options.resume {
            bail!(
                "{} already holds a checkpoint: pass --resume to continue it, or choose another --name or --out",
                run.path.display()
            );
        }
        state = state.restore(&run.checkpoint_path(), config, &fingerprint, &device)?;
        // A run killed between its checkpoint and its log line: log the epochs it misses.
        run.catch_up_log(&state.history)?;
    } else if options.resume {
        eprintln!(
            "note: --resume found no checkpoint at {}: starting a new run from epoch 0",
            run.checkpoint_path().display()
        );
    }
    run.write_config(config, &experiment)?;
    let corrupted: Vec<u8> = data.train.corrupted.iter().map(|&c| c as u8).collect();
    write_atomic(&run.path.join("corrupted.npy"), &npy_u8(&corrupted))?;
    run.log(&format!("Number of parameters: {param_count}"))?;

    let ctx = EpochContext {
        config,
        data: &data,
        pipeline: &pipeline,
        device: device.clone(),
        eval_device,
        progress: options.progress,
    };
    for epoch in state.next_epoch..config.epochs {
        let fitted = |m: &EpochMetrics| config.stop_at_train_acc.is_some_and(|a| m.train_acc >= a);
        if state.history.last().is_some_and(fitted) {
            break;
        }
        let (model, outcome) = run_epoch(&ctx, state.model, &mut state.sgd, epoch)?;
        state.model = model;
        state.tracker.update(epoch, &outcome.train_correct);
        let line = outcome.metrics.log_line();
        state.history.push(outcome.metrics);
        state.next_epoch = epoch + 1;
        run.write_metrics(&state.history)?;
        state.tracker.save_npy(&run.path.join("fitted_epoch.npy"))?;
        state.save(&run.checkpoint_path(), config, &fingerprint)?;
        // Logged once the checkpoint holds the epoch: a run killed before that redoes the
        // epoch on resume, and its line appears once.
        run.log(&line)?;
    }
    let steps_per_epoch = data.train.len().div_ceil(config.batch_size);
    let results = RunResults::new(config, &experiment, param_count, &state.history, steps_per_epoch);
    results.save(&run.path.join("results.json"))?;
    if let Some(fit) = &results.time_to_fit {
        eprintln!("train accuracy reached {}% at epoch {} (step {})", fit.threshold, fit.epoch, fit.steps);
    }
    Ok(RunSummary { experiment, dir: Some(run.path), param_count, history: state.history })
}

/// Everything that evolves during a run and is saved in its checkpoint.
struct TrainState {
    model: Model,
    sgd: Sgd,
    history: Vec<EpochMetrics>,
    tracker: FitTracker,
    next_epoch: usize,
}

impl TrainState {
    /// Continues from the checkpoint at `path`, refusing one written with other settings, on
    /// other data, or for another model.
    fn restore(mut self, path: &Path, config: &TrainConfig, fingerprint: &str, device: &Device) -> Result<Self> {
        let ckpt = Checkpoint::load(path)?;
        let saved = TrainConfig::without_resume_free(ckpt.get("config")?);
        if saved != config.resume_key() {
            bail!(
                "checkpoint {} was written with other settings ({}); resume with the same flags (only --epochs, --data-dir and --device may change)",
                path.display(),
                first_difference(&saved, &config.resume_key())
            );
        }
        if ckpt.get::<String>("data_fingerprint")? != fingerprint {
            bail!(
                "checkpoint {} was trained on other data (the dataset files or their randomization differ)",
                path.display()
            );
        }
        self.model = load_named_tensors(self.model, ckpt.model.clone())
            .with_context(|| format!("checkpoint {} does not fit this model", path.display()))?;
        self.sgd.load_state(ckpt.velocity.clone(), device);
        self.history = ckpt.get("history")?;
        self.tracker = ckpt.get("fit_tracker")?;
        self.next_epoch = ckpt.next_epoch;
        Ok(self)
    }

    /// Writes the end-of-epoch checkpoint: model, momentum buffers, epoch, history,
    /// memorization state, and what a resume must match.
    fn save(&self, path: &Path, config: &TrainConfig, fingerprint: &str) -> Result<()> {
        let mut ckpt = Checkpoint {
            next_epoch: self.next_epoch,
            model: named_tensors(&self.model).into_iter().map(|t| (t.name, t.data)).collect(),
            velocity: self.sgd.state(),
            meta: Default::default(),
        };
        ckpt.put("config", &config.resume_key());
        ckpt.put("history", &self.history);
        ckpt.put("fit_tracker", &self.tracker);
        ckpt.put("data_fingerprint", &fingerprint);
        ckpt.put("seed", &config.seed);
        ckpt.save(path)
    }
}

/// The first top-level setting where two configs differ, as `key: saved vs now`.
pub fn first_difference(saved: &serde_json::Value, now: &serde_json::Value) -> String {
    let empty = serde_json::Map::new();
    let (a, b) = (saved.as_object().unwrap_or(&empty), now.as_object().unwrap_or(&empty));
    a.keys()
        .chain(b.keys())
        .find(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&serde_json::Value>| v.map_or("none".to_string(), |v| v.to_string());
            format!("{k}: {} in the checkpoint vs {} now", show(a.get(k)), show(b.get(k)))
        })
        .unwrap_or_else(|| "unknown difference".into())
}
