//! The Gabor wavelet transform of section 5: a first-order scattering transform (Mallat 2012;
//! Bruna & Mallat 2013) on each colour channel.
//!
//! A bank of complex Morlet (zero-mean Gabor) wavelets ψ_{j,θ} at `scales` J dyadic scales and
//! `orientations` L angles: envelope σ_j = σ₀·2^j, centre frequency ξ_j = (3π/4)·2^−j (one
//! octave per scale, Kymatio's constants), θ = π·l/L, each normalized to unit L1 norm and
//! truncated at 3σ. Features are the low-pass image x⋆φ and the moduli |x⋆ψ_{j,θ}|, each
//! averaged by a Gaussian window φ of width σ₀·2^J and subsampled every 2^J pixels: on MNIST
//! (J = 2, L = 8) that is (1 + 16) maps of 7×7 = 833 features. The modulus makes the features
//! stable to small shifts and deformations, which is why they generalize better than pixels.

use super::patches::{PatchGrid, Shape};
use anyhow::{Result, bail};
use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use std::f64::consts::PI;

/// Settings of the Gabor bank (flags `--gabor-*`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct GaborSettings {
    /// Number of dyadic scales J (also sets the pooling: window σ₀·2^J, stride 2^J).
    pub scales: usize,
    /// Number of orientations L over [0, π).
    pub orientations: usize,
    /// Envelope width σ₀ of the finest wavelet, in pixels.
    pub sigma: f64,
}

impl Default for GaborSettings {
    fn default() -> Self {
        Self { scales: 2, orientations: 8, sigma: 0.8 }
    }
}

impl GaborSettings {
    /// Checks the settings; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        if !(1..=5).contains(&self.scales) {
            bail!("--gabor-scales {} must be between 1 and 5", self.scales);
        }
        if !(1..=32).contains(&self.orientations) {
            bail!("--gabor-orientations {} must be between 1 and 32", self.orientations);
        }
        if !(self.sigma.is_finite() && self.sigma >= 0.3 && self.sigma <= 8.0) {
            bail!("--gabor-sigma {} must be between 0.3 and 8 pixels", self.sigma);
        }
        Ok(())
    }

    /// Pooling stride 2^J.
    fn stride(&self) -> usize {
        1 << self.scales
    }

    /// Output positions along an axis of `len` pixels.
    fn pooled(&self, len: usize) -> usize {
        len.div_ceil(self.stride())
    }

    /// Feature dimension for images of `shape`.
    pub fn dim(&self, shape: Shape) -> usize {
        shape.channels * (1 + self.scales * self.orientations) * self.pooled(shape.height) * self.pooled(shape.width)
    }
}

/// The wavelet bank and pooling windows for one image shape.
pub struct GaborBank {
    settings: GaborSettings,
    shape: Shape,
    grid: PatchGrid,
    /// Filters as a (k·k) × (2·J·L) matrix, row-major: real and imaginary part of each wavelet.
    filters: Vec<f32>,
    pool_y: Vec<Vec<f32>>,
    pool_x: Vec<Vec<f32>>,
}

/// Normalized Gaussian pooling weights: output `a` of `out` centred at stride·a + (stride−1)/2.
fn pooling_weights(len: usize, out: usize, stride: usize, sigma: f64) -> Vec<Vec<f32>> {
    (0..out)
        .map(|a| {
            let centre = (stride * a) as f64 + (stride as f64 - 1.0) / 2.0;
            let w: Vec<f64> =
                (0..len).map(|y| (-((y as f64 - centre).powi(2)) / (2.0 * sigma * sigma)).exp()).collect();
            let total: f64 = w.iter().sum();
            w.iter().map(|v| (v / total) as f32).collect()
        })
        .collect()
}

impl GaborBank {
    /// Builds the bank for images of `shape`.
    pub fn new(settings: GaborSettings, shape: Shape) -> Self {
        let (j_max, l_max, sigma0) = (settings.scales, settings.orientations, settings.sigma);
        let radius = (3.0 * sigma0 * (1 << (j_max - 1)) as f64).ceil() as usize;
        let size = 2 * radius + 1;
        let columns = 2 * j_max * l_max;
        let mut filters = vec![0.0f32; size * size * columns];
        for j in 0..j_max {
            let sigma = sigma0 * (1 << j) as f64;
            let xi = 0.75 * PI / (1 << j) as f64;
            for l in 0..l_max {
                let theta = PI * l as f64 / l_max as f64;
                let (c, s) = (theta.cos(), theta.sin());
                let taps: Vec<(f64, f64)> = (0..size * size)
                    .map(|t| {
                        let (y, x) = ((t / size) as f64 - radius as f64, (t % size) as f64 - radius as f64);
                        ((-(x * x + y * y) / (2.0 * sigma * sigma)).exp(), xi * (x * c + y * s))
                    })
                    .collect();
                // β makes the wavelet zero-mean: Σ g·(e^{iφ} − β) = 0.
                let g_sum: f64 = taps.iter().map(|t| t.0).sum();
                let beta = (
                    taps.iter().map(|t| t.0 * t.1.cos()).sum::<f64>() / g_sum,
                    taps.iter().map(|t| t.0 * t.1.sin()).sum::<f64>() / g_sum,
                );
                let psi: Vec<(f64, f64)> =
                    taps.iter().map(|&(g, phase)| (g * (phase.cos() - beta.0), g * (phase.sin() - beta.1))).collect();
                let l1: f64 = psi.iter().map(|(re, im)| re.hypot(*im)).sum();
                let col = 2 * (j * l_max + l);
                for (t, (re, im)) in psi.iter().enumerate() {
                    filters[t * columns + col] = (re / l1) as f32;
                    filters[t * columns + col + 1] = (im / l1) as f32;
                }
            }
        }
        let (stride, pool_sigma) = (settings.stride(), sigma0 * settings.stride() as f64);
        Self {
            settings,
            shape,
            grid: PatchGrid { size, stride: 1, pad: radius },
            filters,
            pool_y: pooling_weights(shape.height, settings.pooled(shape.height), stride, pool_sigma),
            pool_x: pooling_weights(shape.width, settings.pooled(shape.width), stride, pool_sigma),
        }
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.settings.dim(self.shape)
    }

