//! Kernel functions and kernel-matrix blocks computed by GEMM, always in f64.
//!
//! A block K(X_I, Z_J) is built from the Gram block G = X_I·Z_Jᵀ as
//! d²_ij = ‖x_i‖² + ‖z_j‖² − 2·G_ij, clamped at 0 (rounding can make it slightly negative),
//! then k(d²) elementwise. The GEMM is where nearly all the flops are (2·|I|·|J|·dim); exact
//! pairwise differences (as scipy's `pdist`) would be an order of magnitude slower. On the
//! diagonal of the training kernel d² is set to exactly 0, so K_ii = 1 as in scipy.
//!
//! Images are 8-bit pixels scaled by 1/255, and for them the Gram block is an *exact* integer
//! computation ([`super::gram`]: int8 VNNI instructions, or exact f32 chunks), several times
//! faster than an f64 GEMM. Squared distances are then exact up to the final multiplication by
//! 1/255² — more accurate than scipy's f64 `pdist`. Other real-valued points go through one
//! f64 GEMM.
//!
//! The matrix-free products here ([`symmetric_product`], [`cross_product`]) recompute K
//! block by block and never store it: they give the exact f64 residual of iterative
//! refinement, the matrix-vector product of conjugate gradient, and the test predictions.

use super::cpu::clear_upper_vector_state;
use super::exp::exp_map;
use super::gram::{PixelRows, gram};
use faer::linalg::matmul::matmul;
use faer::prelude::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;
use serde::Serialize;
use std::ops::Range;

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
    /// x·y: the linear model on the features themselves (not translation-invariant; K has
    /// rank at most the feature dimension, so interpolation needs n ≤ dim or a ridge).
    Linear,
}

impl KernelFn {
    /// k as a function of the squared distance `d2 ≥ 0` (translation-invariant kernels).
    ///
    /// Panics for [`KernelFn::Linear`], which is not a function of the distance.
    #[inline]
    pub fn of_sq_dist(self, d2: f64) -> f64 {
        match self {
            KernelFn::Gaussian { bandwidth } => (-bandwidth * d2).exp(),
            KernelFn::Laplacian { sigma } => (-d2.sqrt() / sigma).exp(),
            KernelFn::Linear => panic!("the linear kernel is not a function of the distance"),
        }
    }

    /// k(x, x) when it is the same for every x (1 for the translation-invariant kernels),
    /// `None` for the linear kernel (k(x, x) = ‖x‖²).
    pub fn at_zero_distance(self) -> Option<f64> {
        match self {
            KernelFn::Gaussian { .. } | KernelFn::Laplacian { .. } => Some(1.0),
            KernelFn::Linear => None,
        }
    }

    /// Replaces each value v by k(d²(aux_i, v)) in one vectorized pass (see [`super::exp`]),
    /// where `d2` maps an auxiliary value (`aux[i]`, e.g. a squared norm) and the old value to
    /// the squared distance (≥ 0).
    #[inline]
    pub fn map_sq_dists<F: Fn(f64, f64) -> f64>(self, values: &mut [f64], aux: &[f64], d2: F) {
        match self {
            KernelFn::Gaussian { bandwidth } => exp_map(values, aux, |a, v| -bandwidth * d2(a, v)),
            KernelFn::Laplacian { sigma } => {
                let inv = 1.0 / sigma;
                exp_map(values, aux, |a, v| -d2(a, v).sqrt() * inv)
            }
            KernelFn::Linear => panic!("the linear kernel is not a function of the distance"),
        }
    }

    /// Human-readable formula, e.g. `exp(-0.02·‖x−y‖²)`.
    pub fn describe(self) -> String {
        match self {
            KernelFn::Gaussian { bandwidth } => format!("gaussian exp(-{bandwidth}·‖x−y‖²)"),
            KernelFn::Laplacian { sigma } => format!("laplacian exp(-‖x−y‖/{sigma})"),
            KernelFn::Linear => "linear x·y".into(),
        }
    }
}

/// How the coordinates of [`Features`] are held.
#[derive(Debug, Clone, PartialEq)]
enum Coords {
    /// Arbitrary reals, row-major f64.
    Real(Vec<f64>),
    /// Arbitrary reals stored in f32 to halve the memory of wide feature maps (tens of
    /// thousands of dimensions); every product converts them to f64 first.
    Real32(Vec<f32>),
    /// 8-bit pixel values p (exact Gram blocks, see [`super::gram`]); the point is p·`scale`.
    Pixels { rows: PixelRows, scale: f64 },
}

