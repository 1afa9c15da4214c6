//! One epoch: a shuffled, prefetched pass of SGD steps, then evaluation in eval mode.

use super::config::TrainConfig;
use super::evaluate::{cross_entropy, evaluate, predictions};
use super::memorization::split_accuracy;
use super::metrics::{EpochMetrics, Tally};
use super::progress::epoch_bar;
use super::sgd::Sgd;
use crate::data::batch::InputPipeline;
use crate::data::prefetch::prefetch;
use crate::data::prepared::PreparedData;
use crate::model::Model;
use crate::rng::{self, Purpose};
use anyhow::{Result, bail};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor};
use rand::seq::SliceRandom;
use std::time::Instant;

/// What stays the same from epoch to epoch.
pub struct EpochContext<'a> {
    /// The run's settings.
    pub config: &'a TrainConfig,
    /// Train and validation splits.
    pub data: &'a PreparedData,
    /// Preprocessing and normalisation.
    pub pipeline: &'a InputPipeline,
    /// Training device (autodiff).
    pub device: Device,
    /// Evaluation device (no autodiff).
    pub eval_device: Device,
    /// Show the progress bar.
    pub progress: bool,
}

/// What an epoch produced.
pub struct EpochOutcome {
    /// The epoch's numbers.
    pub metrics: EpochMetrics,
    /// Whether each training example is predicted correctly (on its training label).
    pub train_correct: Vec<bool>,
}

/// Trains `model` for epoch `epoch` and evaluates it. Every random draw comes from the
/// (seed, epoch) streams, so an epoch's result does not depend on how the run got there.
pub fn run_epoch(ctx: &EpochContext, mut model: Model, sgd: &mut Sgd, epoch: usize) -> Result<(Model, EpochOutcome)> {
    let EpochContext { config, data, pipeline, device, .. } = ctx;
    let started = Instant::now();
    let lr = config.lr_schedule.at(config.learning_rate, epoch);
    let train_steps = data.train.len().div_ceil(config.batch_size);
    let eval_steps =
        data.val.len().div_ceil(config.batch_size) + if config.eval_full_trainset { train_steps } else { 0 };
    let bar = epoch_bar(epoch, config.epochs, (train_steps + eval_steps) as u64, ctx.progress);
    device.seed(rng::backend_seed(config.seed, Purpose::Dropout, epoch as u64));
    let mut order: Vec<usize> = (0..data.train.len()).collect();
    order.shuffle(&mut rng::stream(config.seed, Purpose::Shuffle, epoch as u64));
    let augment = config.data_augmentation.then(|| rng::stream(config.seed, Purpose::Augment, epoch as u64));

    let mut running = Tally::default();
    let mut running_correct = vec![false; data.train.len()];
    model = std::thread::scope(|scope| -> Result<Model> {
        let train = &data.train;
        let batches = prefetch(scope, pipeline, &train.images, &train.labels, &order, config.batch_size, augment);
        for ((step, chunk), host) in order.chunks(config.batch_size).enumerate().zip(batches) {
            let batch = host.into_batch(device);
            let result = train_step(model, sgd, batch.images, batch.targets, lr);
            model = result.model;
            if !result.loss.is_finite() {
                bail!(
                    "training diverged: loss is {} at epoch {epoch}, step {step} (try a smaller --learning-rate)",
                    result.loss
                );
            }
            if !config.eval_full_trainset {
                let preds = predictions(result.logits);
                for ((&i, p), l) in chunk.iter().zip(&preds).zip(&batch.labels) {
                    running_correct[i] = p == l;
                }
                let hits = preds.iter().zip(&batch.labels).filter(|(p, l)| p == l).count();
                running.add(result.loss, hits, chunk.len());
            }
            bar.set_message(format!("loss {:.4}", result.loss));
            bar.inc(1);
        }
        Ok(model)
    })?;

    let eval_model = model.valid();
    let eval = |split| evaluate(&eval_model, pipeline, split, config.batch_size, &ctx.eval_device, || bar.inc(1));
    let (train_tally, train_correct) = if config.eval_full_trainset {
        let e = eval(&data.train);
        (e.tally, e.correct)
    } else {
        (running, running_correct)
    };
    let val = eval(&data.val);
    bar.finish_and_clear();
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
        steps: (epoch + 1) * train_steps,
    };
    if !metrics.train_loss.is_finite() || !metrics.val_loss.is_finite() {
        bail!("training diverged: evaluation loss is not finite after epoch {epoch} (try a smaller --learning-rate)");
    }
    Ok((model, EpochOutcome { metrics, train_correct }))
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
