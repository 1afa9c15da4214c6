//! The input pipeline off the critical path: a worker thread prepares the next batches
//! (gather, preprocess, augment) while the current training step runs.
//!
//! The worker draws augmentation in batch order from the epoch's generator, exactly as a
//! sequential loop would, so prefetching never changes the numbers.

use super::batch::{HostBatch, InputPipeline};
use super::image_set::ImageSet;
use rand_chacha::ChaCha8Rng;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::Scope;

/// How many prepared batches may wait ahead of the consumer.
const AHEAD: usize = 2;

/// Starts a worker in `scope` producing the batches of `order` (chunks of `batch_size`), in
/// order; iterate the returned receiver to consume them.
pub fn prefetch<'scope, 'env>(
    scope: &'scope Scope<'scope, 'env>,
    pipeline: &'env InputPipeline,
    set: &'env ImageSet,
    labels: &'env [u8],
    order: &'env [usize],
    batch_size: usize,
    mut augment: Option<ChaCha8Rng>,
) -> Receiver<HostBatch> {
    let (sender, receiver) = sync_channel(AHEAD);
    scope.spawn(move || {
        for chunk in order.chunks(batch_size) {
            let batch = HostBatch::new(pipeline, set, labels, chunk, augment.as_mut());
            if sender.send(batch).is_err() {
                return; // the consumer stopped early (an error or the end of training)
            }
        }
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::{Normalization, Preprocess};
    use crate::data::synthetic::{SyntheticSpec, generate};
    use crate::rng::{self, Purpose};

    #[test]
    fn yields_the_same_batches_as_a_sequential_loop() {
        let data = generate(SyntheticSpec { train: 50, test: 1, num_classes: 10 }, 1);
        let pipeline = InputPipeline { preprocess: Preprocess::Demo, norm: Normalization::cifar10() };
        let order: Vec<usize> = (0..50).rev().collect();
        let mut rng = rng::stream(1, Purpose::Augment, 0);
        let sequential: Vec<HostBatch> = order
            .chunks(16)
            .map(|c| HostBatch::new(&pipeline, &data.train, &data.train.labels, c, Some(&mut rng)))
            .collect();
        let prefetched: Vec<HostBatch> = std::thread::scope(|s| {
            let augment = Some(rng::stream(1, Purpose::Augment, 0));
            prefetch(s, &pipeline, &data.train, &data.train.labels, &order, 16, augment).iter().collect()
        });
        assert_eq!(prefetched.len(), 4);
        assert_eq!(prefetched, sequential);
    }
}