/// Points as the rows of an `n × dim` matrix, with their squared norms precomputed.
///
/// Points made from 8-bit pixels ([`Features::from_pixels`]) get exact Gram blocks: see
/// [`kernel_block`].
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// Number of points (rows).
    pub n: usize,
    /// Dimension of each point (columns).
    pub dim: usize,
    coords: Coords,
    /// ‖x_i‖² for every row.
    pub sq_norms: Vec<f64>,
}

impl Features {
    /// Wraps row-major real `data` of `n` points of dimension `dim`.
    ///
    /// Panics if `data.len() != n * dim` (a programming error, not bad input).
    pub fn new(data: Vec<f64>, n: usize, dim: usize) -> Self {
        assert_eq!(data.len(), n * dim, "Features::new: {n}×{dim} needs {} values", n * dim);
        let sq_norms = (0..n).map(|i| data[i * dim..(i + 1) * dim].iter().map(|v| v * v).sum()).collect();
        Self { n, dim, coords: Coords::Real(data), sq_norms }
    }

    /// Wraps row-major f32 `data` of `n` points of dimension `dim` (held in f32, computed on
    /// in f64: the points are exactly these f32 values).
    ///
    /// Panics if `data.len() != n * dim`.
    pub fn from_f32(data: Vec<f32>, n: usize, dim: usize) -> Self {
        assert_eq!(data.len(), n * dim, "Features::from_f32: {n}×{dim} needs {} values", n * dim);
        let sq_norms =
            data.chunks_exact(dim.max(1)).take(n).map(|r| r.iter().map(|&v| (v as f64).powi(2)).sum()).collect();
        Self { n, dim, coords: Coords::Real32(data), sq_norms }
    }

    /// Points p·`scale` from `n` rows of `dim` 8-bit values (pixels / 255 with `scale` = 1/255).
    ///
    /// Panics if `pixels.len() != n * dim`.
    pub fn from_pixels(pixels: &[u8], n: usize, dim: usize, scale: f64) -> Self {
        assert_eq!(pixels.len(), n * dim, "Features::from_pixels: {n}×{dim} needs {} values", n * dim);
        let rows = PixelRows::new(pixels.to_vec(), n, dim);
        let sq_norms = rows.sq_sums.iter().map(|&s| s * scale * scale).collect();
        Self { n, dim, coords: Coords::Pixels { rows, scale }, sq_norms }
    }

    /// Coordinate `k` of point `i`.
    pub fn value(&self, i: usize, k: usize) -> f64 {
        match &self.coords {
            Coords::Real(data) => data[i * self.dim + k],
            Coords::Real32(data) => data[i * self.dim + k] as f64,
            Coords::Pixels { rows, scale } => rows.values[i * self.dim + k] as f64 * scale,
        }
    }

    /// Rows `rows` as a `|rows| × dim` f64 matrix (a view of real data, a copy of pixels).
    fn rows_f64(&self, rows: Range<usize>) -> RowsF64<'_> {
        let len = rows.len();
        match &self.coords {
            Coords::Real(data) => RowsF64::View(MatRef::from_row_major_slice(
                &data[rows.start * self.dim..rows.end * self.dim],
                len,
                self.dim,
            )),
            Coords::Real32(_) | Coords::Pixels { .. } => {
                RowsF64::Owned(Mat::from_fn(len, self.dim, |i, k| self.value(rows.start + i, k)))
            }
        }
    }

    /// Bytes of features made by [`from_pixels`](Self::from_pixels) (for memory plans).
    pub fn pixel_bytes(n: usize, dim: usize) -> u64 {
        PixelRows::bytes(n, dim) + n as u64 * 8
    }

    /// Bytes of features made by [`from_f32`](Self::from_f32) (for memory plans).
    pub fn f32_bytes(n: usize, dim: usize) -> u64 {
        (n as u64) * (dim as u64) * 4 + n as u64 * 8
    }
}

/// Rows of [`Features`] in f64: borrowed or materialized.
enum RowsF64<'a> {
    View(MatRef<'a, f64>),
    Owned(Mat<f64>),
}

impl RowsF64<'_> {
    fn get(&self) -> MatRef<'_, f64> {
        match self {
            RowsF64::View(v) => *v,
            RowsF64::Owned(m) => m.as_ref(),
        }
    }
}

