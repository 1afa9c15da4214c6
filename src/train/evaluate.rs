//! Loss and accuracy of a model on a split, in eval mode, and the loss of a training batch.

use super::metrics::Tally;
use crate::data::batch::{InputPipeline, make_batch};
use crate::data::prepared::LabelledSplit;
use crate::model::Model;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};

/// Mean softmax cross-entropy of `logits` `[B, C]` against `targets` `[B]`, shape `[1]`.
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    per_example_loss(logits, targets).mean()
}

/// Softmax cross-entropy of each row of `logits` against its target, shape `[B]`.
pub fn per_example_loss(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [batch, _] = logits.dims();
    let picked = log_softmax(logits, 1).gather(1, targets.reshape([batch, 1]));
    picked.reshape([batch]).neg()
}

/// Top-1 predictions of each row of `logits`.
pub fn predictions(logits: Tensor<2>) -> Vec<u8> {
    logits.argmax(1).into_data().iter::<i64>().map(|p| p as u8).collect()
}

/// Result of evaluating a split.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Loss and accuracy over the split.
    pub tally: Tally,
    /// Whether each example was predicted correctly.
    pub correct: Vec<bool>,
}

/// Evaluates `model` (already in eval mode, on `device`) on `split` in batches of `batch_size`,
/// calling `on_batch` after each batch (progress reporting).
pub fn evaluate(
    model: &Model,
    pipeline: &InputPipeline,
    split: &LabelledSplit,
    batch_size: usize,
    device: &Device,
    mut on_batch: impl FnMut(),
) -> Evaluation {
    let mut tally = Tally::default();
    let mut correct = Vec::with_capacity(split.len());
    let indices: Vec<usize> = (0..split.len()).collect();
    for chunk in indices.chunks(batch_size) {
        let batch = make_batch(pipeline, &split.images, &split.labels, chunk, None, device);
        let logits = model.forward(batch.images);
        let loss_sum: f64 = per_example_loss(logits.clone(), batch.targets).sum().into_scalar::<f32>() as f64;
        let hits: Vec<bool> = predictions(logits).iter().zip(&batch.labels).map(|(p, l)| p == l).collect();
        let n_correct = hits.iter().filter(|&&h| h).count();
        tally.add(loss_sum / chunk.len() as f64, n_correct, chunk.len());
        correct.extend(hits);
        on_batch();
    }
    Evaluation { tally, correct }
}
