//! Random convolutional features of section 5 ("a random convolutional net, 32,000 random
//! filters"), in the style of Coates & Ng (2011): one layer of random filters on whitened
//! patches, a rectifier and spatial average pooling.
//!
//! - Patches of `patch`×`patch`×C pixels every `stride` pixels (no padding: 27×27 positions
//!   of 6×6×3 patches on CIFAR-10), each brightness- and contrast-normalized:
//!   (x − mean)/√(var + 10) in pixel units 0–255 (Coates & Ng's constant).
//! - ZCA whitening fitted on `whiten_patches` patches drawn from the training images
//!   (seeded): P = V·diag(1/√(λ + ε))·Vᵀ with ε = `whiten_eps`.
//! - `filters` random directions w ~ N(0, I) in the whitened space, normalized to unit length
//!   (folded into the whitening: one GEMM per image).
//! - Rectifier max(0, w·x̂ − α), α = `threshold` (Coates & Ng's "soft threshold" 0.25).
//! - Average over a `pool_grid`×`pool_grid` grid of regions (1: over the whole image), so the
//!   feature dimension is filters·pool_grid².

use super::patches::{PatchGrid, Shape};
use crate::data::image_set::ImageSet;
use crate::rng::{self, Purpose};
use anyhow::{Result, anyhow, bail};
use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Coates & Ng's contrast-normalization constant, in squared pixel units (0–255 scale).
pub const CONTRAST_EPS: f32 = 10.0;

/// Filters per GEMM when mapping an image (bounds the scratch to positions × this).
const FILTER_CHUNK: usize = 512;

/// Settings of the random-convolution map (flags `--filters`, `--patch`, ...).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RandomConvSettings {
    /// Number of random filters.
    pub filters: usize,
    /// Patch side in pixels.
    pub patch: usize,
    /// Step between patches.
    pub stride: usize,
    /// Pooling regions per side.
    pub pool_grid: usize,
    /// Rectifier threshold α.
    pub threshold: f64,
    /// Patches drawn to fit the whitening.
    pub whiten_patches: usize,
    /// Whitening regularizer ε.
    pub whiten_eps: f64,
}

impl Default for RandomConvSettings {
    fn default() -> Self {
        Self {
            filters: 32_000,
            patch: 6,
            stride: 1,
            pool_grid: 1,
            threshold: 0.25,
            whiten_patches: 100_000,
            whiten_eps: 0.1,
        }
    }
}

impl RandomConvSettings {
    /// Patch grid of the convolution.
    fn grid(&self) -> PatchGrid {
        PatchGrid { size: self.patch, stride: self.stride, pad: 0 }
    }

    /// Checks the settings against images of `shape`; errors name the flag.
    pub fn validate(&self, shape: Shape) -> Result<()> {
        if self.filters == 0 {
            bail!("--filters must be at least 1");
        }
        if self.patch == 0 || self.patch > shape.height.min(shape.width) {
            bail!("--patch {} must be between 1 and the image side {}", self.patch, shape.height.min(shape.width));
        }
        if self.stride == 0 {
            bail!("--conv-stride must be at least 1");
        }
        let positions = self.grid().positions(shape.height).min(self.grid().positions(shape.width));
        if self.pool_grid == 0 || self.pool_grid > positions {
            bail!("--pool-grid {} must be between 1 and the {positions} patch positions per side", self.pool_grid);
        }
        if !self.threshold.is_finite() {
            bail!("--threshold {} must be a finite number", self.threshold);
        }
        let d = self.grid().patch_len(shape.channels);
        if self.whiten_patches <= d {
            bail!("--whiten-patches {} must exceed the patch dimension {d}", self.whiten_patches);
        }
        if !(self.whiten_eps.is_finite() && self.whiten_eps > 0.0) {
            bail!("--whiten-eps {} must be a positive number", self.whiten_eps);
        }
        Ok(())
    }

    /// Feature dimension: filters × pooling regions.
    pub fn dim(&self) -> usize {
        self.filters * self.pool_grid * self.pool_grid
    }
}

/// Brightness and contrast normalization of one patch in place (pixel units).
fn normalize_patch(p: &mut [f32]) {
    let n = p.len() as f32;
    let mean = p.iter().sum::<f32>() / n;
    let var = p.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / (n - 1.0).max(1.0);
    let inv = 1.0 / (var + CONTRAST_EPS).sqrt();
    p.iter_mut().for_each(|v| *v = (*v - mean) * inv);
}

