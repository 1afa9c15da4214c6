//! Iterative refinement: a low-precision factor, an exact f64 residual, f64 accuracy.
//!
//! Factoring K in f32 halves the memory and time of the exact solve, but an f32 solution
//! is only accurate to about cond(K)·2⁻²⁴. Refinement repairs that: compute the residual
//! r = Y − K·c exactly in f64 — matrix-free, recomputing K block by block from the data
//! ([`super::matrix::symmetric_product`]) — and correct c with the cheap f32 factor. Two
//! variants, both one K product per step:
//!
//! - [`Method::Ir`], classic refinement: c ← c + M⁻¹·r, where M = L·Lᵀ is the f32
//!   factorization. Converges by a factor ≈ ‖I − M⁻¹K‖ per step (≈ cond(K)·2⁻²⁴ at best).
//! - [`Method::Pcg`], conjugate gradient on K·c = Y preconditioned by M (Krylov-accelerated
//!   refinement, as in Higham and Pranesh's CG-IR): the same products, but the eigenvalues of
//!   M⁻¹K, all within a small interval around 1, are dealt with optimally — faster, and robust
//!   when the f32 factor is poor.
//!
//! Both stop when the normwise backward error η = ‖r‖∞ / (‖K‖∞‖c‖∞ + ‖Y‖∞), per column, is
//! at most `tol` — i.e. c solves a system within relative distance `tol` of K·c = Y, which is
//! what an f64 direct solve guarantees (η ≈ 10⁻¹⁶); its forward error is then as small as the
//! f64 solution's, cond(K)·η. The f64 direct path uses the same loop: its first residual
//! already meets the tolerance, so it costs one product and certifies the solution.

use super::cg::{Preconditioner, pcg};
use super::cholesky::{Real, TiledLower};
use super::matrix::{argmax_rows, error_rate};
use faer::{Mat, MatRef};
use serde::{Deserialize, Serialize};
use std::time::Instant;

impl<T: Real> Preconditioner for TiledLower<T> {
    /// Solves L·Lᵀ·x = r in precision T: r is scaled by a power of two near its largest
    /// entry first, so small residuals neither underflow nor lose range in f32.
    fn apply(&self, r: MatRef<'_, f64>) -> Mat<f64> {
        let max = r.norm_max();
        let scale = if max > 0.0 && max.is_finite() { max.log2().round().exp2() } else { 1.0 };
        let mut x = Mat::<T>::from_fn(r.nrows(), r.ncols(), |i, j| T::from_f64(r[(i, j)] / scale));
        self.solve_in_place(x.as_mut());
        Mat::from_fn(r.nrows(), r.ncols(), |i, j| x[(i, j)].to_f64() * scale)
    }
}

/// How corrections are computed (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Classic iterative refinement c ← c + M⁻¹(Y − K·c).
    Ir,
    /// Conjugate gradient preconditioned by the factorization.
    Pcg,
}

/// When to stop.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RefineOptions {
    /// IR or PCG.
    pub method: Method,
    /// Target normwise backward error.
    pub tol: f64,
    /// At most this many K products (steps).
    pub max_steps: usize,
}

/// One step: the residual of the current c.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// 1-based step number (= number of K products so far).
    pub step: usize,
    /// ‖Y − K·c‖_F / ‖Y‖_F.
    pub relative_residual: f64,
    /// Normwise backward error η (largest over the columns).
    pub backward_error: f64,
    /// Fraction of training points whose argmax(K·c) is not their label.
    pub train_error: f64,
    /// Seconds this step took.
    pub seconds: f64,
}

/// The refined solution.
#[derive(Debug, Clone)]
pub struct Refined {
    /// The coefficients c.
    pub c: Mat<f64>,
    /// K·c (from the exact products), whence the train predictions and cᵀKc.
    pub kc: Mat<f64>,
    /// One entry per K product.
    pub steps: Vec<Step>,
    /// Whether the backward error reached the tolerance.
    pub converged: bool,
}

