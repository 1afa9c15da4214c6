//! The training loop: data → model → SGD epochs with evaluation, logging and checkpoints.

use super::checkpoint::Checkpoint;
use super::config::{TrainConfig, ValLabels};
use super::evaluate::{cross_entropy, evaluate, predictions};
use super::metrics::{EpochMetrics, Tally};
use super::progress::epoch_bar;
use super::run_dir::{RunDir, experiment_name};
use super::sgd::{Sgd, SgdConfig};
use super::memorization::{FitTracker, npy_u8, split_accuracy};
use super::results::{RunResults, data_fingerprint};
use crate::atomic::write_atomic;
use crate::data::batch::InputPipeline;
use crate::data::prefetch::prefetch;
use crate::data::prepared::{LabelPlan, PreparedData, prepare};
use crate::data::randomize::randomize_inputs;
use crate::data::source::{DataRequest, load_splits};
use crate::data::synthetic::SyntheticSpec;
use crate::model::params::load_named_tensors;
use crate::model::{Model, named_tensors, trainable_param_count};
use crate::rng::{self, Purpose};
use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor};
use rand::seq::SliceRandom;
use std::path::PathBuf;
use std::time::Instant;

/// How a run is carried out, beyond the settings that determine its numbers.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Root directory of runs (`runs`).
    pub out: PathBuf,
    /// Continue from the run's checkpoint.
    pub resume: bool,
    /// Download the dataset if missing.
    pub download: bool,
    /// Override of the dataset URL.
    pub download_url: Option<String>,
    /// Override of the dataset MD5.
    pub download_md5: Option<String>,
    /// Show the progress bar (on stderr, when it is a terminal).
    pub progress: bool,
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
        download: options.download,
        url: options.download_url.clone(),
        md5: options.download_md5.clone(),
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
    let data = prepare_data(config, options)?;
    let pipeline = input_pipeline(config);
    let spec = config.model_spec(pipeline.input_shape(&data.train.images))?;
    let device = config.backend.training_device();
    let eval_device = config.backend.device();
    let mut model = Model::new(&spec, config.seed, &device)?;
    let param_count = trainable_param_count(&model);
    let experiment = experiment_name(config);
    if config.epochs == 0 {
        println!("Number of parameters: {param_count}");
        return Ok(RunSummary { experiment, dir: None, param_count, history: Vec::new() });
    }

    let mut run = RunDir::open(&options.out, &experiment)?;
    let checkpoint_path = run.checkpoint_path();
    let fingerprint = data_fingerprint(&data);
    let mut sgd = Sgd::new(SgdConfig { momentum: config.momentum, weight_decay: config.weight_decay });
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut tracker = FitTracker::new(data.train.len());
    let mut start_epoch = 0;
    if checkpoint_path.exists() {
        if !options.resume {
            bail!(
                "{} already holds a checkpoint: pass --resume to continue it, or choose another --name or --out",
                run.path.display()
            );
        }
        let ckpt = Checkpoint::load(&checkpoint_path)?;
        let saved: serde_json::Value = ckpt.get("config")?;
        if saved != config.resume_key() {
            bail!(
                "checkpoint {} was written with other settings ({}); resume with the same flags (only --epochs and --data-dir may change)",
                checkpoint_path.display(),
                first_difference(&saved, &config.resume_key())
            );
        }
        if ckpt.get::<String>("data_fingerprint")? != fingerprint {
            bail!(
                "checkpoint {} was trained on other data (the dataset files or their randomization differ)",
                checkpoint_path.display()
            );
        }
        model = load_named_tensors(model, ckpt.model.clone())
            .with_context(|| format!("checkpoint {} does not fit this model", checkpoint_path.display()))?;
        sgd.load_state(ckpt.velocity.clone(), &device);
        history = ckpt.get("history")?;
        tracker = ckpt.get("fit_tracker")?;
        start_epoch = ckpt.next_epoch;
    } else if options.resume {
        eprintln!("note: no checkpoint in {}, starting from epoch 0", run.path.display());
    }
    run.write_config(config, &experiment)?;
    let corrupted: Vec<u8> = data.train.corrupted.iter().map(|&c| c as u8).collect();
    write_atomic(&run.path.join("corrupted.npy"), &npy_u8(&corrupted))?;
    run.log(&format!("Number of parameters: {param_count}"))?;

    let train_steps = data.train.len().div_ceil(config.batch_size);
    let eval_steps = data.val.len().div_ceil(config.batch_size)
        + if config.eval_full_trainset { train_steps } else { 0 };
    let fitted = |history: &[EpochMetrics]| {
        config.stop_at_train_acc.is_some_and(|a| history.last().is_some_and(|m| m.train_acc >= a))
    };
    for epoch in start_epoch..config.epochs {
        if fitted(&history) {
            break;
        }
        let started = Instant::now();
        let lr = config.lr_schedule.at(config.learning_rate, epoch);
        let bar = epoch_bar(epoch, config.epochs, (train_steps + eval_steps) as u64, options.progress);
        device.seed(rng::backend_seed(config.seed, Purpose::Dropout, epoch as u64));
        let mut order: Vec<usize> = (0..data.train.len()).collect();
        order.shuffle(&mut rng::stream(config.seed, Purpose::Shuffle, epoch as u64));
        let augment = config
            .data_augmentation
            .then(|| rng::stream(config.seed, Purpose::Augment, epoch as u64));
        let mut running = Tally::default();
        let mut running_correct = vec![false; data.train.len()];
        model = std::thread::scope(|scope| -> Result<Model> {
            let batches = prefetch(
                scope,
                &pipeline,
                &data.train.images,
                &data.train.labels,
                &order,
                config.batch_size,
                augment,
            );
            for ((step, chunk), host) in order.chunks(config.batch_size).enumerate().zip(batches) {
                let batch = host.into_batch(&device);
                let step_result = train_step(model, &mut sgd, batch.images, batch.targets, lr);
                model = step_result.model;
                let loss_value = step_result.loss;
                if !loss_value.is_finite() {
                    bail!(
                        "training diverged: loss is {loss_value} at epoch {epoch}, step {step} (try a smaller --learning-rate)"
                    );
                }
                if !config.eval_full_trainset {
                    let preds = predictions(step_result.logits);
                    for ((&i, p), l) in chunk.iter().zip(&preds).zip(&batch.labels) {
                        running_correct[i] = p == l;
                    }
                    let hits = preds.iter().zip(&batch.labels).filter(|(p, l)| p == l).count();
                    running.add(loss_value, hits, chunk.len());
                }
                bar.set_message(format!("loss {loss_value:.4}"));
                bar.inc(1);
            }
            Ok(model)
        })?;
        let eval_model = model.valid();
        let (train_tally, train_correct) = if config.eval_full_trainset {
            let e = evaluate(&eval_model, &pipeline, &data.train, config.batch_size, &eval_device, || bar.inc(1));
            (e.tally, e.correct)
        } else {
            (running, running_correct)
        };
        let val = evaluate(&eval_model, &pipeline, &data.val, config.batch_size, &eval_device, || bar.inc(1));
        bar.finish_and_clear();
        tracker.update(epoch, &train_correct);
        let split = split_accuracy(&train_correct, &data.train.corrupted);
        let metrics = EpochMetrics {
            epoch,
            lr,
            train_loss: train_tally.loss(),
            train_acc: train_tally.accuracy(),
            train_acc_corrupted: split.corrupted,
            train_acc_clean: split.clean,
            val_loss: val.tally.loss(),
            val_acc: val.tally.accuracy(),
            seconds: started.elapsed().as_secs_f64(),
        };
        if !metrics.train_loss.is_finite() || !metrics.val_loss.is_finite() {
            bail!("training diverged: evaluation loss is not finite after epoch {epoch} (try a smaller --learning-rate)");
        }
        run.log(&metrics.log_line())?;
        history.push(metrics);
        run.write_metrics(&history)?;
        tracker.save_npy(&run.path.join("fitted_epoch.npy"))?;
        let mut ckpt = checkpoint(&model, &sgd, epoch + 1);
        ckpt.put("config", &config.resume_key());
        ckpt.put("history", &history);
        ckpt.put("fit_tracker", &tracker);
        ckpt.put("data_fingerprint", &fingerprint);
        ckpt.put("seed", &config.seed);
        ckpt.save(&checkpoint_path)?;
    }
    let results = RunResults::new(config, &experiment, param_count, &history, train_steps);
    results.save(&run.path.join("results.json"))?;
    if let Some(fit) = &results.time_to_fit {
        eprintln!("train accuracy reached {}% at epoch {} (step {})", fit.threshold, fit.epoch, fit.steps);
    }
    Ok(RunSummary { experiment, dir: Some(run.path), param_count, history })
}