/// The fitted map: whitening folded into the random filters.
pub struct RandomConvMap {
    settings: RandomConvSettings,
    shape: Shape,
    /// Effective filters Fᵀ = (W·P)ᵀ, patch dimension × filters, row-major.
    filters_t: Vec<f32>,
    /// F·m (the whitening mean through each filter) plus the threshold α.
    offset: Vec<f32>,
    /// Pooling region of each patch position, and 1/(positions in that region).
    region: Vec<(usize, f32)>,
}

impl RandomConvMap {
    /// Fits the whitening on patches of `train` and draws the filters, all from
    /// [`Purpose::FeatureMap`] seeded by `seed`.
    pub fn fit(settings: RandomConvSettings, train: &ImageSet, seed: u64) -> Result<Self> {
        let shape = Shape { channels: train.channels, height: train.height, width: train.width };
        settings.validate(shape)?;
        if train.is_empty() {
            bail!("random-conv features need training images to fit the whitening");
        }
        let grid = settings.grid();
        let (oh, ow) = (grid.positions(shape.height), grid.positions(shape.width));
        let d = grid.patch_len(shape.channels);
        let mut rng = rng::stream(seed, Purpose::FeatureMap, 0);

        // Whitening: covariance of normalized patches at random images and positions.
        let m = settings.whiten_patches;
        let mut sample = Mat::<f64>::zeros(m, d);
        let mut patch = vec![0.0f32; d];
        for i in 0..m {
            let img = rng.random_range(0..train.len());
            let (y, x) = (rng.random_range(0..oh) * settings.stride, rng.random_range(0..ow) * settings.stride);
            let image = train.image(img);
            let mut k = 0;
            for c in 0..shape.channels {
                for dy in 0..settings.patch {
                    for dx in 0..settings.patch {
                        patch[k] = image[(c * shape.height + y + dy) * shape.width + x + dx] as f32;
                        k += 1;
                    }
                }
            }
            normalize_patch(&mut patch);
            patch.iter().enumerate().for_each(|(k, &v)| sample[(i, k)] = v as f64);
        }
        let mean: Vec<f64> = (0..d).map(|k| (0..m).map(|i| sample[(i, k)]).sum::<f64>() / m as f64).collect();
        for i in 0..m {
            for k in 0..d {
                sample[(i, k)] -= mean[k];
            }
        }
        let cov = sample.transpose() * &sample * faer::Scale(1.0 / (m as f64 - 1.0));
        drop(sample);
        let eig =
            cov.self_adjoint_eigen(Side::Lower).map_err(|e| anyhow!("whitening: eigendecomposition failed ({e:?})"))?;
        let (v, s) = (eig.U(), eig.S().column_vector());
        let scaled = Mat::<f64>::from_fn(d, d, |i, j| v[(i, j)] / (s[j].max(0.0) + settings.whiten_eps).sqrt());
        let whiten = &scaled * v.transpose();

        // Random unit directions, folded into the (symmetric) whitening: F = W·P.
        let n = settings.filters;
        let mut w = Mat::<f64>::from_fn(n, d, |_, _| StandardNormal.sample(&mut rng));
        for i in 0..n {
            let norm = (0..d).map(|k| w[(i, k)] * w[(i, k)]).sum::<f64>().sqrt();
            (0..d).for_each(|k| w[(i, k)] /= norm);
        }
        let f = &w * &whiten;
        let mut filters_t = vec![0.0f32; d * n];
        for i in 0..n {
            for k in 0..d {
                filters_t[k * n + i] = f[(i, k)] as f32;
            }
        }
        let offset =
            (0..n).map(|i| ((0..d).map(|k| f[(i, k)] * mean[k]).sum::<f64>() + settings.threshold) as f32).collect();

        let g = settings.pool_grid;
        let region_index: Vec<usize> = (0..oh * ow).map(|p| (p / ow) * g / oh * g + (p % ow) * g / ow).collect();
        let mut counts = vec![0usize; g * g];
        region_index.iter().for_each(|&r| counts[r] += 1);
        let region = region_index.iter().map(|&r| (r, 1.0 / counts[r] as f32)).collect();
        Ok(Self { settings, shape, filters_t, offset, region })
    }

    /// Feature dimension.
    pub fn dim(&self) -> usize {
        self.settings.dim()
    }

