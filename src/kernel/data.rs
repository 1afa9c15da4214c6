//! The kernel solver's inputs: the same loaders, subsets, label corruption and pixel
//! randomizations as training; [`super::features`] then turns the images into points.
//!
//! Order of operations: load the splits with the training loader (`--split-test-set N` builds
//! both from the test files: first N train, the rest test — how the scipy comparison is set up,
//! first 8,000 / last 2,000 of MNIST's test digits); take the subsets
//! (`--train-size`/`--test-size`); randomize the pixels of both subsets (`--randomize`, seeded
//! by `--seed`); corrupt the training labels (numpy-identical, `--corrupt-seed`). Test labels
//! stay clean: the test error is measured against the true labels, as in the paper.

use super::config::KernelConfig;
use super::matrix::Features;
use crate::data::corrupt::corrupt_labels;
use crate::data::image_set::{ImageSet, Splits};
use crate::data::randomize::randomize_inputs;
use crate::data::source::{DataRequest, load_splits};
use crate::data::synthetic::SyntheticSpec;
use anyhow::{Result, bail};

/// Training and test images with their labels, before the feature map.
#[derive(Debug, Clone)]
pub struct KernelImages {
    /// Training images (their own labels are the clean ones).
    pub train: ImageSet,
    /// Labels the solver fits (corrupted where the corruption drew them).
    pub train_labels: Vec<u8>,
    /// How many training labels the corruption mask drew.
    pub corrupted: usize,
    /// Test images.
    pub test: ImageSet,
    /// Number of classes (columns of the one-hot targets).
    pub classes: usize,
    /// Where the images come from, e.g. `mnist test split: first 8000 train, last 2000 test`.
    pub description: String,
}

/// Training and test points with their labels.
#[derive(Debug, Clone)]
pub struct KernelInputs {
    /// Training points.
    pub train: Features,
    /// Labels the solver fits (corrupted where the corruption drew them).
    pub train_labels: Vec<u8>,
    /// How many training labels the corruption mask drew.
    pub corrupted: usize,
    /// Test points.
    pub test: Features,
    /// True test labels.
    pub test_labels: Vec<u8>,
    /// Number of classes (columns of the one-hot targets).
    pub classes: usize,
    /// Where the points come from, e.g. `mnist test split: first 8000 train, last 2000 test`.
    pub description: String,
}

/// Loads and prepares the images `config` asks for.
pub fn load(config: &KernelConfig) -> Result<KernelImages> {
    let (mut splits, description) = select(load_splits_for(config)?, config)?;
    randomize_inputs(&mut splits, config.randomize, config.seed);
    let p = config.corrupt_prob();
    let (train_labels, corrupted) = if p > 0.0 {
        let c = corrupt_labels(&splits.train.labels, splits.num_classes, p, config.corrupt_seed);
        let count = c.mask_count();
        (c.labels, count)
    } else {
        (splits.train.labels.clone(), 0)
    };
    Ok(KernelImages {
        train: splits.train,
        train_labels,
        corrupted,
        test: splits.test,
        classes: splits.num_classes,
        description,
    })
}

/// Pixels / 255, one row per image (held as exact 8-bit values, see [`Features::from_pixels`]).
pub fn features(set: &ImageSet) -> Features {
    Features::from_pixels(&set.images, set.len(), set.image_len(), 1.0 / 255.0)
}

/// Reads the dataset (downloading it first if asked and missing) with the training loader.
fn load_splits_for(config: &KernelConfig) -> Result<Splits> {
    load_splits(&DataRequest {
        kind: config.data,
        dir: config.data_dir.clone(),
        download: config.download,
        url: None,
        md5: None,
        // Synthetic data is made at the size asked for (default 2,000 + 500), e.g. 50,000
        // CIFAR-shaped images to time a full-size run without the dataset.
        synthetic: SyntheticSpec {
            train: config.train_size.unwrap_or(2000),
            test: config.test_size.unwrap_or(500),
            num_classes: config.data.num_classes(),
        },
        seed: config.seed,
        split_test_set: config.split_test_set,
    })
}

/// Takes the subsets the flags ask for; errors name the flag and the available count.
fn select(splits: Splits, config: &KernelConfig) -> Result<(Splits, String)> {
    let name = config.data.name();
    let Splits { train, test, num_classes } = splits;
    let pick = |set: &ImageSet, size: Option<usize>, flag: &str, split: &str| -> Result<ImageSet> {
        match size {
            Some(n) if n > set.len() => {
                bail!("{flag} {n} exceeds the {} {split} images of {name} in {}", set.len(), config.data_dir.display())
            }
            Some(n) => Ok(set.take(n)),
            None => Ok(set.clone()),
        }
    };
    let train = pick(&train, config.train_size, "--train-size", "training")?;
    let test = pick(&test, config.test_size, "--test-size", "test")?;
    let description = match config.split_test_set {
        Some(n) => format!("{name} test split: first {n} train, next {} test", test.len()),
        None => format!("{name}: first {} train, first {} test", train.len(), test.len()),
    };
    Ok((Splits { train, test, num_classes }, description))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> ImageSet {
        ImageSet {
            images: (0..n * 4).map(|v| (v % 256) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            channels: 1,
            height: 2,
            width: 2,
        }
    }

    #[test]
    fn features_scale_to_unit_interval() {
        let f = features(&set(3));
        assert_eq!((f.n, f.dim), (3, 4));
        assert_eq!(f.value(1, 1), 5.0 / 255.0);
        assert!((0..3).all(|i| (0..4).all(|k| (0.0..=1.0).contains(&f.value(i, k)))));
    }
}
