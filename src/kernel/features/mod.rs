//! Feature maps applied to the images before the kernel (section 5 of the paper): raw pixels,
//! a Gabor wavelet transform ([`gabor`]) and random convolutional features ([`random_conv`]).
//!
//! Raw pixels stay exact 8-bit values (the exact integer Gram path). The other maps are
//! computed in parallel over images with a progress bar, held in f32 (half the memory of the
//! wide random-conv features) and then multiplied by one constant so that the mean squared
//! distance between training points is [`TARGET_MEAN_SQ_DIST`] — about raw MNIST's (104 for
//! pixels/255) — so `--bandwidth` and `--sigma` mean the same on every feature map.

pub mod gabor;
pub mod patches;
pub mod random_conv;

use super::matrix::Features;
use crate::data::image_set::ImageSet;
use anyhow::Result;
use clap::ValueEnum;
use gabor::{GaborBank, GaborSettings};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use patches::Shape;
use random_conv::{RandomConvMap, RandomConvSettings};
use rayon::prelude::*;
use serde::Serialize;

/// Mean squared pairwise distance of the training points after scaling (non-raw maps).
pub const TARGET_MEAN_SQ_DIST: f64 = 100.0;

/// Images per parallel work item (and progress-bar step).
const IMAGE_CHUNK: usize = 16;

/// Which feature map `--features` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureKind {
    /// Pixels / 255.
    Raw,
    /// First-order scattering: pooled moduli of a Gabor (Morlet) wavelet bank.
    Gabor,
    /// One layer of random filters on whitened patches, rectified and pooled.
    RandomConv,
}

/// The feature map and every constant it uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FeatureSettings {
    /// Which map.
    pub kind: FeatureKind,
    /// Gabor bank (with `gabor`).
    pub gabor: GaborSettings,
    /// Random convolution (with `random-conv`).
    pub random_conv: RandomConvSettings,
}

impl FeatureSettings {
    /// Raw pixels.
    pub fn raw() -> Self {
        Self { kind: FeatureKind::Raw, gabor: GaborSettings::default(), random_conv: RandomConvSettings::default() }
    }

    /// Checks the settings of the chosen map against images of `shape`.
    pub fn validate(&self, shape: Shape) -> Result<()> {
        match self.kind {
            FeatureKind::Raw => Ok(()),
            FeatureKind::Gabor => self.gabor.validate(),
            FeatureKind::RandomConv => self.random_conv.validate(shape),
        }
    }

    /// Feature dimension for images of `shape`.
    pub fn dim(&self, shape: Shape) -> usize {
        match self.kind {
            FeatureKind::Raw => shape.channels * shape.height * shape.width,
            FeatureKind::Gabor => self.gabor.dim(shape),
            FeatureKind::RandomConv => self.random_conv.dim(),
        }
    }

    /// Bytes of `n` points' features (for memory plans).
    pub fn bytes(&self, n: usize, shape: Shape) -> u64 {
        match self.kind {
            FeatureKind::Raw => Features::pixel_bytes(n, self.dim(shape)),
            _ => Features::f32_bytes(n, self.dim(shape)),
        }
    }

    /// One line for the log, e.g. `gabor (J=2 scales, L=8 orientations, σ₀=0.8): 833 features`.
    pub fn describe(&self, shape: Shape) -> String {
        let dim = self.dim(shape);
        match self.kind {
            FeatureKind::Raw => format!("raw pixels/255: {dim} features"),
            FeatureKind::Gabor => {
                let g = self.gabor;
                format!(
                    "gabor (J={} scales, L={} orientations, σ₀={}): {dim} features",
                    g.scales, g.orientations, g.sigma
                )
            }
            FeatureKind::RandomConv => {
                let r = self.random_conv;
                format!(
                    "random-conv ({} filters {}×{}×{} stride {}, whitening ε={} on {} patches, threshold {}, {}×{} pooling): {dim} features",
                    r.filters,
                    r.patch,
                    r.patch,
                    shape.channels,
                    r.stride,
                    r.whiten_eps,
                    r.whiten_patches,
                    r.threshold,
                    r.pool_grid,
                    r.pool_grid
                )
            }
        }
    }
}

/// The shape of the images of `set`.
pub fn shape_of(set: &ImageSet) -> Shape {
    Shape { channels: set.channels, height: set.height, width: set.width }
}

