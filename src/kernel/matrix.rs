//! Kernel functions and kernel-matrix blocks computed by GEMM, always in f64.
//!
//! A block K(X_I, Z_J) is built from the Gram block G = X_I·Z_Jᵀ (one f64 GEMM) as
//! d²_ij = ‖x_i‖² + ‖z_j‖² − 2·G_ij, clamped at 0 (rounding can make it slightly negative),
//! then k(d²) elementwise. The GEMM is where nearly all the flops are (2·|I|·|J|·dim), and it
//! runs at the machine's f64 GEMM speed; exact pairwise differences (as scipy's `pdist`)
//! would be an order of magnitude slower. On the diagonal of the training kernel d² is set to
//! exactly 0, so K_ii = 1 as in scipy.
//!
//! The matrix-free products here ([`symmetric_product`], [`cross_product`]) recompute K
//! block by block and never store it: they give the exact f64 residual of iterative
//! refinement, the matrix-vector product of conjugate gradient, and the test predictions.

use faer::linalg::matmul::matmul;
use faer::prelude::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::Serialize;
use std::ops::Range;
use std::sync::Mutex;

/// A translation-invariant kernel k(x, y) = f(‖x − y‖²).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum KernelFn {
    /// exp(−bandwidth·‖x − y‖²): the paper's and the demo's (bandwidth 0.02 on MNIST/255).
    Gaussian {
        /// The factor of ‖x − y‖² in the exponent.
        bandwidth: f64,
    },
    /// exp(−‖x − y‖/σ): the non-smooth kernel that fits random labels easily (Belkin et al. 2018).
    Laplacian {
        /// The length scale σ.
        sigma: f64,
    },
}

impl KernelFn {
    /// k as a function of the squared distance `d2 ≥ 0`.
    #[inline]
    pub fn of_sq_dist(self, d2: f64) -> f64 {
        match self {
            KernelFn::Gaussian { bandwidth } => (-bandwidth * d2).exp(),
            KernelFn::Laplacian { sigma } => (-d2.sqrt() / sigma).exp(),
        }
    }

    /// Human-readable formula, e.g. `exp(-0.02·‖x−y‖²)`.
    pub fn describe(self) -> String {
        match self {
            KernelFn::Gaussian { bandwidth } => format!("gaussian exp(-{bandwidth}·‖x−y‖²)"),
            KernelFn::Laplacian { sigma } => format!("laplacian exp(-‖x−y‖/{sigma})"),
        }
    }
}

/// Points as rows of a row-major f64 matrix, with their squared norms precomputed.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Number of points (rows).
    pub n: usize,
    /// Dimension of each point (columns).
    pub dim: usize,
    /// `n × dim` values, row-major.
    pub data: Vec<f64>,
    /// ‖x_i‖² for every row.
    pub sq_norms: Vec<f64>,
}

impl Features {
    /// Wraps row-major `data` of `n` points of dimension `dim`.
    ///
    /// Panics if `data.len() != n * dim` (a programming error, not bad input).
    pub fn new(data: Vec<f64>, n: usize, dim: usize) -> Self {
        assert_eq!(data.len(), n * dim, "Features::new: {n}×{dim} needs {} values", n * dim);
        let sq_norms = if dim == 0 {
            vec![0.0; n]
        } else {
            data.chunks_exact(dim).map(|r| r.iter().map(|v| v * v).sum()).collect()
        };
        Self { n, dim, data, sq_norms }
    }

    /// Rows `rows` as a `|rows| × dim` matrix view.
    pub fn rows(&self, rows: Range<usize>) -> MatRef<'_, f64> {
        let len = rows.len();
        MatRef::from_row_major_slice(&self.data[rows.start * self.dim..rows.end * self.dim], len, self.dim)
    }

    /// Bytes of the feature matrix (for memory plans).
    pub fn bytes(n: usize, dim: usize) -> u64 {
        (n as u64) * (dim as u64 + 1) * 8
    }
}

/// Writes K(x[rows], z[cols]) into `out` (`|rows| × |cols|`), using `out` as GEMM destination.
///
/// `diagonal` says that x and z are the same set and `rows == cols`: the diagonal is then
/// exactly k(0) = 1 (no rounding from the GEMM expansion).
pub fn kernel_block(
    kernel: KernelFn,
    x: &Features,
    rows: Range<usize>,
    z: &Features,
    cols: Range<usize>,
    diagonal: bool,
    mut out: MatMut<'_, f64>,
) {
    debug_assert_eq!((out.nrows(), out.ncols()), (rows.len(), cols.len()));
    matmul(out.rb_mut(), Accum::Replace, x.rows(rows.clone()), z.rows(cols.clone()).transpose(), -2.0, Par::Seq);
    clear_upper_vector_state();
    let xn = &x.sq_norms[rows];
    let zn = &z.sq_norms[cols];
    for (j, &znj) in zn.iter().enumerate() {
        let col = out.rb_mut().col_mut(j).try_as_col_major_mut().expect("contiguous column");
        for (v, &xni) in col.as_slice_mut().iter_mut().zip(xn) {
            *v = kernel.of_sq_dist((*v + xni + znj).max(0.0));
        }
    }
    if diagonal {
        for i in 0..out.nrows().min(out.ncols()) {
            out[(i, i)] = 1.0;
        }
    }
}

