//! Typed settings of `rethink kernel`, independent of the command line that fills them.

use super::cg::{CgOptions, CgPrecond};
use super::features::FeatureSettings;
use super::matrix::KernelFn;
use super::refine::{Method, RefineOptions};
use crate::data::randomize::Randomization;
use crate::data::source::DataKind;
use anyhow::{Result, bail};
use clap::ValueEnum;
use serde::Serialize;
use std::path::PathBuf;

/// Which kernel function `--kernel` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelKind {
    /// exp(−bandwidth·‖x − y‖²).
    Gaussian,
    /// exp(−‖x − y‖/σ).
    Laplacian,
    /// x·y (the linear model on the features).
    Linear,
}

/// Which solver `--solver` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SolverChoice {
    /// The exact tiled Cholesky when it fits in memory, else conjugate gradient.
    Auto,
    /// The exact tiled Cholesky (refuses when it does not fit).
    Cholesky,
    /// Matrix-free conjugate gradient.
    Cg,
}

/// Precision of the exact solver's factorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    /// Factor in f32 (half the memory and time), refine to f64 accuracy against the exact
    /// f64 residual.
    F32Refined,
    /// Factor in f64, as LAPACK/scipy (one refinement step certifies the result).
    F64,
}

impl Precision {
    /// `f32-refined` or `f64`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32Refined => "f32-refined",
            Precision::F64 => "f64",
        }
    }
}

/// Everything `rethink kernel` needs to know (saved in `result.json` as `config`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelConfig {
    /// Dataset.
    pub data: DataKind,
    /// Directory with the dataset files.
    pub data_dir: PathBuf,
    /// Download the dataset into `data_dir` when it is missing.
    pub download: bool,
    /// Keep the first N training examples.
    pub train_size: Option<usize>,
    /// Keep the first N test examples.
    pub test_size: Option<usize>,
    /// Build both splits from the test files: their first N examples train, the rest test.
    pub split_test_set: Option<usize>,
    /// Probability of replacing a training label by a uniform class (default 1 with
    /// `--randomize labels`, else 0).
    pub label_corrupt_prob: Option<f64>,
    /// Seed of the numpy-identical label corruption.
    pub corrupt_seed: u32,
    /// Input (or label) randomization.
    pub randomize: Randomization,
    /// Seed of input randomizations and of the CG sketch.
    pub seed: u64,
    /// Feature map applied to the images before the kernel.
    pub features: FeatureSettings,
    /// Kernel function.
    pub kernel: KernelFn,
    /// λ of (K + λI)·c = Y; 0 is interpolation.
    pub ridge: f64,
    /// Solver.
    pub solver: SolverChoice,
    /// Precision of the exact solver.
    pub precision: Precision,
    /// Refinement of the exact solver.
    pub refine: RefineOptions,
    /// Conjugate gradient settings.
    pub cg: CgOptions,
    /// Tile size of the Cholesky factorization.
    pub tile: usize,
    /// Tile columns per trailing update of the factorization.
    pub group: usize,
    /// Block size of the matrix-free kernel products.
    pub block: usize,
    /// Worker threads (default: all cores).
    pub threads: Option<usize>,
    /// Cap on the memory the solve may use, in GiB.
    pub max_memory_gib: Option<f64>,
    /// Directory receiving `result.json`.
    pub out: PathBuf,
    /// Show the factorization progress bar.
    pub progress: bool,
}

/// The settings of a saved `config` that decide the result: [`KernelConfig::identity`] of
/// the config it was serialized from.
pub fn identity_of(mut saved: serde_json::Value) -> serde_json::Value {
    if let Some(map) = saved.as_object_mut() {
        for key in ["out", "progress", "threads", "max_memory_gib"] {
            map.remove(key);
        }
    }
    saved
}

impl KernelConfig {
    /// The effective label corruption probability.
    pub fn corrupt_prob(&self) -> f64 {
        self.label_corrupt_prob.unwrap_or(if self.randomize == Randomization::Labels { 1.0 } else { 0.0 })
    }

    /// The settings that decide the result, as JSON: everything but where it is written,
    /// the progress bar, the thread count and the memory cap. A sweep compares it with the
    /// `config` of a point's `result.json` to tell a finished point from a changed one.
    pub fn identity(&self) -> serde_json::Value {
        identity_of(serde_json::to_value(self).expect("a kernel config serializes"))
    }

    /// Checks the settings, with one-line messages naming the flag.
    pub fn validate(&self) -> Result<()> {
        match self.kernel {
            KernelFn::Gaussian { bandwidth } if !(bandwidth.is_finite() && bandwidth > 0.0) => {
                bail!("--bandwidth {bandwidth} must be a positive number")
            }
            KernelFn::Laplacian { sigma } if !(sigma.is_finite() && sigma > 0.0) => {
                bail!("--sigma {sigma} must be a positive number")
            }
            _ => {}
        }
        if !(self.ridge.is_finite() && self.ridge >= 0.0) {
            bail!("--ridge {} must be a non-negative number (0: interpolation)", self.ridge);
        }
        let p = self.corrupt_prob();
        if !(0.0..=1.0).contains(&p) {
            bail!("--label-corrupt-prob {p} is outside [0, 1]");
        }
        for (flag, v) in [
            ("--train-size", self.train_size),
            ("--test-size", self.test_size),
            ("--split-test-set", self.split_test_set),
        ] {
            if v == Some(0) {
                bail!("{flag} must be at least 1");
            }
        }
        if self.split_test_set.is_some() && self.train_size.is_some() {
            bail!("--split-test-set already sets the number of training points; drop --train-size");
        }
        if self.tile < 16 {
            bail!("--tile {} must be at least 16", self.tile);
        }
        if self.group == 0 || self.block == 0 {
            bail!("--group and --block must be at least 1");
        }
        if !(self.refine.tol.is_finite() && self.refine.tol >= 0.0) {
            bail!("--refine-tol {} must be a non-negative number", self.refine.tol);
        }
        if !(self.cg.tol.is_finite() && self.cg.tol >= 0.0) {
            bail!("--tol {} must be a non-negative number", self.cg.tol);
        }
        if self.cg.precond == CgPrecond::Nystrom && self.cg.rank == 0 {
            bail!("--cg-rank must be at least 1 with --cg-precond nystrom");
        }
        if self.threads == Some(0) {
            bail!("--threads must be at least 1");
        }
        if let Some(g) = self.max_memory_gib
            && !(g.is_finite() && g > 0.0)
        {
            bail!("--max-memory {g} must be a positive number of GiB");
        }
        Ok(())
    }

    /// The refinement method's name, for reports.
    pub fn refine_name(&self) -> &'static str {
        match self.refine.method {
            Method::Ir => "ir",
            Method::Pcg => "pcg",
        }
    }
}
