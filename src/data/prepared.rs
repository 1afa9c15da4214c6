//! The labelled splits a run actually uses: subsets taken, labels corrupted.

use super::corrupt::corrupt_labels;
use super::image_set::{ImageSet, Splits};

/// How to turn loaded splits into the run's data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelPlan {
    /// Keep only the first N training examples (all if `None`).
    pub train_size: Option<usize>,
    /// Keep only the first N validation examples (all if `None`).
    pub val_size: Option<usize>,
    /// Probability p of replacing a label by a uniform random class.
    pub corrupt_prob: f64,
    /// Seed of numpy's legacy generator for the corruption (the demo's 12345).
    pub corrupt_seed: u32,
    /// Corrupt the validation labels too, as the demo does.
    pub corrupt_val: bool,
}

/// One split with its original and effective labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledSplit {
    /// Images, with their original labels in `images.labels`.
    pub images: ImageSet,
    /// The labels the run uses (corrupted where `corrupted` is set).
    pub labels: Vec<u8>,
    /// Whether the corruption mask drew each example (its label may still be unchanged).
    pub corrupted: Vec<bool>,
}

impl LabelledSplit {
    /// Applies the plan's corruption (if `corrupt`) to the first `size` examples of `set`.
    fn new(set: &ImageSet, size: Option<usize>, plan: &LabelPlan, classes: usize, corrupt: bool) -> Self {
        let images = match size {
            Some(n) => set.take(n),
            _ => set.clone(),
        };
        let (labels, corrupted) = if corrupt && plan.corrupt_prob > 0.0 {
            let c = corrupt_labels(&images.labels, classes, plan.corrupt_prob, plan.corrupt_seed);
            (c.labels, c.mask)
        } else {
            (images.labels.clone(), vec![false; images.len()])
        };
        Self { images, labels, corrupted }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the split has no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Train and validation splits ready for training.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedData {
    /// Training split (labels corrupted per the plan).
    pub train: LabelledSplit,
    /// Validation split (clean, or corrupted like the demo's).
    pub val: LabelledSplit,
    /// Number of classes.
    pub num_classes: usize,
}

/// Takes subsets and corrupts labels as `plan` says. Errors if a dataset label is out of range
/// for `num_classes`.
pub fn prepare(splits: &Splits, num_classes: usize, plan: &LabelPlan) -> anyhow::Result<PreparedData> {
    for (name, set) in [("train", &splits.train), ("test", &splits.test)] {
        if let Some(&bad) = set.labels.iter().find(|&&l| l as usize >= num_classes) {
            anyhow::bail!("{name} split has label {bad}, but --num-classes is {num_classes}");
        }
    }
    for (flag, size, set) in
        [("--train-size", plan.train_size, &splits.train), ("--val-size", plan.val_size, &splits.test)]
    {
        if let Some(n) = size.filter(|&n| n > set.len()) {
            anyhow::bail!("{flag} {n} exceeds the {} examples of the split", set.len());
        }
    }
    Ok(PreparedData {
        train: LabelledSplit::new(&splits.train, plan.train_size, plan, num_classes, true),
        val: LabelledSplit::new(&splits.test, plan.val_size, plan, num_classes, plan.corrupt_val),
        num_classes,
    })
}

/// The effective labels as CSV (`split,index,original,label,corrupted`), one row per example.
pub fn labels_csv(data: &PreparedData) -> String {
    let mut out = String::from("split,index,original,label,corrupted\n");
    for (name, split) in [("train", &data.train), ("val", &data.val)] {
        for i in 0..split.len() {
            out.push_str(&format!(
                "{name},{i},{},{},{}\n",
                split.images.labels[i], split.labels[i], split.corrupted[i] as u8
            ));
        }
    }
    out
}