/// A fitted map from one 8-bit image to its features.
enum Map {
    Gabor(GaborBank),
    RandomConv(Box<RandomConvMap>),
}

impl Map {
    fn dim(&self) -> usize {
        match self {
            Map::Gabor(b) => b.dim(),
            Map::RandomConv(m) => m.dim(),
        }
    }

    fn apply(&self, image: &[u8], out: &mut [f32]) {
        match self {
            Map::Gabor(b) => b.map(image, out),
            Map::RandomConv(m) => m.map(image, out),
        }
    }
}

/// The features of every image of `set` (row-major, images × dim), in parallel.
fn map_all(map: &Map, set: &ImageSet, bar: &ProgressBar) -> Vec<f32> {
    let dim = map.dim();
    let mut out = vec![0.0f32; set.len() * dim];
    out.par_chunks_mut(IMAGE_CHUNK * dim).enumerate().for_each(|(chunk, rows)| {
        for (i, row) in rows.chunks_exact_mut(dim).enumerate() {
            map.apply(set.image(chunk * IMAGE_CHUNK + i), row);
        }
        bar.inc((rows.len() / dim) as u64);
    });
    out
}

/// Mean of ‖x_i − x_j‖² over all pairs of rows (i, j), from the norms and the mean row.
pub fn mean_sq_dist(data: &[f32], n: usize, dim: usize) -> f64 {
    if n == 0 || dim == 0 {
        return 0.0;
    }
    let mut mean = vec![0.0f64; dim];
    let mut sq = 0.0;
    for row in data.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
            sq += (v as f64) * (v as f64);
        }
    }
    let mean_norm: f64 = mean.iter().map(|m| (m / n as f64).powi(2)).sum();
    2.0 * sq / n as f64 - 2.0 * mean_norm
}

/// Features of the training and test images, and the scale applied to them (1 for raw).
pub struct Mapped {
    /// Training points.
    pub train: Features,
    /// Test points.
    pub test: Features,
    /// The factor the map's output was multiplied by.
    pub scale: f64,
}

/// Computes the features `settings` asks for (fitting random-conv's whitening on `train`,
/// seeded by `seed`), showing a progress bar over images when `progress`.
pub fn compute(
    settings: &FeatureSettings,
    train: &ImageSet,
    test: &ImageSet,
    seed: u64,
    progress: bool,
) -> Result<Mapped> {
    let shape = shape_of(train);
    settings.validate(shape)?;
    let map = match settings.kind {
        FeatureKind::Raw => {
            return Ok(Mapped { train: super::data::features(train), test: super::data::features(test), scale: 1.0 });
        }
        FeatureKind::Gabor => Map::Gabor(GaborBank::new(settings.gabor, shape)),
        FeatureKind::RandomConv => Map::RandomConv(Box::new(RandomConvMap::fit(settings.random_conv, train, seed)?)),
    };
    let dim = map.dim();
    let bar = ProgressBar::with_draw_target(
        Some((train.len() + test.len()) as u64),
        if progress { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} images {elapsed_precise} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("features");
    let mut train_f = map_all(&map, train, &bar);
    let mut test_f = map_all(&map, test, &bar);
    bar.finish_and_clear();
    let spread = mean_sq_dist(&train_f, train.len(), dim);
    let scale = if spread > 0.0 { (TARGET_MEAN_SQ_DIST / spread).sqrt() } else { 1.0 };
    let s = scale as f32;
    train_f.par_iter_mut().chain(test_f.par_iter_mut()).for_each(|v| *v *= s);
    Ok(Mapped {
        train: Features::from_f32(train_f, train.len(), dim),
        test: Features::from_f32(test_f, test.len(), dim),
        scale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_sq_dist_matches_all_pairs() {
        let data: Vec<f32> = (0..15).map(|v| ((v * 7) % 11) as f32 * 0.3).collect();
        let (n, dim) = (5, 3);
        let mut total = 0.0;
        for i in 0..n {
            for j in 0..n {
                total += (0..dim).map(|k| (data[i * dim + k] as f64 - data[j * dim + k] as f64).powi(2)).sum::<f64>();
            }
        }
        assert!((mean_sq_dist(&data, n, dim) - total / (n * n) as f64).abs() < 1e-9);
    }
}
