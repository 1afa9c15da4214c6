//! Conjugate gradient on the matrix-free kernel, for what does not fit in memory.
//!
//! CG needs only products K·p, which [`super::matrix::symmetric_product`] computes from the
//! data block by block: memory O(n·dim), time one kernel pass (n²·dim flops) per iteration.
//! On its own CG converges slowly for smooth kernels — the Gaussian kernel's spectrum decays
//! fast, so cond(K) is large (≈ 10⁶ for 8,000 MNIST digits) — which is exactly the problem
//! EigenPro (Ma and Belkin 2017) attacks by damping the few top eigendirections that dominate
//! the iteration. The optional preconditioner here does the same with a randomized Nyström
//! approximation K ≈ U·Λ·Uᵀ of rank ℓ (Frangella, Tropp and Udell 2023): one extra kernel pass
//! with ℓ columns gives U and Λ, and
//!
//! ```text
//! P⁻¹ = λ_ℓ · U·Λ⁻¹·Uᵀ + (I − U·Uᵀ)
//! ```
//!
//! maps the top ℓ eigenvalues of K down to about λ_ℓ, so the effective condition number drops
//! from λ₁/λ_n to about λ_ℓ/λ_n.
//!
//! [`pcg`] is the shared iteration (also used by refinement with the Cholesky preconditioner).

