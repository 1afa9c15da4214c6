//! Which dataset a run uses, and how to get its splits.

use super::image_set::Splits;
use super::synthetic::{self, SyntheticSpec};
use super::{cifar, download};
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
    /// A seeded CIFAR-shaped synthetic dataset (no download).
    Synthetic,
}

impl DataKind {
    /// The name used in experiment names (`cifar10`, `synthetic`).
    pub fn name(self) -> &'static str {
        match self {
            DataKind::Cifar10 => "cifar10",
            DataKind::Synthetic => "synthetic",
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
    /// Download the official archive into `dir` when it is missing.
    pub download: bool,
    /// Override of the download URL (mirrors, tests).
    pub url: Option<String>,
    /// Override of the expected MD5 (only sensible together with `url`).
    pub md5: Option<String>,
    /// Shape of the synthetic dataset (used when `kind` is `Synthetic`).
    pub synthetic: SyntheticSpec,
    /// Seed of the synthetic dataset.
    pub seed: u64,
}

/// Loads (downloading first if asked) the train and test splits.
pub fn load_splits(request: &DataRequest) -> Result<Splits> {
    match request.kind {
        DataKind::Synthetic => Ok(synthetic::generate(request.synthetic, request.seed)),
        DataKind::Cifar10 => match cifar::load_cifar10(&request.dir) {
            Err(_) if request.download => {
                let archive =
                    fetch_archive(request, cifar::CIFAR10_URL, cifar::CIFAR10_MD5, cifar::CIFAR10_ARCHIVE)?;
                cifar::load_cifar10(&archive)
            }
            loaded => loaded,
        },
    }
}

/// Downloads `archive` into the data directory (reusing a copy whose checksum matches).
fn fetch_archive(request: &DataRequest, url: &str, md5: &str, archive: &str) -> Result<PathBuf> {
    let dir: &Path = &request.dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let dest = dir.join(archive);
    let url = request.url.as_deref().unwrap_or(url);
    let md5 = request.md5.as_deref().unwrap_or(md5);
    download::fetch_verified(url, &dest, md5, true)?;
    Ok(dest)
}
