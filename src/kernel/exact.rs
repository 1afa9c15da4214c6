//! The exact solver: kernel tiles → tiled Cholesky → solve → refinement to f64 accuracy.
//!
//! The kernel matrix is computed in f64 (GEMM blocks, [`super::matrix::kernel_block`]) and
//! stored, lower triangle only, in the factorization's precision T: f32 for
//! `--precision f32-refined`, f64 for `--precision f64`. The factor then solves K·c = Y once
//! in precision T, and [`super::refine`] corrects c against the exact f64 residual until the
//! backward error is that of an f64 solve.

use super::cg::Preconditioner;
use super::cholesky::{NotPositiveDefinite, Real, TiledLower};
use super::matrix::{Features, KernelFn, kernel_block, symmetric_product};
use super::refine::{RefineOptions, Step, System, refine};
use anyhow::{Result, anyhow};
use faer::prelude::ReborrowMut;
use faer::{Mat, MatRef};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use std::time::Instant;

/// Settings of one exact solve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExactSettings {
    /// Kernel function.
    pub kernel: KernelFn,
    /// λ of (K + λI)·c = Y (0: interpolation).
    pub ridge: f64,
    /// Tile size of the factorization.
    pub tile: usize,
    /// Tile columns per trailing update.
    pub group: usize,
    /// Block size of the matrix-free products of refinement.
    pub block: usize,
    /// Refinement.
    pub refine: RefineOptions,
    /// Draw a progress bar over the factorization (on a terminal).
    pub progress: bool,
}

/// Result of an exact solve.
#[derive(Debug, Clone)]
pub struct ExactOutcome {
    /// Coefficients c with K·c ≈ Y.
    pub c: Mat<f64>,
    /// K·c from the last exact product.
    pub kc: Mat<f64>,
    /// Refinement steps (one exact K product each).
    pub steps: Vec<Step>,
    /// Whether refinement reached its tolerance.
    pub converged: bool,
    /// ‖K‖∞ (largest row sum).
    pub k_norm_inf: f64,
    /// Seconds computing and storing the kernel matrix.
    pub kernel_seconds: f64,
    /// Seconds factoring.
    pub factor_seconds: f64,
    /// Flops of the factorization (≈ n³/3).
    pub factor_flops: u64,
    /// Seconds of the first solve with the factor.
    pub solve_seconds: f64,
    /// Seconds of refinement.
    pub refine_seconds: f64,
}

/// Bytes of the tiles for `n` points in precision T.
pub fn tile_bytes<T: Real>(n: usize, tile: usize) -> u64 {
    TiledLower::<T>::bytes(n, tile)
}

