//! The paper's input randomizations (§2 of reference.md): shuffled pixels, random pixels and
//! Gaussian images. Drawn once from the run's seed and fixed across epochs.

use super::image_set::{ImageSet, Splits};
use crate::rng::{self, Purpose};
use clap::ValueEnum;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// Which randomization test a run performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Randomization {
    /// True data.
    #[default]
    None,
    /// Labels replaced with probability `--label-corrupt-prob` (1 = random labels).
    Labels,
    /// One permutation of pixel positions, shared by every train and test image.
    ShuffledPixels,
    /// An independent permutation of pixel positions for each image.
    RandomPixels,
    /// Each image replaced by Gaussian noise with the training set's per-channel mean and variance.
    Gaussian,
}

impl Randomization {
    /// Short name used in experiment names (`labels`, `shuffled-pixels`, …).
    pub fn name(self) -> &'static str {
        match self {
            Randomization::None => "none",
            Randomization::Labels => "labels",
            Randomization::ShuffledPixels => "shuffled-pixels",
            Randomization::RandomPixels => "random-pixels",
            Randomization::Gaussian => "gaussian",
        }
    }

    /// Whether this randomization changes the images (rather than only labels).
    pub fn changes_inputs(self) -> bool {
        matches!(self, Self::ShuffledPixels | Self::RandomPixels | Self::Gaussian)
    }
}

/// Applies `kind` to the images of both splits, drawing from the `Randomize` stream of `seed`.
/// Label randomization is done elsewhere (numpy-identical corruption); `None` and `Labels`
/// leave the images untouched.
pub fn randomize_inputs(splits: &mut Splits, kind: Randomization, seed: u64) {
    let mut rng = rng::stream(seed, Purpose::Randomize, 0);
    match kind {
        Randomization::None | Randomization::Labels => {}
        Randomization::ShuffledPixels => {
            let perm = permutation(&mut rng, splits.train.height * splits.train.width);
            for set in [&mut splits.train, &mut splits.test] {
                for i in 0..set.len() {
                    permute_image(set, i, &perm);
                }
            }
        }
        Randomization::RandomPixels => {
            let pixels = splits.train.height * splits.train.width;
            for set in [&mut splits.train, &mut splits.test] {
                for i in 0..set.len() {
                    let perm = permutation(&mut rng, pixels);
                    permute_image(set, i, &perm);
                }
            }
        }
        Randomization::Gaussian => {
            let moments = channel_moments(&splits.train);
            for set in [&mut splits.train, &mut splits.test] {
                gaussian_images(set, &moments, &mut rng);
            }
        }
    }
}

/// A uniformly random permutation of `0..n`.
fn permutation(rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..n).collect();
    perm.shuffle(rng);
    perm
}

/// Moves pixel `perm[p]` of every channel of image `index` to position `p`.
fn permute_image(set: &mut ImageSet, index: usize, perm: &[usize]) {
    let plane = set.height * set.width;
    let len = set.image_len();
    let image = &mut set.images[index * len..(index + 1) * len];
    let original = image.to_vec();
    for c in 0..set.channels {
        let src = &original[c * plane..(c + 1) * plane];
        let dst = &mut image[c * plane..(c + 1) * plane];
        for (p, &from) in perm.iter().enumerate() {
            dst[p] = src[from];
        }
    }
}

/// Per-channel (mean, standard deviation) of the pixel values of `set`.
pub fn channel_moments(set: &ImageSet) -> Vec<(f64, f64)> {
    let plane = set.height * set.width;
    (0..set.channels)
        .map(|c| {
            let (mut sum, mut sq, mut n) = (0.0f64, 0.0f64, 0usize);
            for i in 0..set.len() {
                for &v in &set.image(i)[c * plane..(c + 1) * plane] {
                    sum += v as f64;
                    sq += (v as f64) * (v as f64);
                    n += 1;
                }
            }
            let mean = sum / n.max(1) as f64;
            (mean, (sq / n.max(1) as f64 - mean * mean).max(0.0).sqrt())
        })
        .collect()
}

/// Replaces every image by per-channel Gaussian noise, rounded and clamped to 0..=255.
fn gaussian_images(set: &mut ImageSet, moments: &[(f64, f64)], rng: &mut ChaCha8Rng) {
    let plane = set.height * set.width;
    let dists: Vec<Normal<f64>> = moments
        .iter()
        .map(|&(m, s)| Normal::new(m, s.max(1e-6)).expect("finite moments"))
        .collect();
    let channels = set.channels;
    for (k, pixel) in set.images.iter_mut().enumerate() {
        let c = (k / plane) % channels;
        *pixel = dists[c].sample(rng).round().clamp(0.0, 255.0) as u8;
    }
}