/// Writes `K(x[rows], z[cols])` into `out` (`|rows| × |cols|`), using `out` as GEMM destination.
///
/// For pixel features on both sides the squared distances are exact before the final scaling
/// (integer Gram by [`super::gram::gram`], then scale²·(P_i + Q_j − 2G_ij)). Otherwise one f64
/// GEMM. `diagonal = Some(ridge)` says that x and z are the same set and `rows == cols`: the
/// diagonal is then exactly k(0) = 1 (translation-invariant kernels), plus `ridge` — the λ of
/// the regularized system (K + λI)·c = Y, 0 for interpolation.
pub fn kernel_block(
    kernel: KernelFn,
    x: &Features,
    rows: Range<usize>,
    z: &Features,
    cols: Range<usize>,
    diagonal: Option<f64>,
    mut out: MatMut<'_, f64>,
) {
    debug_assert_eq!((out.nrows(), out.ncols()), (rows.len(), cols.len()));
    debug_assert_eq!(x.dim, z.dim);
    match (&x.coords, &z.coords) {
        (Coords::Pixels { rows: a, scale: sa }, Coords::Pixels { rows: b, scale: sb }) if sa == sb => {
            gram(a, rows.clone(), b, cols.clone(), out.rb_mut());
            let s2 = sa * sa;
            if kernel == KernelFn::Linear {
                out *= faer::Scale(s2);
            } else {
                let (na, nb) = (&a.sq_sums[rows], &b.sq_sums[cols]);
                kernel_columns(kernel, out.rb_mut(), na, nb, |a, b, v| s2 * (a + b - 2.0 * v).max(0.0));
            }
        }
        _ => {
            let (xr, zr) = (x.rows_f64(rows.clone()), z.rows_f64(cols.clone()));
            let linear = kernel == KernelFn::Linear;
            matmul(
                out.rb_mut(),
                Accum::Replace,
                xr.get(),
                zr.get().transpose(),
                if linear { 1.0 } else { -2.0 },
                Par::Seq,
            );
            clear_upper_vector_state();
            if !linear {
                let (xn, zn) = (&x.sq_norms[rows], &z.sq_norms[cols]);
                kernel_columns(kernel, out.rb_mut(), xn, zn, |a, b, v| (v + a + b).max(0.0));
            }
        }
    }
    if let Some(ridge) = diagonal {
        for i in 0..out.nrows().min(out.ncols()) {
            if let Some(k0) = kernel.at_zero_distance() {
                out[(i, i)] = k0;
            }
            out[(i, i)] += ridge;
        }
    }
}

/// Turns every column `j` of `out` (inner products) into kernel values in place, where
/// `sq_dist(row_norm_i, col_norm_j, out_ij)` gives the squared distance of the pair.
fn kernel_columns(
    kernel: KernelFn,
    mut out: MatMut<'_, f64>,
    row_norms: &[f64],
    col_norms: &[f64],
    sq_dist: impl Fn(f64, f64, f64) -> f64,
) {
    for (j, &nj) in col_norms.iter().enumerate() {
        let col = out.rb_mut().col_mut(j).try_as_col_major_mut().expect("contiguous column");
        kernel.map_sq_dists(col.as_slice_mut(), row_norms, |a, v| sq_dist(a, nj, v));
    }
}

/// Start offsets of blocks of `block` rows covering `0..n` (the last may be shorter).
pub fn block_ranges(n: usize, block: usize) -> Vec<Range<usize>> {
    (0..n.div_ceil(block)).map(|b| b * block..((b + 1) * block).min(n)).collect()
}