/// Normwise backward error of c for K·c = y: max over columns of
/// ‖r_j‖∞ / (‖K‖∞·‖c_j‖∞ + ‖y_j‖∞).
pub fn backward_error(r: MatRef<'_, f64>, c: MatRef<'_, f64>, y: MatRef<'_, f64>, k_norm_inf: f64) -> f64 {
    (0..r.ncols())
        .map(|j| {
            let num = r.col(j).norm_max();
            let den = k_norm_inf * c.col(j).norm_max() + y.col(j).norm_max();
            if num == 0.0 { 0.0 } else { num / den }
        })
        .fold(0.0, f64::max)
}

/// The system K·c = y as refinement sees it.
pub struct System<'a> {
    /// K·v, exactly in f64.
    pub product: &'a dyn Fn(MatRef<'_, f64>) -> Mat<f64>,
    /// The right-hand sides (one-hot targets).
    pub y: MatRef<'a, f64>,
    /// The training labels, for the train error of each step.
    pub labels: &'a [u8],
    /// ‖K‖∞ (largest row sum), for the backward error.
    pub k_norm_inf: f64,
}

/// Refines `c0` towards the solution of `system` (see the module docs) with corrections from
/// `precond`; `on_step` sees each step as it ends.
pub fn refine(
    system: &System<'_>,
    precond: &dyn Preconditioner,
    c0: Mat<f64>,
    options: RefineOptions,
    on_step: &mut dyn FnMut(&Step),
) -> Refined {
    let &System { product, y, labels, k_norm_inf } = system;
    let y_norm = y.norm_l2().max(f64::MIN_POSITIVE);
    let max_steps = options.max_steps.max(1);
    let mut steps = Vec::new();
    let mut last = Instant::now();
    let mut record = |steps: &mut Vec<Step>, c: &Mat<f64>, r: &Mat<f64>, kc: &Mat<f64>| {
        let step = Step {
            step: steps.len() + 1,
            relative_residual: r.norm_l2() / y_norm,
            backward_error: backward_error(r.as_ref(), c.as_ref(), y, k_norm_inf),
            train_error: error_rate(&argmax_rows(kc.as_ref()), labels),
            seconds: last.elapsed().as_secs_f64(),
        };
        last = Instant::now();
        on_step(&step);
        let eta = step.backward_error;
        steps.push(step);
        eta
    };

    let mut c = c0;
    let mut kc = product(c.as_ref());
    let mut r = y.to_owned() - &kc;
    let mut eta = record(&mut steps, &c, &r, &kc);
    if eta <= options.tol {
        return Refined { c, kc, steps, converged: true };
    }
    match options.method {
        Method::Ir => {
            while steps.len() < max_steps {
                c += precond.apply(r.as_ref());
                kc = product(c.as_ref());
                r = y.to_owned() - &kc;
                eta = record(&mut steps, &c, &r, &kc);
                if eta <= options.tol {
                    break;
                }
            }
        }
        Method::Pcg => {
            let mut r = r;
            pcg(product, precond, &mut c, &mut r, max_steps - 1, &mut |c, r| {
                kc = y.to_owned() - r;
                eta = record(&mut steps, c, r, &kc);
                eta <= options.tol
            });
        }
    }
    Refined { c, kc, steps, converged: eta <= options.tol }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::cholesky::TiledLower;
    use crate::kernel::matrix::tests::{dense_kernel, random_points};
    use crate::kernel::matrix::{KernelFn, one_hot, symmetric_product};
    use faer::Side;
    use faer::prelude::Solve;

    /// The f32 tiled factor as a preconditioner, through the same adapter the solver uses.
    fn f32_factor(k: &Mat<f64>, tile: usize) -> TiledLower<f32> {
        let k32 = Mat::<f32>::from_fn(k.nrows(), k.ncols(), |i, j| k[(i, j)] as f32);
        let mut t = TiledLower::from_dense(k32.as_ref(), tile);
        t.factor(2, &|_| {}).unwrap();
        t
    }

    /// A kernel system with cond(K) ≈ 10⁵: f32 alone gives ~3 digits, f64 ~11.
    fn system() -> (KernelFn, crate::kernel::matrix::Features, Mat<f64>, Vec<u8>) {
        let kernel = KernelFn::Gaussian { bandwidth: 1.0 };
        let x = random_points(300, 8, 21);
        let labels: Vec<u8> = (0..300).map(|i| (i * 7 % 10) as u8).collect();
        let k = dense_kernel(kernel, &x, &x);
        (kernel, x, k, labels)
    }

    #[test]
    fn both_methods_reach_f64_accuracy_from_an_f32_factor() {
        let (kernel, x, k, labels) = system();
        let y = one_hot(&labels, 10);
        let exact = k.llt(Side::Lower).unwrap().solve(&y);
        let k_norm = (0..300).map(|i| (0..300).map(|j| k[(i, j)]).sum::<f64>()).fold(0.0, f64::max);
        let factor = f32_factor(&k, 64);
        let c0 = factor.apply(y.as_ref());
        let err0 = (&c0 - &exact).norm_max() / exact.norm_max();
        assert!(err0 > 1e-6, "the f32 solution alone is inaccurate ({err0:e})");
        let product = |v: MatRef<'_, f64>| symmetric_product(kernel, 0.0, &x, v, 64);
        for method in [Method::Ir, Method::Pcg] {
            let options = RefineOptions { method, tol: 1e-15, max_steps: 30 };
            let mut seen = 0;
            let system = System { product: &product, y: y.as_ref(), labels: &labels, k_norm_inf: k_norm };
            let out = refine(&system, &factor, c0.clone(), options, &mut |_| seen += 1);
            assert!(out.converged, "{method:?}: {:?}", out.steps.last());
            assert_eq!(seen, out.steps.len());
            let err = (&out.c - &exact).norm_max() / exact.norm_max();
            assert!(err < 1e-9, "{method:?}: relative error {err:e} vs the f64 solution");
            assert_eq!(out.steps.last().unwrap().train_error, 0.0, "an interpolant fits every label");
            let first = out.steps[0].backward_error;
            assert!(first > 1e-9 && out.steps.last().unwrap().backward_error <= 1e-15, "{first:e}");
        }
    }

    #[test]
    fn an_f64_factor_converges_in_one_product() {
        let (kernel, x, k, labels) = system();
        let y = one_hot(&labels, 10);
        let mut t = TiledLower::from_dense(k.as_ref(), 50);
        t.factor(1, &|_| {}).unwrap();
        let c0 = t.apply(y.as_ref());
        let product = |v: MatRef<'_, f64>| symmetric_product(kernel, 0.0, &x, v, 64);
        let options = RefineOptions { method: Method::Ir, tol: 1e-14, max_steps: 5 };
        let system = System { product: &product, y: y.as_ref(), labels: &labels, k_norm_inf: 300.0 };
        let out = refine(&system, &t, c0, options, &mut |_| {});
        assert!(out.converged);
        assert_eq!(out.steps.len(), 1);
    }

    #[test]
    fn stops_at_max_steps_without_converging() {
        let (kernel, x, k, labels) = system();
        let y = one_hot(&labels, 10);
        let factor = f32_factor(&k, 64);
        let product = |v: MatRef<'_, f64>| symmetric_product(kernel, 0.0, &x, v, 64);
        let options = RefineOptions { method: Method::Ir, tol: 0.0, max_steps: 3 };
        let system = System { product: &product, y: y.as_ref(), labels: &labels, k_norm_inf: 300.0 };
        let out = refine(&system, &factor, factor.apply(y.as_ref()), options, &mut |_| {});
        assert!(!out.converged);
        assert_eq!(out.steps.len(), 3);
    }

    #[test]
    fn backward_error_of_exact_solution_is_zero() {
        let r = Mat::<f64>::zeros(3, 2);
        let c = Mat::<f64>::from_fn(3, 2, |i, j| (i + j) as f64);
        assert_eq!(backward_error(r.as_ref(), c.as_ref(), c.as_ref(), 1.0), 0.0);
        let r = Mat::<f64>::from_fn(3, 1, |i, _| if i == 0 { 1e-10 } else { 0.0 });
        let c = Mat::<f64>::from_fn(3, 1, |_, _| 2.0);
        let y = Mat::<f64>::from_fn(3, 1, |_, _| 1.0);
        assert!((backward_error(r.as_ref(), c.as_ref(), y.as_ref(), 4.0) - 1e-10 / 9.0).abs() < 1e-20);
    }
}