use super::cpu::clear_upper_vector_state;
use super::matrix::{argmax_rows, error_rate};
use crate::rng::{self, Purpose};
use anyhow::{Result, anyhow};
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Mat, MatRef, Par, Side};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Applies an approximate inverse of K: a factorization of K in some precision (the
/// Cholesky factor of refinement), the Nyström approximation, or the identity.
pub trait Preconditioner: Sync {
    /// M⁻¹·r in f64.
    fn apply(&self, r: MatRef<'_, f64>) -> Mat<f64>;
}

/// The identity: plain, unpreconditioned CG.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity;

impl Preconditioner for Identity {
    fn apply(&self, r: MatRef<'_, f64>) -> Mat<f64> {
        r.to_owned()
    }
}

/// Per-column inner products ⟨a_j, b_j⟩.
pub fn col_dots(a: MatRef<'_, f64>, b: MatRef<'_, f64>) -> Vec<f64> {
    (0..a.ncols()).map(|j| (0..a.nrows()).map(|i| a[(i, j)] * b[(i, j)]).sum()).collect()
}

/// Preconditioned conjugate gradient on K·c = y, one independent CG per column sharing
/// the products K·p. On entry `c` is the start and `r` its residual y − K·c; both are
/// updated in place. After each product `after(c, r)` is called; iteration stops when it
/// returns `true` or after `max_products` products. Returns the number of products.
pub fn pcg(
    product: &dyn Fn(MatRef<'_, f64>) -> Mat<f64>,
    precond: &dyn Preconditioner,
    c: &mut Mat<f64>,
    r: &mut Mat<f64>,
    max_products: usize,
    after: &mut dyn FnMut(&Mat<f64>, &Mat<f64>) -> bool,
) -> usize {
    if max_products == 0 {
        return 0;
    }
    let mut z = precond.apply(r.as_ref());
    let mut p = z.clone();
    let mut rho = col_dots(r.as_ref(), z.as_ref());
    for done in 1..=max_products {
        let q = product(p.as_ref());
        let pq = col_dots(p.as_ref(), q.as_ref());
        for j in 0..c.ncols() {
            // A column already solved exactly has p = 0: leave it alone.
            let alpha = if pq[j] > 0.0 { rho[j] / pq[j] } else { 0.0 };
            for i in 0..c.nrows() {
                c[(i, j)] += alpha * p[(i, j)];
                r[(i, j)] -= alpha * q[(i, j)];
            }
        }
        if after(c, r) || done == max_products {
            return done;
        }
        z = precond.apply(r.as_ref());
        let rho_new = col_dots(r.as_ref(), z.as_ref());
        for j in 0..c.ncols() {
            let beta = if rho[j] > 0.0 { rho_new[j] / rho[j] } else { 0.0 };
            for i in 0..c.nrows() {
                p[(i, j)] = z[(i, j)] + beta * p[(i, j)];
            }
        }
        rho = rho_new;
    }
    max_products
}

/// Which preconditioner `--solver cg` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CgPrecond {
    /// Plain CG.
    None,
    /// Randomized Nyström approximation of rank `--cg-rank` (EigenPro-style damping).
    Nystrom,
}

/// The Nyström preconditioner P⁻¹ = λ_ℓ·U·Λ⁻¹·Uᵀ + (I − U·Uᵀ) (see the module docs).
#[derive(Debug, Clone)]
pub struct Nystrom {
    /// Orthonormal approximate eigenvectors, n × ℓ.
    pub u: Mat<f64>,
    /// Approximate top eigenvalues, decreasing, all positive.
    pub lambda: Vec<f64>,
}

impl Nystrom {
    /// Builds a rank-`rank` approximation from one product K·Ω with a Gaussian test matrix
    /// Ω (seeded by `seed`), by the numerically stable shifted algorithm of Frangella et al.
    pub fn build(product: &dyn Fn(MatRef<'_, f64>) -> Mat<f64>, n: usize, rank: usize, seed: u64) -> Result<Self> {
        let rank = rank.clamp(1, n);
        let mut rng = rng::stream(seed, Purpose::KernelSketch, 0);
        let g = Mat::<f64>::from_fn(n, rank, |_, _| StandardNormal.sample(&mut rng));
        let omega = g.qr().compute_thin_Q();
        let y = product(omega.as_ref());
        let nu = (n as f64).sqrt() * f64::EPSILON * y.norm_l2();
        let y_nu = &y + &omega * faer::Scale(nu);
        let mut core = omega.transpose() * &y_nu;
        for i in 0..rank {
            for j in 0..i {
                let avg = 0.5 * (core[(i, j)] + core[(j, i)]);
                core[(i, j)] = avg;
                core[(j, i)] = avg;
            }
        }
        let llt = core.llt(Side::Lower).map_err(|e| {
            anyhow!("Nyström preconditioner: the sketch core is not positive definite ({e:?}); try a smaller --cg-rank")
        })?;
        // B = Y_ν·L⁻ᵀ, i.e. L·Bᵀ = Y_νᵀ.
        let mut bt = y_nu.transpose().to_owned();
        solve_lower_triangular_in_place(llt.L(), bt.as_mut(), Par::Seq);
        let svd = bt.transpose().thin_svd().map_err(|e| anyhow!("Nyström preconditioner: SVD failed ({e:?})"))?;
        let s = svd.S().column_vector();
        let lambda: Vec<f64> = (0..rank).map(|i| s[i] * s[i] - nu).take_while(|&l| l > 0.0).collect();
        if lambda.is_empty() {
            return Err(anyhow!("Nyström preconditioner: no positive eigenvalue estimate; use --cg-precond none"));
        }
        let u = svd.U().subcols(0, lambda.len()).to_owned();
        clear_upper_vector_state();
        Ok(Self { u, lambda })
    }
}

impl Preconditioner for Nystrom {
    fn apply(&self, r: MatRef<'_, f64>) -> Mat<f64> {
        let last = *self.lambda.last().expect("non-empty");
        let mut coef = self.u.transpose() * r;
        clear_upper_vector_state();
        for (i, &l) in self.lambda.iter().enumerate() {
            let s = last / l - 1.0;
            for j in 0..coef.ncols() {
                coef[(i, j)] *= s;
            }
        }
        let out = r.to_owned() + &self.u * coef;
        clear_upper_vector_state();
        out
    }
}

/// When CG stops and how it is preconditioned.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CgOptions {
    /// Stop when every column has ‖r_j‖ ≤ tol·‖y_j‖.
    pub tol: f64,
    /// At most this many iterations (kernel passes).
    pub max_iters: usize,
    /// Preconditioner.
    pub precond: CgPrecond,
    /// Rank ℓ of the Nyström preconditioner.
    pub rank: usize,
    /// Seed of the Nyström test matrix.
    pub seed: u64,
    /// Stop at the first iteration whose train error is 0 (`--until-fit`): the kernel
    /// counterpart of training until memorization, for fitting time against label noise.
    pub until_fit: bool,
    /// λ of the system (K + λI)·c = y the product computes; train predictions are K·c =
    /// (K + λI)·c − λ·c.
    pub ridge: f64,
}

/// One CG iteration as printed and recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Iteration {
    /// 1-based iteration number.
    pub iter: usize,
    /// Largest ‖r_j‖/‖y_j‖ over the columns.
    pub relative_residual: f64,
    /// Fraction of training points whose argmax(K·c) = argmax(y − r) is not their label.
    pub train_error: f64,
    /// Seconds this iteration took.
    pub seconds: f64,
}

/// What CG produced.
#[derive(Debug, Clone)]
pub struct CgOutcome {
    /// Coefficients c.
    pub c: Mat<f64>,
    /// K·c = y − r.
    pub kc: Mat<f64>,
    /// One entry per iteration.
    pub iterations: Vec<Iteration>,
    /// Whether the tolerance was reached.
    pub converged: bool,
    /// Seconds spent building the preconditioner.
    pub precond_seconds: f64,
    /// Rank of the preconditioner actually used (0 without one).
    pub precond_rank: usize,
}

/// Solves K·c = y by (preconditioned) CG from c = 0, calling `on_iter` after each iteration.
pub fn solve(
    product: &dyn Fn(MatRef<'_, f64>) -> Mat<f64>,
    y: MatRef<'_, f64>,
    labels: &[u8],
    options: CgOptions,
    on_iter: &mut dyn FnMut(&Iteration),
) -> Result<CgOutcome> {
    let n = y.nrows();
    let started = Instant::now();
    let nystrom = match options.precond {
        CgPrecond::Nystrom => Some(Nystrom::build(product, n, options.rank, options.seed)?),
        CgPrecond::None => None,
    };
    let precond_seconds = started.elapsed().as_secs_f64();
    let precond: &dyn Preconditioner = match &nystrom {
        Some(p) => p,
        None => &Identity,
    };
    let y_norms: Vec<f64> = (0..y.ncols()).map(|j| y.col(j).norm_l2().max(f64::MIN_POSITIVE)).collect();
    let mut c = Mat::<f64>::zeros(n, y.ncols());
    let mut r = y.to_owned();
    let mut iterations = Vec::new();
    let mut converged = false;
    let mut last = Instant::now();
    pcg(product, precond, &mut c, &mut r, options.max_iters, &mut |c, r| {
        let rel = (0..r.ncols()).map(|j| r.col(j).norm_l2() / y_norms[j]).fold(0.0, f64::max);
        let kc = y.to_owned() - r - c * faer::Scale(options.ridge);
        let it = Iteration {
            iter: iterations.len() + 1,
            relative_residual: rel,
            train_error: error_rate(&argmax_rows(kc.as_ref()), labels),
            seconds: last.elapsed().as_secs_f64(),
        };
        last = Instant::now();
        on_iter(&it);
        let fitted = options.until_fit && it.train_error == 0.0;
        iterations.push(it);
        converged = rel <= options.tol;
        converged || fitted
    });
    let kc = y.to_owned() - &r;
    let precond_rank = nystrom.as_ref().map_or(0, |p| p.lambda.len());
    Ok(CgOutcome { c, kc, iterations, converged, precond_seconds, precond_rank })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::matrix::tests::{dense_kernel, random_points};
    use crate::kernel::matrix::{KernelFn, one_hot, symmetric_product};
    use faer::prelude::Solve;

    fn setup() -> (KernelFn, crate::kernel::matrix::Features, Vec<u8>) {
        let x = random_points(250, 8, 7);
        let labels: Vec<u8> = (0..250).map(|i| (i * 3 % 10) as u8).collect();
        (KernelFn::Gaussian { bandwidth: 1.0 }, x, labels)
    }

    #[test]
    fn cg_converges_to_the_direct_solution() {
        let (kernel, x, labels) = setup();
        let y = one_hot(&labels, 10);
        let k = dense_kernel(kernel, &x, &x);
        let exact = k.llt(Side::Lower).unwrap().solve(&y);
        let product = |v: MatRef<'_, f64>| symmetric_product(kernel, 0.0, &x, v, 64);
        let mut iters = Vec::new();
        for precond in [CgPrecond::None, CgPrecond::Nystrom] {
            let options =
                CgOptions { tol: 1e-10, max_iters: 2000, precond, rank: 40, seed: 1, until_fit: false, ridge: 0.0 };
            let out = solve(&product, y.as_ref(), &labels, options, &mut |_| {}).unwrap();
            assert!(out.converged, "{precond:?} after {} iterations", out.iterations.len());
            let err = (&out.c - &exact).norm_max() / exact.norm_max();
            assert!(err < 1e-6, "{precond:?}: relative error {err:e}");
            assert_eq!(out.iterations.last().unwrap().train_error, 0.0);
            iters.push(out.iterations.len());
        }
        assert!(iters[1] * 2 < iters[0], "Nyström should cut the iterations: {iters:?}");
    }

    #[test]
    fn ridge_solves_the_shifted_system_and_until_fit_stops_at_zero_train_error() {
        let (kernel, x, labels) = setup();
        let y = one_hot(&labels, 10);
        let ridge = 0.3;
        let mut shifted = dense_kernel(kernel, &x, &x);
        (0..250).for_each(|i| shifted[(i, i)] += ridge);
        let exact = shifted.llt(Side::Lower).unwrap().solve(&y);
        let product = |v: MatRef<'_, f64>| symmetric_product(kernel, ridge, &x, v, 64);
        let base = CgOptions {
            tol: 1e-10,
            max_iters: 500,
            precond: CgPrecond::None,
            rank: 0,
            seed: 0,
            until_fit: false,
            ridge,
        };
        let out = solve(&product, y.as_ref(), &labels, base, &mut |_| {}).unwrap();
        assert!(out.converged && (&out.c - &exact).norm_max() < 1e-6 * exact.norm_max());
        // The recorded train error is that of K·c, not (K + λI)·c.
        let k_only = dense_kernel(kernel, &x, &x) * &out.c;
        let want = error_rate(&argmax_rows(k_only.as_ref()), &labels);
        assert_eq!(out.iterations.last().unwrap().train_error, want);

        let product = |v: MatRef<'_, f64>| symmetric_product(kernel, 0.0, &x, v, 64);
        let full = CgOptions { ridge: 0.0, ..base };
        let all = solve(&product, y.as_ref(), &labels, full, &mut |_| {}).unwrap();
        let fit = solve(&product, y.as_ref(), &labels, CgOptions { until_fit: true, ..full }, &mut |_| {}).unwrap();
        let first_fit = all.iterations.iter().position(|i| i.train_error == 0.0).unwrap() + 1;
        assert_eq!(fit.iterations.len(), first_fit);
        assert!(first_fit < all.iterations.len(), "fitting the labels comes before the tolerance");
        assert!(!fit.converged && fit.iterations.last().unwrap().train_error == 0.0);
    }

    #[test]
    fn stops_at_max_iters() {
        let (kernel, x, labels) = setup();
        let y = one_hot(&labels, 10);
        let product = |v: MatRef<'_, f64>| symmetric_product(kernel, 0.0, &x, v, 64);
        let options = CgOptions {
            tol: 0.0,
            max_iters: 4,
            precond: CgPrecond::None,
            rank: 0,
            seed: 0,
            until_fit: false,
            ridge: 0.0,
        };
        let mut seen = 0;
        let out = solve(&product, y.as_ref(), &labels, options, &mut |it| {
            seen += 1;
            assert_eq!(it.iter, seen);
        })
        .unwrap();
        assert!(!out.converged);
        assert_eq!((out.iterations.len(), seen), (4, 4));
        assert!(out.iterations.iter().all(|i| i.relative_residual.is_finite()));
    }

    #[test]
    fn nystrom_is_exact_for_low_rank_matrices() {
        // K = V·diag(10, 5, 2)·Vᵀ (rank 3): a rank-3 sketch recovers it.
        let n = 60;
        let v = Mat::<f64>::from_fn(n, 3, |i, j| ((i + 1) as f64 * (j + 1) as f64 * 0.37).sin());
        let q = v.qr().compute_thin_Q();
        let d = [10.0, 5.0, 2.0];
        let k = Mat::<f64>::from_fn(n, n, |i, j| (0..3).map(|t| q[(i, t)] * d[t] * q[(j, t)]).sum());
        let product = |m: MatRef<'_, f64>| &k * m;
        let p = Nystrom::build(&product, n, 3, 5).unwrap();
        for (got, want) in p.lambda.iter().zip(d) {
            assert!((got - want).abs() < 1e-8, "{got} vs {want}");
        }
    }
}
