//! What a kernel solve reports: the demo's `err = 1.22%` line, the train error, the norm
//! cᵀKc, the time of each phase, and the same as `result.json`.

use super::cg::Iteration;
use super::config::KernelConfig;
use super::features::FeatureSettings;
use super::matrix::KernelFn;
use super::refine::Step;
use crate::atomic::write_atomic;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where the points came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataReport {
    /// `mnist` or `cifar10`.
    pub dataset: String,
    /// Directory the files were read from.
    pub dir: PathBuf,
    /// Which examples were used, in words.
    pub split: String,
    /// Training points.
    pub n_train: usize,
    /// Test points.
    pub n_test: usize,
    /// Dimension of a point (pixels × channels).
    pub dim: usize,
    /// Label corruption probability actually used.
    pub label_corrupt_prob: f64,
    /// Seed of the label corruption.
    pub corrupt_seed: u32,
    /// Training labels drawn by the corruption mask.
    pub corrupted_labels: usize,
    /// Input randomization (`none`, `shuffled-pixels`, ...).
    pub randomize: String,
    /// Seed of the input randomization and the CG sketch.
    pub seed: u64,
}

/// How the system was solved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SolverReport {
    /// `cholesky` or `cg`.
    pub solver: String,
    /// `f32-refined` or `f64` (Cholesky), `f64` (CG).
    pub precision: String,
    /// Tile size of the factorization (Cholesky).
    pub tile: Option<usize>,
    /// Refinement method (Cholesky): `ir` or `pcg`.
    pub refine: Option<String>,
    /// Tolerance: backward error (Cholesky) or relative residual (CG).
    pub tol: f64,
    /// CG preconditioner and its rank.
    pub cg_precond: Option<String>,
    /// Whether the tolerance was reached.
    pub converged: bool,
    /// Worker threads.
    pub threads: usize,
}

/// Seconds per phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Times {
    /// Reading and preparing the data.
    pub load: f64,
    /// Computing the feature map (0 for raw pixels).
    pub features: f64,
    /// Computing the kernel matrix (Cholesky) or the preconditioner (CG).
    pub kernel: f64,
    /// Cholesky factorization.
    pub factor: f64,
    /// First solve with the factor.
    pub solve: f64,
    /// Iterative refinement (Cholesky) or CG iterations.
    pub refine: f64,
    /// Test predictions.
    pub predict: f64,
    /// Everything.
    pub total: f64,
}

/// Memory planned and used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryReport {
    /// Bytes the plan needed.
    pub planned_bytes: u64,
    /// Bytes available to it.
    pub available_bytes: u64,
    /// Where the available figure came from.
    pub available_source: String,
    /// Peak resident memory of the process (VmHWM).
    pub peak_rss_bytes: Option<u64>,
}

/// The feature map the kernel saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureReport {
    /// The map and all its constants.
    pub settings: FeatureSettings,
    /// Feature dimension.
    pub dim: usize,
    /// The factor the map's output was multiplied by (mean squared distance 100; 1 for raw).
    pub scale: f64,
}

/// Everything `result.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelReport {
    /// The data.
    pub data: DataReport,
    /// The feature map.
    pub features: FeatureReport,
    /// The kernel function.
    pub kernel: KernelFn,
    /// λ of (K + λI)·c = Y (0: interpolation).
    pub ridge: f64,
    /// The solver.
    pub solver: SolverReport,
    /// Test error in percent (against the true test labels).
    pub test_error_percent: f64,
    /// Misclassified test points.
    pub test_mistakes: usize,
    /// Train error in percent (against the labels fitted): 0 for an interpolant.
    pub train_error_percent: f64,
    /// cᵀKc summed over the classes (K without the ridge): the squared RKHS norm of the
    /// interpolant.
    pub norm_ctkc: f64,
    /// ‖w‖ = √(cᵀKc): the RKHS norm itself, the quantity the paper compares across feature
    /// maps (≈ 220 for MNIST raw pixels vs ≈ 390 with Gabor features).
    pub norm_w: f64,
    /// ‖Y − K·c‖_F / ‖Y‖_F of the final solution.
    pub relative_residual: f64,
    /// Normwise backward error of the final solution (Cholesky).
    pub backward_error: Option<f64>,
    /// CG: the first iteration whose train error was 0 (`None`: never, or not CG).
    pub fit_iterations: Option<usize>,
    /// CG: passes over the kernel matrix until then (iterations, plus one for the Nyström
    /// sketch): the kernel counterpart of epochs to memorize.
    pub fit_kernel_passes: Option<usize>,
    /// Refinement steps (Cholesky).
    pub refinement: Vec<Step>,
    /// CG iterations.
    pub cg_iterations: Vec<Iteration>,
    /// Factorization speed, GFLOP/s (n³/3 flops).
    pub factor_gflops: Option<f64>,
    /// Seconds per phase.
    pub times: Times,
    /// Memory.
    pub memory: MemoryReport,
    /// Every setting of the run (what `rethink kernel` was asked), to reproduce it and to let
    /// a sweep recognize a finished point.
    pub config: KernelConfig,
}

impl KernelReport {
    /// The closing lines printed to stdout: train error, norm, phase times, and the demo's
    /// `err = x.xx%` line.
    pub fn summary(&self) -> String {
        let t = &self.times;
        let mut lines = vec![
            format!("train error = {:.2}%", self.train_error_percent),
            format!("norm cᵀKc = {:.6e}, ‖w‖ = √(cᵀKc) = {:.4}", self.norm_ctkc, self.norm_w),
        ];
        if self.solver.solver == "cholesky" {
            lines.push(format!(
                "times: load {:.1}s, features {:.1}s, kernel {:.1}s, factor {:.1}s, solve {:.1}s, refinement {:.1}s, predict {:.1}s, total {:.1}s",
                t.load, t.features, t.kernel, t.factor, t.solve, t.refine, t.predict, t.total
            ));
        } else {
            match (self.fit_iterations, self.fit_kernel_passes) {
                (Some(it), Some(passes)) => {
                    lines.push(format!("fit: train error 0 after {it} CG iterations ({passes} passes over K)"))
                }
                _ => lines.push("fit: the train error never reached 0".into()),
            }
            lines.push(format!(
                "times: load {:.1}s, features {:.1}s, preconditioner {:.1}s, cg {:.1}s, predict {:.1}s, total {:.1}s",
                t.load, t.features, t.kernel, t.refine, t.predict, t.total
            ));
        }
        if let Some(peak) = self.memory.peak_rss_bytes {
            lines.push(format!("peak memory: {}", super::memory::gib(peak)));
        }
        lines.push(format!("err = {:.2}%", self.test_error_percent));
        lines.join("\n")
    }

    /// Writes `dir/result.json` atomically (creating `dir`); returns its path.
    pub fn write_json(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("result.json");
        let mut text = serde_json::to_string_pretty(self).context("cannot serialize the result")?;
        text.push('\n');
        write_atomic(&path, text.as_bytes())?;
        Ok(path)
    }
}