    /// Writes the features of one 8-bit image into `out` (`dim` values, region-major: all
    /// filters of region 0, then region 1, ...).
    pub fn map(&self, image: &[u8], out: &mut [f32]) {
        let grid = self.settings.grid();
        let positions = grid.positions(self.shape.height) * grid.positions(self.shape.width);
        let d = grid.patch_len(self.shape.channels);
        let n = self.settings.filters;
        let pixels: Vec<f32> = image.iter().map(|&p| p as f32).collect();
        let mut patches = vec![0.0f32; positions * d];
        grid.extract(&pixels, self.shape, &mut patches);
        patches.chunks_exact_mut(d).for_each(normalize_patch);
        let patches = MatRef::from_row_major_slice(&patches, positions, d);
        let all = MatRef::from_row_major_slice(&self.filters_t, d, n);
        let mut z = vec![0.0f32; positions * FILTER_CHUNK];
        out.fill(0.0);
        for start in (0..n).step_by(FILTER_CHUNK) {
            let len = FILTER_CHUNK.min(n - start);
            let z = &mut z[..positions * len];
            matmul(
                MatMut::from_row_major_slice_mut(z, positions, len),
                Accum::Replace,
                patches,
                all.subcols(start, len),
                1.0f32,
                Par::Seq,
            );
            let offset = &self.offset[start..start + len];
            for (row, &(r, weight)) in z.chunks_exact(len).zip(&self.region) {
                let dst = &mut out[r * n + start..r * n + start + len];
                for ((o, &v), &b) in dst.iter_mut().zip(row).zip(offset) {
                    *o += (v - b).max(0.0) * weight;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{SyntheticSpec, generate};

    fn images(n: usize) -> ImageSet {
        generate(SyntheticSpec { train: n, test: 1, num_classes: 10 }, 3).train
    }

    fn small() -> RandomConvSettings {
        RandomConvSettings { filters: 40, whiten_patches: 2_000, pool_grid: 2, ..Default::default() }
    }

    #[test]
    fn features_match_a_direct_loop_and_are_seeded() {
        let set = images(6);
        let map = RandomConvMap::fit(small(), &set, 7).unwrap();
        assert_eq!(map.dim(), 160);
        let mut out = vec![0.0f32; 160];
        map.map(set.image(2), &mut out);
        // Direct: every position, every filter, rectified and averaged per quadrant.
        let d = 108;
        let mut want = vec![0.0f64; 160];
        let mut rectified = 0;
        for py in 0..27 {
            for px in 0..27 {
                let mut p: Vec<f32> = (0..d)
                    .map(|k| set.image(2)[((k / 36) * 32 + py + (k % 36) / 6) * 32 + px + k % 6] as f32)
                    .collect();
                normalize_patch(&mut p);
                let r = (py * 2 / 27) * 2 + px * 2 / 27;
                let count = [14 * 14, 14 * 13, 13 * 14, 13 * 13][r] as f64;
                for f in 0..40 {
                    let z: f64 = (0..d).map(|k| map.filters_t[k * 40 + f] as f64 * p[k] as f64).sum();
                    rectified += usize::from(z < map.offset[f] as f64);
                    want[r * 40 + f] += (z - map.offset[f] as f64).max(0.0) / count;
                }
            }
        }
        for (g, w) in out.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()), "{g} vs {w}");
        }
        assert!(out.iter().any(|&v| v > 0.0) && rectified > 0, "the rectifier must cut some responses");
        let again = RandomConvMap::fit(small(), &set, 7).unwrap();
        assert_eq!(again.filters_t, map.filters_t);
        let other = RandomConvMap::fit(small(), &set, 8).unwrap();
        assert_ne!(other.filters_t, map.filters_t);
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let set = images(5);
        let settings = RandomConvSettings { filters: 108, whiten_patches: 1_000, ..Default::default() };
        assert_eq!(RandomConvMap::fit(settings, &set, 1).unwrap().dim(), 108);
        let bad = RandomConvSettings { filters: 0, ..settings };
        assert!(RandomConvMap::fit(bad, &set, 1).err().unwrap().to_string().contains("--filters must be at least 1"));
        let bad = RandomConvSettings { patch: 40, ..settings };
        assert!(RandomConvMap::fit(bad, &set, 1).err().unwrap().to_string().contains("--patch 40"));
        let bad = RandomConvSettings { pool_grid: 28, ..settings };
        assert!(RandomConvMap::fit(bad, &set, 1).err().unwrap().to_string().contains("--pool-grid 28"));
        let bad = RandomConvSettings { whiten_patches: 50, ..settings };
        assert!(RandomConvMap::fit(bad, &set, 1).err().unwrap().to_string().contains("--whiten-patches 50"));
    }
}