    /// Averages the `h × w` map `m` by the pooling windows into `out` (oh × ow).
    fn pool(&self, m: &[f32], out: &mut [f32]) {
        let (h, w) = (self.shape.height, self.shape.width);
        let ow = self.pool_x.len();
        let mut rows = vec![0.0f32; h * ow];
        for y in 0..h {
            for (b, wx) in self.pool_x.iter().enumerate() {
                rows[y * ow + b] = m[y * w..(y + 1) * w].iter().zip(wx).map(|(v, k)| v * k).sum();
            }
        }
        for (a, wy) in self.pool_y.iter().enumerate() {
            for b in 0..ow {
                out[a * ow + b] = (0..h).map(|y| wy[y] * rows[y * ow + b]).sum();
            }
        }
    }

    /// Writes the features of one 8-bit image (scaled to [0, 1]) into `out` (`dim` values):
    /// per channel, the pooled low-pass map, then the pooled moduli scale by scale, angle by angle.
    pub fn map(&self, image: &[u8], out: &mut [f32]) {
        let image: Vec<f32> = image.iter().map(|&p| p as f32 / 255.0).collect();
        let Shape { channels, height: h, width: w } = self.shape;
        let plane_shape = Shape { channels: 1, height: h, width: w };
        let (klen, columns) = (self.grid.patch_len(1), 2 * self.settings.scales * self.settings.orientations);
        let pooled = self.pool_y.len() * self.pool_x.len();
        let mut patches = vec![0.0f32; h * w * klen];
        let mut conv = vec![0.0f32; h * w * columns];
        let mut modulus = vec![0.0f32; h * w];
        let per_channel = (1 + columns / 2) * pooled;
        for c in 0..channels {
            let plane = &image[c * h * w..(c + 1) * h * w];
            let out = &mut out[c * per_channel..(c + 1) * per_channel];
            self.pool(plane, &mut out[..pooled]);
            self.grid.extract(plane, plane_shape, &mut patches);
            matmul(
                MatMut::from_row_major_slice_mut(&mut conv, h * w, columns),
                Accum::Replace,
                MatRef::from_row_major_slice(&patches, h * w, klen),
                MatRef::from_row_major_slice(&self.filters, klen, columns),
                1.0f32,
                Par::Seq,
            );
            for f in 0..columns / 2 {
                for (p, m) in modulus.iter_mut().enumerate() {
                    *m = conv[p * columns + 2 * f].hypot(conv[p * columns + 2 * f + 1]);
                }
                self.pool(&modulus, &mut out[(1 + f) * pooled..(2 + f) * pooled]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank() -> GaborBank {
        GaborBank::new(GaborSettings::default(), Shape { channels: 1, height: 28, width: 28 })
    }

    #[test]
    fn wavelets_are_zero_mean_and_unit_l1() {
        let b = bank();
        let columns = 32;
        let taps = b.filters.len() / columns;
        for f in 0..16 {
            let (re, im): (Vec<f64>, Vec<f64>) = (0..taps)
                .map(|t| (b.filters[t * columns + 2 * f] as f64, b.filters[t * columns + 2 * f + 1] as f64))
                .unzip();
            assert!(re.iter().sum::<f64>().abs() < 1e-6 && im.iter().sum::<f64>().abs() < 1e-6, "filter {f}");
            let l1: f64 = re.iter().zip(&im).map(|(a, b)| a.hypot(*b)).sum();
            assert!((l1 - 1.0).abs() < 1e-5);
        }
        assert_eq!(b.dim(), 833);
    }

    #[test]
    fn a_flat_image_has_only_a_low_pass_response() {
        let b = bank();
        let mut out = vec![0.0; b.dim()];
        b.map(&[51; 784], &mut out);
        // Low-pass of a constant is the constant; wavelets (zero-mean) see only the border.
        assert!(out[..49].iter().all(|v| (v - 0.2).abs() < 1e-5));
        // The centre pooled position (3, 3) of every wavelet map is far from the border.
        assert!((1..17).all(|m| out[m * 49 + 3 * 7 + 3].abs() < 1e-3));
    }

    #[test]
    fn vertical_stripes_excite_the_horizontal_frequency_wavelet_most() {
        let b = bank();
        // Stripes of period 2π/ξ₀ along x: cos(ξ₀·x).
        let xi = 0.75 * PI;
        let image: Vec<u8> = (0..784).map(|p| (127.5 + 127.5 * (xi * (p % 28) as f64).cos()).round() as u8).collect();
        let mut out = vec![0.0; b.dim()];
        b.map(&image, &mut out);
        let centre = |m: usize| out[m * 49 + 3 * 7 + 3];
        let best = (1..17).max_by(|&a, &c| centre(a).total_cmp(&centre(c))).unwrap();
        assert_eq!(best, 1, "scale 0, angle 0 (x-direction frequency) responds most");
        assert!(centre(1) > 5.0 * centre(1 + 4), "the perpendicular angle responds much less");
    }
}
