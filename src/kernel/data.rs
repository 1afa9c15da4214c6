//! The kernel solver's inputs: the same loaders, subsets, label corruption and pixel
//! randomizations as training, turned into f64 feature rows scaled to [0, 1].
//!
//! Order of operations: load the splits; take the subsets (`--train-size`/`--test-size`, or
//! `--test-as-train`); randomize the pixels of both subsets (`--randomize`, seeded by
//! `--seed`); corrupt the training labels (numpy-identical, `--corrupt-seed`). Test labels stay
//! clean: the test error is measured against the true labels, as in the paper.
//!
//! `--test-as-train N` builds both splits from the test split alone — its first N examples
//! train, its last `--test-size` (default: all the others) test. It exists because a test
//! split is sometimes all there is (the shared MNIST copy holds only `t10k-*`), and it is how
//! the scipy comparison is set up (first 8,000 / last 2,000 of MNIST's test digits).

use super::config::{KernelConfig, KernelData};
use super::matrix::Features;
use crate::data::corrupt::corrupt_labels;
use crate::data::image_set::{ImageSet, Splits};
use crate::data::randomize::randomize_inputs;
use crate::data::source::{DataKind, DataRequest, load_splits};
use crate::data::synthetic::SyntheticSpec;
use crate::data::{download, idx};
use anyhow::{Context, Result, bail};
use std::path::Path;

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

/// Loads and prepares the inputs `config` asks for.
pub fn load(config: &KernelConfig) -> Result<KernelInputs> {
    let (mut splits, description) = select(load_splits_for(config)?, config)?;
    randomize_inputs(&mut splits, config.randomize, config.seed);
    let p = config.corrupt_prob();
    let (train_labels, corrupted) = if p > 0.0 {
        let c = corrupt_labels(
            &splits.train.labels,
            splits.num_classes,
            p,
            config.corrupt_seed,
        );
        let count = c.mask_count();
        (c.labels, count)
    } else {
        (splits.train.labels.clone(), 0)
    };
    Ok(KernelInputs {
        train: features(&splits.train),
        train_labels,
        corrupted,
        test: features(&splits.test),
        test_labels: splits.test.labels.clone(),
        classes: splits.num_classes,
        description,
    })
}

/// Pixels / 255, one row per image (held as exact 8-bit values, see [`Features::from_pixels`]).
pub fn features(set: &ImageSet) -> Features {
    Features::from_pixels(&set.images, set.len(), set.image_len(), 1.0 / 255.0)
}

/// Reads the dataset (downloading it first if asked and missing).
fn load_splits_for(config: &KernelConfig) -> Result<Splits> {
    let dir = &config.data_dir;
    match config.data {
        KernelData::Mnist if config.test_as_train.is_some() => {
            if config.download {
                download_mnist(dir)?;
            }
            let test = idx::load_mnist_test_only(dir)?;
            let empty = ImageSet {
                images: vec![],
                labels: vec![],
                channels: 1,
                height: test.height,
                width: test.width,
            };
            Ok(Splits {
                train: empty,
                test,
                num_classes: 10,
            })
        }
        KernelData::Mnist => {
            if config.download {
                download_mnist(dir)?;
            }
            idx::load_mnist(dir).map_err(|e| {
                if idx::load_mnist_test_only(dir).is_ok() {
                    e.context("only the t10k-* files are there; --test-as-train N takes the first N test digits as training points")
                } else {
                    e
                }
            })
        }
        KernelData::Cifar10 => load_splits(&DataRequest {
            kind: DataKind::Cifar10,
            dir: dir.clone(),
            download: config.download,
            url: None,
            md5: None,
            synthetic: SyntheticSpec {
                train: 0,
                test: 0,
                num_classes: 10,
            },
            seed: config.seed,
        }),
    }
}

/// Fetches the four MNIST files into `dir` (each skipped when present with the right MD5).
fn download_mnist(dir: &Path) -> Result<()> {
    for (name, md5) in idx::MNIST_FILES {
        let raw = dir.join(name.trim_end_matches(".gz"));
        if raw.is_file() {
            continue;
        }
        let url = format!("{}{name}", idx::MNIST_BASE_URL);
        download::fetch_verified(&url, &dir.join(name), md5, true)
            .with_context(|| format!("cannot download MNIST into {}", dir.display()))?;
    }
    Ok(())
}

/// Takes the subsets the flags ask for; errors name the flag and the available count.
fn select(splits: Splits, config: &KernelConfig) -> Result<(Splits, String)> {
    let name = config.data.name();
    let Splits {
        train,
        test,
        num_classes,
    } = splits;
    if let Some(n_train) = config.test_as_train {
        let total = test.len();
        let n_test = config.test_size.unwrap_or(total.saturating_sub(n_train));
        if n_train + n_test > total || n_test == 0 {
            bail!(
                "--test-as-train {n_train} with {n_test} test points needs {} examples, but the {name} test split in {} has {total}",
                n_train + n_test,
                config.data_dir.display()
            );
        }
        let (train, test) = (
            range(&test, 0, n_train),
            range(&test, total - n_test, total),
        );
        let description = format!("{name} test split: first {n_train} train, last {n_test} test");
        return Ok((
            Splits {
                train,
                test,
                num_classes,
            },
            description,
        ));
    }
    let pick = |set: &ImageSet, size: Option<usize>, flag: &str, split: &str| -> Result<ImageSet> {
        match size {
            Some(n) if n > set.len() => bail!(
                "{flag} {n} exceeds the {} {split} images of {name} in {}",
                set.len(),
                config.data_dir.display()
            ),
            Some(n) => Ok(set.take(n)),
            None => Ok(set.clone()),
        }
    };
    let train = pick(&train, config.train_size, "--train-size", "training")?;
    let test = pick(&test, config.test_size, "--test-size", "test")?;
    let description = format!(
        "{name}: first {} train, first {} test",
        train.len(),
        test.len()
    );
    Ok((
        Splits {
            train,
            test,
            num_classes,
        },
        description,
    ))
}

/// Examples `start..end` of `set`.
fn range(set: &ImageSet, start: usize, end: usize) -> ImageSet {
    let len = set.image_len();
    ImageSet {
        images: set.images[start * len..end * len].to_vec(),
        labels: set.labels[start..end].to_vec(),
        channels: set.channels,
        height: set.height,
        width: set.width,
    }
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

    #[test]
    fn range_takes_the_middle() {
        let s = range(&set(10), 7, 10);
        assert_eq!(s.labels, vec![7, 8, 9]);
        assert_eq!(s.images[0], 28);
    }
}