/// (K(X, X) + ridge·I)·c in f64 without storing K: lower-triangle blocks are computed once and
/// used for both K_IJ·c_J and K_IJᵀ·c_I. `c` is `n × m`; blocks of `block` rows; parallel over blocks,
/// each worker thread adding into its own `n × m` accumulator (so the extra memory is
/// threads·n·m, whatever rayon's splitting), summed at the end.
pub fn symmetric_product(kernel: KernelFn, ridge: f64, x: &Features, c: MatRef<'_, f64>, block: usize) -> Mat<f64> {
    assert_eq!(c.nrows(), x.n, "symmetric_product: c has {} rows for {} points", c.nrows(), x.n);
    let ranges = block_ranges(x.n, block);
    let pairs: Vec<(usize, usize)> = (0..ranges.len()).flat_map(|i| (0..=i).map(move |j| (i, j))).collect();
    let m = c.ncols();
    // A fixed split of the tiles into one contiguous share per thread, each summed in order
    // into its own accumulator, and the accumulators added in order: the same numbers on
    // every run (work stealing would otherwise change the order of the additions).
    let shares = rayon::current_num_threads().clamp(1, pairs.len().max(1));
    let accumulators: Vec<Mat<f64>> = (0..shares)
        .into_par_iter()
        .map(|share| {
            let mut acc = Mat::<f64>::zeros(x.n, m);
            let mut tile = Mat::<f64>::zeros(block, block);
            for &(i, j) in &pairs[share * pairs.len() / shares..(share + 1) * pairs.len() / shares] {
                let (ri, rj) = (ranges[i].clone(), ranges[j].clone());
                let mut k = tile.as_mut().submatrix_mut(0, 0, ri.len(), rj.len());
                kernel_block(kernel, x, ri.clone(), x, rj.clone(), (i == j).then_some(ridge), k.rb_mut());
                let k = k.rb();
                let cj = c.subrows(rj.start, rj.len());
                matmul(acc.as_mut().subrows_mut(ri.start, ri.len()), Accum::Add, k, cj, 1.0, Par::Seq);
                if i != j {
                    let ci = c.subrows(ri.start, ri.len());
                    matmul(acc.as_mut().subrows_mut(rj.start, rj.len()), Accum::Add, k.transpose(), ci, 1.0, Par::Seq);
                }
            }
            acc
        })
        .collect();
    let mut total = Mat::<f64>::zeros(x.n, m);
    clear_upper_vector_state();
    for acc in accumulators {
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
    out.as_mut().par_row_chunks_mut(block).enumerate().for_each_init(
        || Mat::<f64>::zeros(block, block),
        |tile, (b, mut out_rows)| {
            let rz = b * block..(b * block + out_rows.nrows());
            for rx in &x_ranges {
                let mut k = tile.as_mut().submatrix_mut(0, 0, rz.len(), rx.len());
                kernel_block(kernel, z, rz.clone(), x, rx.clone(), None, k.rb_mut());
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
            let d2: f64 = (0..x.dim).map(|k| (x.value(i, k) - z.value(j, k)).powi(2)).sum();
            kernel.of_sq_dist(d2)
        })
    }

    #[test]
    fn blocks_match_pairwise_differences() {
        let x = random_points(37, 11, 1);
        let z = random_points(23, 11, 2);
        for kernel in [KernelFn::Gaussian { bandwidth: 0.3 }, KernelFn::Laplacian { sigma: 1.5 }] {
            let mut out = Mat::<f64>::zeros(23, 37);
            kernel_block(kernel, &z, 0..23, &x, 0..37, None, out.as_mut());
            let want = dense_kernel(kernel, &z, &x);
            assert!((&out - &want).norm_max() < 1e-13);
            let mut diag = Mat::<f64>::zeros(37, 37);
            kernel_block(kernel, &x, 0..37, &x, 0..37, Some(0.0), diag.as_mut());
            let want = dense_kernel(kernel, &x, &x);
            assert!((&diag - &want).norm_max() < 1e-7, "laplacian near 0 is sensitive, but the diagonal is exact");
            assert!((0..37).all(|i| diag[(i, i)] == 1.0));
        }
    }

    /// `n` rows of `dim` pseudo-random bytes, with every value 255 in row 0 (the worst case).
    fn pixels(n: usize, dim: usize, seed: u64) -> Vec<u8> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * dim).map(|i| if i < dim { 255 } else { rng.random::<u8>() }).collect()
    }

    #[test]
    fn pixel_blocks_have_exact_distances() {
        let dim = 784;
        let (a, b) = (pixels(20, dim, 3), pixels(11, dim, 4));
        let scale = 1.0 / 255.0;
        let (x, z) = (Features::from_pixels(&a, 20, dim, scale), Features::from_pixels(&b, 11, dim, scale));
        let mut out = Mat::<f64>::zeros(20, 11);
        kernel_block(KernelFn::Gaussian { bandwidth: 0.02 }, &x, 0..20, &z, 0..11, None, out.as_mut());
        for i in 0..20 {
            for j in 0..11 {
                let d2: u64 = (0..dim).map(|k| (a[i * dim + k] as i64 - b[j * dim + k] as i64).pow(2) as u64).sum();
                let want = (-0.02 * (scale * scale * d2 as f64)).exp();
                assert!(out[(i, j)].to_bits().abs_diff(want.to_bits()) <= 2, "({i},{j})");
            }
        }
        // Real-valued copies of the same points agree to rounding.
        let xr = Features::new((0..20 * dim).map(|t| x.value(t / dim, t % dim)).collect(), 20, dim);
        let mut mixed = Mat::<f64>::zeros(20, 11);
        kernel_block(KernelFn::Gaussian { bandwidth: 0.02 }, &xr, 0..20, &z, 0..11, None, mixed.as_mut());
        assert!((&mixed - &out).norm_max() < 1e-12);
    }

    #[test]
    fn matrix_free_products_match_dense() {
        let kernel = KernelFn::Gaussian { bandwidth: 0.5 };
        let x = random_points(53, 7, 3);
        let z = random_points(19, 7, 4);
        let c = Mat::from_fn(53, 3, |i, j| ((i * 3 + j) as f64).sin());
        let want = dense_kernel(kernel, &x, &x) * &c;
        for block in [1, 8, 16, 53, 64] {
            let got = symmetric_product(kernel, 0.0, &x, c.as_ref(), block);
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