/// Marks the upper halves of the vector registers clean (`vzeroupper`).
///
/// faer's x86 GEMM kernels (AVX-512) can return with the upper halves of the vector registers
/// dirty. Code compiled for baseline x86-64 — the elementwise loops here, glibc's `exp` — then
/// pays a state-transition penalty on every SSE instruction: measured on this machine, `exp`
/// after a faer GEMM took 123 ns instead of 3.6 ns. Call this after faer calls, before scalar
/// loops. (A no-op without AVX.)
#[inline]
pub fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked just above), all `zeroupper` needs.
        unsafe { zeroupper() }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn zeroupper() {
    std::arch::x86_64::_mm256_zeroupper()
}

/// Start offsets of blocks of `block` rows covering `0..n` (the last may be shorter).
pub fn block_ranges(n: usize, block: usize) -> Vec<Range<usize>> {
    (0..n.div_ceil(block)).map(|b| b * block..((b + 1) * block).min(n)).collect()
}

/// K(X, X)·c in f64 without storing K: lower-triangle blocks are computed once and used for
/// both K_IJ·c_J and K_IJᵀ·c_I. `c` is `n × m`; blocks of `block` rows; parallel over blocks,
/// each worker thread adding into its own `n × m` accumulator (so the extra memory is
/// threads·n·m, whatever rayon's splitting), summed at the end.
pub fn symmetric_product(kernel: KernelFn, x: &Features, c: MatRef<'_, f64>, block: usize) -> Mat<f64> {
    assert_eq!(c.nrows(), x.n, "symmetric_product: c has {} rows for {} points", c.nrows(), x.n);
    let ranges = block_ranges(x.n, block);
    let pairs: Vec<(usize, usize)> = (0..ranges.len()).flat_map(|i| (0..=i).map(move |j| (i, j))).collect();
    let m = c.ncols();
    let accumulators: Vec<Mutex<Option<Mat<f64>>>> = (0..rayon::current_num_threads()).map(|_| Mutex::new(None)).collect();
    pairs.par_iter().for_each_init(
        || Mat::<f64>::zeros(block, block),
        |tile, &(i, j)| {
            let (ri, rj) = (ranges[i].clone(), ranges[j].clone());
            let mut k = tile.as_mut().submatrix_mut(0, 0, ri.len(), rj.len());
            kernel_block(kernel, x, ri.clone(), x, rj.clone(), i == j, k.rb_mut());
            let k = k.rb();
            let slot = rayon::current_thread_index().unwrap_or(0) % accumulators.len();
            let mut guard = accumulators[slot].lock().expect("accumulator lock poisoned");
            let acc = guard.get_or_insert_with(|| Mat::zeros(x.n, m));
            matmul(acc.as_mut().subrows_mut(ri.start, ri.len()), Accum::Add, k, c.subrows(rj.start, rj.len()), 1.0, Par::Seq);
            if i != j {
                let ci = c.subrows(ri.start, ri.len());
                matmul(acc.as_mut().subrows_mut(rj.start, rj.len()), Accum::Add, k.transpose(), ci, 1.0, Par::Seq);
            }
        },
    );
    let mut total = Mat::<f64>::zeros(x.n, m);
    clear_upper_vector_state();
    for acc in accumulators.into_iter().filter_map(|a| a.into_inner().expect("accumulator lock poisoned")) {
        total += acc;
    }
    total
}

/// K(Z, X)·c in f64 without storing K(Z, X): predictions at the points `z` of the kernel
/// expansion with coefficients `c` (`x.n × m`) on the points `x`. Parallel over blocks of z.
pub fn cross_product(kernel: KernelFn, z: &Features, x: &Features, c: MatRef<'_, f64>, block: usize) -> Mat<f64> {
    assert_eq!(c.nrows(), x.n, "cross_product: c has {} rows for {} points", c.nrows(), x.n);
    let mut out = Mat::<f64>::zeros(z.n, c.ncols());
    let x_ranges = block_ranges(x.n, block);
    out.as_mut()
        .par_row_chunks_mut(block)
        .enumerate()
        .for_each_init(
            || Mat::<f64>::zeros(block, block),
            |tile, (b, mut out_rows)| {
                let rz = b * block..(b * block + out_rows.nrows());
                for rx in &x_ranges {
                    let mut k = tile.as_mut().submatrix_mut(0, 0, rz.len(), rx.len());
                    kernel_block(kernel, z, rz.clone(), x, rx.clone(), false, k.rb_mut());
                    matmul(out_rows.rb_mut(), Accum::Add, k.rb(), c.subrows(rx.start, rx.len()), 1.0, Par::Seq);
                }
            },
        );
    clear_upper_vector_state();
    out
}