/// What one SGD step returns.
pub struct StepResult {
    /// The updated model.
    pub model: Model,
    /// The batch's logits before the update (detached).
    pub logits: Tensor<2>,
    /// The batch's mean loss before the update.
    pub loss: f64,
}

/// One training step: forward, softmax cross-entropy, backward, SGD update with rate `lr`.
pub fn train_step(model: Model, sgd: &mut Sgd, images: Tensor<4>, targets: Tensor<1, Int>, lr: f64) -> StepResult {
    let logits = model.forward(images);
    let loss = cross_entropy(logits.clone(), targets);
    let loss_value = loss.clone().into_scalar::<f32>() as f64;
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = sgd.step(lr, model, grads);
    StepResult { model, logits: logits.detach(), loss: loss_value }
}

/// The end-of-epoch checkpoint's tensors: model and momentum buffers.
fn checkpoint(model: &Model, sgd: &Sgd, next_epoch: usize) -> Checkpoint {
    Checkpoint {
        next_epoch,
        model: named_tensors(model).into_iter().map(|t| (t.name, t.data)).collect(),
        velocity: sgd.state(),
        meta: Default::default(),
    }
}

/// The first top-level setting where two configs differ, as `key: saved vs now`.
fn first_difference(saved: &serde_json::Value, now: &serde_json::Value) -> String {
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
