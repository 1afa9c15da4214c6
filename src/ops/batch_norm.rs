//! Batch normalisation fused with an optional ReLU, on contiguous NCHW `f32` slices.
//!
//! burn composes a training-mode batch norm from about ten tensor operations, each a pass over
//! the activation (several of them layout copies), and the ReLU after it is one more pass with
//! its own backward node. Here the forward is two passes (statistics, then normalise + ReLU) and
//! the backward two (per-channel sums, then the input gradient).
//!
//! The statistics are those of PyTorch's and burn's training mode: per-channel mean and *biased*
//! variance over batch and space, `y = γ·(x − mean)/√(var + ε) + β`.

use super::buffer;
use rayon::prelude::*;

/// Shape of an NCHW activation as the kernels see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BnGeometry {
    /// Batch size N.
    pub batch: usize,
    /// Channels C.
    pub channels: usize,
    /// Pixels per channel and image, H·W (1 for a `[N, C]` input).
    pub plane: usize,
}

impl BnGeometry {
    /// Number of values each channel's statistics are taken over.
    fn count(&self) -> usize {
        self.batch * self.plane
    }

    /// The planes of channel `c`, one per image.
    fn planes<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> {
        let (plane, stride) = (self.plane, self.channels * self.plane);
        (0..self.batch).map(move |n| &data[n * stride + c * plane..n * stride + (c + 1) * plane])
    }
}

/// Output and batch statistics of [`forward_train`].
pub struct BnTrainOutput {
    /// Normalised (and rectified) activation, same shape as the input.
    pub output: Vec<f32>,
    /// Per-channel batch mean.
    pub mean: Vec<f32>,
    /// Per-channel biased batch variance.
    pub var: Vec<f32>,
}

/// Training-mode forward: normalise with the batch statistics, then ReLU if `relu`.
pub fn forward_train(
    g: &BnGeometry,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    relu: bool,
) -> BnTrainOutput {
    assert_eq!(x.len(), g.batch * g.channels * g.plane, "batch norm: input size");
    let stats: Vec<(f32, f32)> = (0..g.channels)
        .into_par_iter()
        .map(|c| {
            // f64 sums: exact enough for E[x²] − E[x]² at these counts (≤ 10⁷ values).
            let (mut s, mut s2) = (0.0f64, 0.0f64);
            for p in g.planes(x, c) {
                let (a, b) = sum_and_squares(p);
                s += a;
                s2 += b;
            }
            let n = g.count() as f64;
            let mean = s / n;
            ((mean) as f32, (s2 / n - mean * mean).max(0.0) as f32)
        })
        .collect();
    let mean: Vec<f32> = stats.iter().map(|s| s.0).collect();
    let var: Vec<f32> = stats.iter().map(|s| s.1).collect();
    let output = normalize(g, x, &affine(gamma, beta, &mean, &var, epsilon), relu);
    BnTrainOutput { output, mean, var }
}

/// Inference-mode forward with given (running) statistics, then ReLU if `relu`: one pass.
#[allow(clippy::too_many_arguments)]
pub fn forward_eval(
    g: &BnGeometry,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    relu: bool,
) -> Vec<f32> {
    assert_eq!(x.len(), g.batch * g.channels * g.plane, "batch norm: input size");
    normalize(g, x, &affine(gamma, beta, mean, var, epsilon), relu)
}

/// [`forward_eval`] writing the result over `x` itself.
#[allow(clippy::too_many_arguments)]
pub fn forward_eval_in_place(
    g: &BnGeometry,
    x: &mut [f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    relu: bool,
) {
    assert_eq!(x.len(), g.batch * g.channels * g.plane, "batch norm: input size");
    let coef = affine(gamma, beta, mean, var, epsilon);
    x.par_chunks_mut(g.channels * g.plane).for_each(|xi| {
        for (c, &(scale, shift)) in coef.iter().enumerate() {
            let plane = &mut xi[c * g.plane..(c + 1) * g.plane];
            if relu {
                plane.iter_mut().for_each(|v| *v = (scale * *v + shift).max(0.0));
            } else {
                plane.iter_mut().for_each(|v| *v = scale * *v + shift);
            }
        }
    });
}

/// Per-channel `(scale, shift)` with `y = scale·x + shift`.
pub(crate) fn affine(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], epsilon: f64) -> Vec<(f32, f32)> {
    (0..gamma.len())
        .map(|c| {
            let scale = gamma[c] as f64 / (var[c] as f64 + epsilon).sqrt();
            (scale as f32, (beta[c] as f64 - mean[c] as f64 * scale) as f32)
        })
        .collect()
}

/// `y = max(0?, scale_c·x + shift_c)`, image by image in parallel.
fn normalize(g: &BnGeometry, x: &[f32], coef: &[(f32, f32)], relu: bool) -> Vec<f32> {
    let mut out = buffer::uninit(x.len());
    let image = g.channels * g.plane;
    out.par_chunks_mut(image).zip(x.par_chunks(image)).for_each(|(o, xi)| {
        for (c, &(scale, shift)) in coef.iter().enumerate() {
            let range = c * g.plane..(c + 1) * g.plane;
            let (o, xi) = (&mut o[range.clone()], &xi[range]);
            if relu {
                o.iter_mut().zip(xi).for_each(|(o, &v)| {
                    o.write((scale * v + shift).max(0.0));
                });
            } else {
                o.iter_mut().zip(xi).for_each(|(o, &v)| {
                    o.write(scale * v + shift);
                });
            }
        }
    });
    // SAFETY: the loop wrote every element of every image.
    unsafe { buffer::assume_init(out) }
}