/// Index of the largest entry of each row (ties: the first), as class predictions.
pub fn argmax_rows(scores: MatRef<'_, f64>) -> Vec<u8> {
    (0..scores.nrows())
        .map(|i| {
            let mut best = 0;
            for j in 1..scores.ncols() {
                if scores[(i, j)] > scores[(i, best)] {
                    best = j;
                }
            }
            best as u8
        })
        .collect()
}

/// One-hot targets: row i has a 1 in column `labels[i]`.
pub fn one_hot(labels: &[u8], classes: usize) -> Mat<f64> {
    Mat::from_fn(labels.len(), classes, |i, j| if labels[i] as usize == j { 1.0 } else { 0.0 })
}

/// Fraction of `predicted` that differ from `truth`.
pub fn error_rate(predicted: &[u8], truth: &[u8]) -> f64 {
    assert_eq!(predicted.len(), truth.len());
    if truth.is_empty() {
        return 0.0;
    }
    predicted.iter().zip(truth).filter(|(p, t)| p != t).count() as f64 / truth.len() as f64
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rand::Rng;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    /// `n` random points in [0,1]^dim.
    pub(crate) fn random_points(n: usize, dim: usize, seed: u64) -> Features {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Features::new((0..n * dim).map(|_| rng.random::<f64>()).collect(), n, dim)
    }

    /// K by exact pairwise differences, as scipy's pdist.
    pub(crate) fn dense_kernel(kernel: KernelFn, x: &Features, z: &Features) -> Mat<f64> {
        Mat::from_fn(x.n, z.n, |i, j| {
            let d2: f64 = (0..x.dim).map(|k| (x.data[i * x.dim + k] - z.data[j * z.dim + k]).powi(2)).sum();
            kernel.of_sq_dist(d2)
        })
    }

    #[test]
    fn blocks_match_pairwise_differences() {
        let x = random_points(37, 11, 1);
        let z = random_points(23, 11, 2);
        for kernel in [KernelFn::Gaussian { bandwidth: 0.3 }, KernelFn::Laplacian { sigma: 1.5 }] {
            let mut out = Mat::<f64>::zeros(23, 37);
            kernel_block(kernel, &z, 0..23, &x, 0..37, false, out.as_mut());
            let want = dense_kernel(kernel, &z, &x);
            assert!((&out - &want).norm_max() < 1e-13);
            let mut diag = Mat::<f64>::zeros(37, 37);
            kernel_block(kernel, &x, 0..37, &x, 0..37, true, diag.as_mut());
            let want = dense_kernel(kernel, &x, &x);
            assert!((&diag - &want).norm_max() < 1e-7, "laplacian near 0 is sensitive, but the diagonal is exact");
            assert!((0..37).all(|i| diag[(i, i)] == 1.0));
        }
    }

    #[test]
    fn matrix_free_products_match_dense() {
        let kernel = KernelFn::Gaussian { bandwidth: 0.5 };
        let x = random_points(53, 7, 3);
        let z = random_points(19, 7, 4);
        let c = Mat::from_fn(53, 3, |i, j| ((i * 3 + j) as f64).sin());
        let want = dense_kernel(kernel, &x, &x) * &c;
        for block in [1, 8, 16, 53, 64] {
            let got = symmetric_product(kernel, &x, c.as_ref(), block);
            assert!((&got - &want).norm_max() < 1e-12, "block {block}");
        }
        let want = dense_kernel(kernel, &z, &x) * &c;
        for block in [5, 19, 32] {
            let got = cross_product(kernel, &z, &x, c.as_ref(), block);
            assert!((&got - &want).norm_max() < 1e-12, "block {block}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(block_ranges(10, 4), vec![0..4, 4..8, 8..10]);
        assert_eq!(block_ranges(8, 4), vec![0..4, 4..8]);
        let y = one_hot(&[2, 0], 3);
        assert_eq!(argmax_rows(y.as_ref()), vec![2, 0]);
        assert_eq!(error_rate(&[1, 2, 3, 4], &[1, 2, 0, 0]), 0.5);
    }
}