/// Computes the lower-triangle tiles of K(X, X) in f64 and stores them in precision T
/// (entries too small to matter flushed to 0, see [`Real::FLUSH_BELOW`]); returns the row
/// sums of |K + ridge·I| (in f64), whose maximum is ‖K + ridge·I‖∞.
pub fn build_tiles<T: Real>(kernel: KernelFn, ridge: f64, x: &Features, store: &mut TiledLower<T>) -> Vec<f64> {
    let (n, tile) = (x.n, store.tile());
    store
        .par_tiles_mut()
        .fold(
            || (vec![0.0f64; n], Mat::<f64>::zeros(tile, tile)),
            |(mut sums, mut scratch), (ri, rj, mut t)| {
                let diagonal = ri == rj;
                let mut k = scratch.as_mut().submatrix_mut(0, 0, ri.len(), rj.len());
                kernel_block(kernel, x, ri.clone(), x, rj.clone(), diagonal.then_some(ridge), k.rb_mut());
                for j in 0..rj.len() {
                    let mut col_sum = 0.0;
                    for i in 0..ri.len() {
                        let v = k[(i, j)];
                        t[(i, j)] = T::from_f64_flushed(v);
                        sums[ri.start + i] += v.abs();
                        col_sum += v.abs();
                    }
                    if !diagonal {
                        sums[rj.start + j] += col_sum;
                    }
                }
                (sums, scratch)
            },
        )
        .map(|(sums, _)| sums)
        .reduce(
            || vec![0.0; n],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// A progress bar over `total` flops of factorization (hidden unless `show` and stderr is a
/// terminal).
fn factor_bar(total: u64, show: bool, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if show { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {percent:>3}% {elapsed_precise} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(format!("factor {what}"));
    bar
}

/// Solves K(X, X)·c = y exactly with a tiled Cholesky in precision T (see the module docs).
/// `labels` are the training labels (train error of each refinement step); `log` prints.
pub fn solve<T: Real>(
    x: &Features,
    y: MatRef<'_, f64>,
    labels: &[u8],
    settings: &ExactSettings,
    log: &mut dyn FnMut(&str),
) -> Result<ExactOutcome> {
    let n = x.n;
    let started = Instant::now();
    let mut store = TiledLower::<T>::zeros(n, settings.tile)?;
    let sums = build_tiles(settings.kernel, settings.ridge, x, &mut store);
    let k_norm_inf = sums.iter().cloned().fold(0.0, f64::max);
    let kernel_seconds = started.elapsed().as_secs_f64();
    let gemm_flops = (n as f64) * (n as f64 + 1.0) * x.dim as f64;
    log(&format!(
        "kernel matrix: {n}×{n} in {} tiles of {}, {kernel_seconds:.1}s ({:.0} GFLOP/s)",
        T::NAME,
        settings.tile,
        gemm_flops / kernel_seconds / 1e9
    ));

    let started = Instant::now();
    let factor_flops = store.factor_flops();
    let bar = factor_bar(factor_flops, settings.progress, T::NAME);
    let result = store.factor(settings.group, &|f| bar.inc(f));
    bar.finish_and_clear();
    result.map_err(|NotPositiveDefinite { row }| {
        anyhow!(
            "the kernel matrix is not positive definite in {} (pivot {row} of {n}): duplicate training points, \
             or too ill-conditioned for {}; try --precision f64 or a larger --bandwidth",
            T::NAME,
            T::NAME
        )
    })?;
    let factor_seconds = started.elapsed().as_secs_f64();
    log(&format!("factor: {factor_seconds:.1}s ({:.0} GFLOP/s)", factor_flops as f64 / factor_seconds / 1e9));

    let started = Instant::now();
    let c0 = store.apply(y);
    let solve_seconds = started.elapsed().as_secs_f64();
    log(&format!("solve: {solve_seconds:.2}s"));

    let started = Instant::now();
    let product = |v: MatRef<'_, f64>| symmetric_product(settings.kernel, settings.ridge, x, v, settings.block);
    let mut on_step = |s: &Step| {
        log(&format!(
            "refine {}: relative residual {:.2e}, backward error {:.2e}, train error {:.2}%, {:.1}s",
            s.step,
            s.relative_residual,
            s.backward_error,
            100.0 * s.train_error,
            s.seconds
        ))
    };
    let system = System { product: &product, y, labels, k_norm_inf };
    let refined = refine(&system, &store, c0, settings.refine, &mut on_step);
    let refine_seconds = started.elapsed().as_secs_f64();
    drop(store);
    Ok(ExactOutcome {
        c: refined.c,
        kc: refined.kc,
        steps: refined.steps,
        converged: refined.converged,
        k_norm_inf,
        kernel_seconds,
        factor_seconds,
        factor_flops,
        solve_seconds,
        refine_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::matrix::tests::{dense_kernel, random_points};

    #[test]
    fn tiles_and_row_sums_match_the_dense_kernel() {
        let kernel = KernelFn::Laplacian { sigma: 2.0 };
        let x = random_points(70, 5, 3);
        let mut store = TiledLower::<f64>::zeros(70, 16).unwrap();
        let sums = build_tiles(kernel, 0.0, &x, &mut store);
        let dense = dense_kernel(kernel, &x, &x);
        let lower = store.to_dense_lower();
        for i in 0..70 {
            for j in 0..=i {
                assert!((lower[(i, j)] - dense[(i, j)]).abs() < 1e-7, "({i},{j})");
            }
            let want: f64 = (0..70).map(|j| dense[(i, j)]).sum();
            assert!((sums[i] - want).abs() < 1e-6);
        }
    }
}