/// Gradients of [`forward_train`]: `(dx, dγ, dβ)`.
///
/// The ReLU's mask is recomputed from `x` with the forward's own arithmetic, so the output need
/// not be kept or read. Both passes walk the images in memory order, one image per task.
#[allow(clippy::too_many_arguments)]
pub fn backward_train(
    g: &BnGeometry,
    x: &[f32],
    grad_out: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    epsilon: f64,
    relu: bool,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), g.batch * g.channels * g.plane, "batch norm backward: input size");
    assert_eq!(grad_out.len(), x.len(), "batch norm backward: gradient size");
    let coef = affine(gamma, beta, mean, var, epsilon);
    let image = g.channels * g.plane;
    // Pass 1: Σ dz and Σ dz·(x − mean) per channel, where dz is the gradient before the ReLU.
    // One partial per image, summed in image order: the result does not depend on how the
    // work was split between threads.
    let partials: Vec<Vec<(f64, f64)>> = x
        .par_chunks(image)
        .zip(grad_out.par_chunks(image))
        .map(|(xi, di)| {
            (0..g.channels)
                .map(|c| {
                    let range = c * g.plane..(c + 1) * g.plane;
                    let (scale, shift) = coef[c];
                    masked_sums(&xi[range.clone()], &di[range], scale, shift, mean[c], relu)
                })
                .collect()
        })
        .collect();
    let mut sums = vec![(0.0f64, 0.0f64); g.channels];
    for part in &partials {
        sums.iter_mut().zip(part).for_each(|(a, b)| *a = (a.0 + b.0, a.1 + b.1));
    }
    let n = g.count() as f64;
    let rstd: Vec<f64> = var.iter().map(|&v| 1.0 / (v as f64 + epsilon).sqrt()).collect();
    // dx = γ·rstd·(dz − mean(dz) − (x − mean)·rstd²·mean(dz·(x − mean))).
    let grad_coef: Vec<[f32; 3]> = (0..g.channels)
        .map(|c| {
            let k = gamma[c] as f64 * rstd[c];
            [k as f32, (sums[c].0 / n) as f32, (sums[c].1 / n * rstd[c] * rstd[c]) as f32]
        })
        .collect();
    let mut grad_in = buffer::uninit(x.len());
    grad_in.par_chunks_mut(image).zip(x.par_chunks(image)).zip(grad_out.par_chunks(image)).for_each(
        |((dx, xi), di)| {
            for c in 0..g.channels {
                let range = c * g.plane..(c + 1) * g.plane;
                let (scale, shift) = coef[c];
                let [k, mdz, mdzx] = grad_coef[c];
                let m = mean[c];
                let (dx, xi, di) = (&mut dx[range.clone()], &xi[range.clone()], &di[range]);
                for ((o, &xv), &dv) in dx.iter_mut().zip(xi).zip(di) {
                    let dz = if relu && scale * xv + shift <= 0.0 { 0.0 } else { dv };
                    o.write(k * (dz - mdz - (xv - m) * mdzx));
                }
            }
        },
    );
    // SAFETY: the loop wrote every element of every image.
    let grad_in = unsafe { buffer::assume_init(grad_in) };
    let grad_gamma = sums.iter().zip(&rstd).map(|(s, r)| (s.1 * r) as f32).collect();
    let grad_beta = sums.iter().map(|s| s.0 as f32).collect();
    (grad_in, grad_gamma, grad_beta)
}

/// `(Σ dz, Σ dz·(x − mean))` over one plane, where `dz = dy` masked by the forward's ReLU
/// (`scale·x + shift > 0`) when `relu`; in independent lanes so that the loop vectorizes (one
/// running f32 sum would not).
fn masked_sums(x: &[f32], dy: &[f32], scale: f32, shift: f32, mean: f32, relu: bool) -> (f64, f64) {
    const LANES: usize = 16;
    let (mut s, mut sx) = ([0.0f32; LANES], [0.0f32; LANES]);
    let n = x.len() / LANES * LANES;
    let dz = |xv: f32, dv: f32| if relu && scale * xv + shift <= 0.0 { 0.0 } else { dv };
    for (xc, dc) in x[..n].chunks_exact(LANES).zip(dy[..n].chunks_exact(LANES)) {
        for i in 0..LANES {
            let d = dz(xc[i], dc[i]);
            s[i] += d;
            sx[i] += d * (xc[i] - mean);
        }
    }
    let (mut a, mut b) = (s.iter().map(|&v| v as f64).sum::<f64>(), sx.iter().map(|&v| v as f64).sum::<f64>());
    for i in n..x.len() {
        let d = dz(x[i], dy[i]);
        a += d as f64;
        b += (d * (x[i] - mean)) as f64;
    }
    (a, b)
}

