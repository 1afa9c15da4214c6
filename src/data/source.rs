//! Which dataset a run uses, and how to get its splits.

use super::batch::Normalization;
use super::image_set::Splits;
use super::synthetic::{self, SyntheticSpec};
use super::{cifar, download, idx};
use anyhow::{Context, Result};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A dataset, as `--data` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataKind {
    /// CIFAR-10, official binary format.
    Cifar10,
    /// CIFAR-100, official binary format, fine labels.
    Cifar100,
    /// MNIST, IDX files (gzipped or not).
    Mnist,
    /// A seeded CIFAR-shaped synthetic dataset (no download).
    Synthetic,
}

impl DataKind {
    /// The name used in experiment names (`cifar10`, `mnist`, …).
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Cifar10 => "cifar10",
            DataKind::Cifar100 => "cifar100",
            DataKind::Mnist => "mnist",
            DataKind::Synthetic => "synthetic",
        }
    }

    /// Number of classes of the dataset.
    pub fn num_classes(self) -> usize {
        match self {
            DataKind::Cifar100 => 100,
            _ => 10,
        }
    }

    /// The demo-style input normalisation for this dataset.
    pub fn normalization(self) -> Normalization {
        match self {
            DataKind::Mnist => Normalization::mnist(),
            DataKind::Cifar100 => Normalization::cifar100(),
            DataKind::Cifar10 | DataKind::Synthetic => Normalization::cifar10(),
        }
    }
}

/// Where to find a dataset and whether to fetch it.
#[derive(Debug, Clone, PartialEq)]
pub struct DataRequest {
    /// Which dataset.
    pub kind: DataKind,
    /// Directory holding (or receiving) the dataset files.
    pub dir: PathBuf,
    /// Download the official files into `dir` when they are missing.
    pub download: bool,
    /// Override of the download URL (CIFAR: the archive; MNIST: the base URL ending in `/`).
    pub url: Option<String>,
    /// Override of the expected MD5 (CIFAR archives only; sensible only together with `url`).
    pub md5: Option<String>,
    /// Shape of the synthetic dataset (used when `kind` is `Synthetic`).
    pub synthetic: SyntheticSpec,
    /// Seed of the synthetic dataset.
    pub seed: u64,
    /// Use only the test files: the first N test examples become the train split and the rest
    /// the validation split (for machines that hold only a test set).
    pub split_test_set: Option<usize>,
}

/// Loads (downloading first if asked) the train and test splits.
pub fn load_splits(request: &DataRequest) -> Result<Splits> {
    let splits = match request.kind {
        DataKind::Synthetic => synthetic::generate(request.synthetic, request.seed),
        DataKind::Cifar10 => {
            load_cifar(request, cifar::CIFAR10_URL, cifar::CIFAR10_MD5, cifar::CIFAR10_ARCHIVE, cifar::load_cifar10)?
        }
        DataKind::Cifar100 => load_cifar(
            request,
            cifar::CIFAR100_URL,
            cifar::CIFAR100_MD5,
            cifar::CIFAR100_ARCHIVE,
            cifar::load_cifar100,
        )?,
        DataKind::Mnist => return load_mnist(request),
    };
    match request.split_test_set {
        Some(n) => split_test(splits.test, n, splits.num_classes),
        None => Ok(splits),
    }
}

/// A CIFAR dataset from its directory or archive, downloading the archive if asked and needed.
fn load_cifar(
    request: &DataRequest,
    url: &str,
    md5: &str,
    archive: &str,
    load: fn(&Path) -> Result<Splits>,
) -> Result<Splits> {
    match load(&request.dir) {
        Err(_) if request.download => {
            create_dir(&request.dir)?;
            let dest = request.dir.join(archive);
            let url = request.url.as_deref().unwrap_or(url);
            let md5 = request.md5.as_deref().unwrap_or(md5);
            download::fetch_verified(url, &dest, md5, true)?;
            load(&dest)
        }
        loaded => loaded,
    }
}

/// MNIST from its IDX files, downloading the four official files if asked and missing.
fn load_mnist(request: &DataRequest) -> Result<Splits> {
    let dir = &request.dir;
    if let Some(n) = request.split_test_set {
        if request.download {
            download_mnist(request)?;
        }
        return split_test(idx::load_mnist_test_only(dir)?, n, 10);
    }
    match idx::load_mnist(dir) {
        Err(_) if request.download => {
            download_mnist(request)?;
            idx::load_mnist(dir)
        }
        Err(e) if idx::load_mnist_test_only(dir).is_ok() => {
            Err(e.context("only the t10k-* files are there; --split-test-set N trains on the first N test digits"))
        }
        loaded => loaded,
    }
}

/// Fetches the four MNIST files into the data directory (each skipped when it is already
/// there, raw or gzipped, or when the `.gz` has the right MD5).
fn download_mnist(request: &DataRequest) -> Result<()> {
    let dir = &request.dir;
    create_dir(dir)?;
    let base = request.url.as_deref().unwrap_or(idx::MNIST_BASE_URL);
    for (file, md5) in idx::MNIST_FILES {
        if dir.join(file.trim_end_matches(".gz")).is_file() {
            continue;
        }
        download::fetch_verified(&format!("{base}{file}"), &dir.join(file), md5, true)
            .with_context(|| format!("cannot download MNIST into {}", dir.display()))?;
    }
    Ok(())
}

/// Train on the first `n` examples of `test`, validate on the rest.
fn split_test(test: super::image_set::ImageSet, n: usize, num_classes: usize) -> Result<Splits> {
    if n == 0 || n >= test.len() {
        anyhow::bail!("--split-test-set {n} must leave examples on both sides of the {}-example test set", test.len());
    }
    let image_len = test.image_len();
    let train = super::image_set::ImageSet {
        images: test.images[..n * image_len].to_vec(),
        labels: test.labels[..n].to_vec(),
        ..test.clone()
    };
    let val = super::image_set::ImageSet {
        images: test.images[n * image_len..].to_vec(),
        labels: test.labels[n..].to_vec(),
        ..test
    };
    Ok(Splits { train, test: val, num_classes })
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create data directory {}", dir.display()))
}