/// `(Σ v, Σ v²)` of a slice, accumulated in f32 lanes then widened (one plane is ≤ a few
/// thousand values, so f32 partial sums lose nothing that matters).
fn sum_and_squares(v: &[f32]) -> (f64, f64) {
    const LANES: usize = 16;
    let (mut s, mut s2) = ([0.0f32; LANES], [0.0f32; LANES]);
    let chunks = v.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for i in 0..LANES {
            s[i] += chunk[i];
            s2[i] += chunk[i] * chunk[i];
        }
    }
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for i in 0..LANES {
        a += s[i] as f64;
        b += s2[i] as f64;
    }
    for &x in rest {
        a += x as f64;
        b += (x * x) as f64;
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..len)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) % 2001) as f32 / 500.0 - 1.5
            })
            .collect()
    }

    /// f64 reference of the forward pass and of the loss L = Σ w·y, whose gradient we check.
    fn reference(
        g: &BnGeometry,
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f64,
        relu: bool,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = g.count() as f64;
        let mut mean = vec![0.0f64; g.channels];
        let mut var = vec![0.0f64; g.channels];
        for c in 0..g.channels {
            let vals: Vec<f64> = g.planes(x, c).flatten().map(|&v| v as f64).collect();
            mean[c] = vals.iter().sum::<f64>() / n;
            var[c] = vals.iter().map(|v| (v - mean[c]).powi(2)).sum::<f64>() / n;
        }
        let mut y = vec![0.0f64; x.len()];
        for (i, v) in y.iter_mut().enumerate() {
            let c = (i / g.plane) % g.channels;
            let z = gamma[c] as f64 * (x[i] as f64 - mean[c]) / (var[c] + eps).sqrt() + beta[c] as f64;
            *v = if relu { z.max(0.0) } else { z };
        }
        (y, mean, var)
    }

    #[test]
    fn forward_and_backward_match_an_f64_reference() {
        for (g, relu) in [
            (BnGeometry { batch: 3, channels: 4, plane: 25 }, true),
            (BnGeometry { batch: 5, channels: 3, plane: 1 }, false),
            (BnGeometry { batch: 2, channels: 2, plane: 40 }, false),
        ] {
            let x = values(g.batch * g.channels * g.plane, 1);
            let gamma = values(g.channels, 2).iter().map(|v| v + 2.0).collect::<Vec<_>>();
            let beta = values(g.channels, 3);
            let eps = 1e-3;
            let out = forward_train(&g, &x, &gamma, &beta, eps, relu);
            let (y, mean, var) = reference(&g, &x, &gamma, &beta, eps, relu);
            for (a, b) in out.output.iter().zip(&y) {
                assert!((*a as f64 - b).abs() < 1e-4, "output {a} vs {b}");
            }
            for c in 0..g.channels {
                assert!((out.mean[c] as f64 - mean[c]).abs() < 1e-5 && (out.var[c] as f64 - var[c]).abs() < 1e-5);
            }
            let eval = forward_eval(&g, &x, &gamma, &beta, &out.mean, &out.var, eps, relu);
            for (a, b) in eval.iter().zip(&out.output) {
                assert!((a - b).abs() < 1e-5);
            }
            let mut in_place = x.clone();
            forward_eval_in_place(&g, &mut in_place, &gamma, &beta, &out.mean, &out.var, eps, relu);
            assert_eq!(in_place, eval);
            // Loss L = Σ w·y: compare the analytic gradients with central differences in f64.
            let w = values(x.len(), 4);
            let loss = |x: &[f32], gamma: &[f32], beta: &[f32]| {
                reference(&g, x, gamma, beta, eps, relu).0.iter().zip(&w).map(|(y, w)| y * *w as f64).sum::<f64>()
            };
            let (dx, dgamma, dbeta) = backward_train(&g, &x, &w, &gamma, &beta, &out.mean, &out.var, eps, relu);
            let h = 1e-3f32;
            let check = |analytic: f32, plus: f64, minus: f64, what: &str| {
                let numeric = (plus - minus) / (2.0 * h as f64);
                assert!(
                    (analytic as f64 - numeric).abs() < 2e-2 * (1.0 + numeric.abs()),
                    "{what}: {analytic} vs {numeric}"
                );
            };
            for i in (0..x.len()).step_by(7) {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[i] += h;
                xm[i] -= h;
                check(dx[i], loss(&xp, &gamma, &beta), loss(&xm, &gamma, &beta), "dx");
            }
            for c in 0..g.channels {
                let (mut gp, mut gm) = (gamma.clone(), gamma.clone());
                gp[c] += h;
                gm[c] -= h;
                check(dgamma[c], loss(&x, &gp, &beta), loss(&x, &gm, &beta), "dgamma");
                let (mut bp, mut bm) = (beta.clone(), beta.clone());
                bp[c] += h;
                bm[c] -= h;
                check(dbeta[c], loss(&x, &gamma, &bp), loss(&x, &gamma, &bm), "dbeta");
            }
        }
    }
}
