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

/// Replaces every image by per-channel Gaussian noise, rounded and clamped to 0..=255, with the
/// pre-clamp mean and deviation calibrated so that the clamped pixels keep `moments`.
fn gaussian_images(set: &mut ImageSet, moments: &[(f64, f64)], rng: &mut ChaCha8Rng) {
    let plane = set.height * set.width;
    let dists: Vec<Normal<f64>> = moments
        .iter()
        .map(|&(m, s)| {
            let (mu, sigma) = calibrate_clamped(m, s, rng);
            Normal::new(mu, sigma.max(1e-6)).expect("finite moments")
        })
        .collect();
    let channels = set.channels;
    for (k, pixel) in set.images.iter_mut().enumerate() {
        let c = (k / plane) % channels;
        *pixel = to_pixel(dists[c].sample(rng));
    }
}

fn to_pixel(x: f64) -> u8 {
    x.round().clamp(0.0, 255.0) as u8
}

/// (μ, σ) such that `round(clamp(N(μ, σ²), 0, 255))` has mean `mean` and deviation `std`:
/// a fixed-point iteration on a fixed sample of standard normals. Clamping at the pixel range
/// shrinks the variance of wide distributions; this undoes it.
fn calibrate_clamped(mean: f64, std: f64, rng: &mut ChaCha8Rng) -> (f64, f64) {
    const SAMPLES: usize = 100_000;
    let z: Vec<f64> = (0..SAMPLES).map(|_| rand_distr::StandardNormal.sample(rng)).collect();
    let (mut mu, mut sigma) = (mean, std);
    for _ in 0..30 {
        let (mut sum, mut sq) = (0.0, 0.0);
        for &zk in &z {
            let v = to_pixel(mu + sigma * zk) as f64;
            sum += v;
            sq += v * v;
        }
        let m = sum / SAMPLES as f64;
        let s = (sq / SAMPLES as f64 - m * m).max(0.0).sqrt();
        mu += mean - m;
        if s > 1e-9 {
            sigma *= std / s;
        }
    }
    (mu, sigma)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synthetic::{SyntheticSpec, generate};

    fn splits() -> Splits {
        generate(SyntheticSpec { train: 40, test: 10, num_classes: 10 }, 5)
    }

    /// Pixel (position) values of channel `c` of image `i`.
    fn plane(set: &ImageSet, i: usize, c: usize) -> Vec<u8> {
        let n = set.height * set.width;
        set.image(i)[c * n..(c + 1) * n].to_vec()
    }

    /// The values of `v` in ascending order (equal multisets ⇔ one is a permutation of the other).
    fn sorted(v: &[u8]) -> Vec<u8> {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    }

    #[test]
    fn shuffled_pixels_use_one_permutation_for_every_image_and_both_splits() {
        let before = splits();
        let mut after = before.clone();
        randomize_inputs(&mut after, Randomization::ShuffledPixels, 9);
        let n = before.train.height * before.train.width;
        // Recover the permutation from a probe image whose positions carry their own index.
        let mut probe = splits();
        probe.train.images = (0..probe.train.images.len()).map(|k| ((k % n) % 256) as u8).collect();
        let mut probe_hi = probe.clone();
        probe_hi.train.images = (0..probe.train.images.len()).map(|k| ((k % n) / 256) as u8).collect();
        randomize_inputs(&mut probe, Randomization::ShuffledPixels, 9);
        randomize_inputs(&mut probe_hi, Randomization::ShuffledPixels, 9);
        let perm: Vec<usize> =
            (0..n).map(|p| probe.train.images[p] as usize + 256 * probe_hi.train.images[p] as usize).collect();
        assert_ne!(perm, (0..n).collect::<Vec<_>>(), "a real permutation");
        for (b, a) in [(&before.train, &after.train), (&before.test, &after.test)] {
            for i in 0..b.len() {
                for c in 0..b.channels {
                    let (src, dst) = (plane(b, i, c), plane(a, i, c));
                    assert!((0..n).all(|p| dst[p] == src[perm[p]]), "image {i} channel {c}");
                }
            }
        }
        assert_eq!(after.train.labels, before.train.labels);
    }

    #[test]
    fn random_pixels_permute_each_image_on_its_own() {
        let before = splits();
        let mut after = before.clone();
        randomize_inputs(&mut after, Randomization::RandomPixels, 9);
        let n = before.train.height * before.train.width;
        let mut recovered = std::collections::HashSet::new();
        for i in 0..before.train.len() {
            for c in 0..3 {
                assert_eq!(sorted(&plane(&before.train, i, c)), sorted(&plane(&after.train, i, c)));
            }
            assert_ne!(before.train.image(i), after.train.image(i));
            recovered.insert(after.train.image(i)[..n].to_vec());
        }
        assert_eq!(recovered.len(), before.train.len(), "randomized images all differ");
        // Apply to a constant-structure probe: identical images must end up different.
        let mut probe = splits();
        let first = probe.train.image(0).to_vec();
        for i in 0..probe.train.len() {
            let len = probe.train.image_len();
            probe.train.images[i * len..(i + 1) * len].copy_from_slice(&first);
        }
        randomize_inputs(&mut probe, Randomization::RandomPixels, 9);
        assert_ne!(probe.train.image(0), probe.train.image(1), "each image gets its own permutation");
        // Channels of one image move together.
        let (b, a) = (before.train.image(3), after.train.image(3));
        let p0: Vec<usize> = (0..n)
            .map(|p| {
                (0..n)
                    .find(|&q| b[q] == a[p] && b[n + q] == a[n + p] && b[2 * n + q] == a[2 * n + p])
                    .expect("pixel moved as a whole")
            })
            .collect();
        assert_eq!(p0.len(), n);
    }

    #[test]
    fn gaussian_images_match_the_training_moments() {
        let before = generate(SyntheticSpec { train: 300, test: 50, num_classes: 10 }, 5);
        let mut after = before.clone();
        randomize_inputs(&mut after, Randomization::Gaussian, 9);
        let (want, got) = (channel_moments(&before.train), channel_moments(&after.train));
        for ((m0, s0), (m1, s1)) in want.iter().zip(&got) {
            assert!((m0 - m1).abs() < 1.0, "mean {m0} vs {m1}");
            assert!((s0 - s1).abs() / s0 < 0.02, "std {s0} vs {s1}");
        }
        assert_ne!(before.train.images, after.train.images);
        assert_ne!(before.test.images, after.test.images);
        let mut again = before.clone();
        randomize_inputs(&mut again, Randomization::Gaussian, 9);
        assert_eq!(again.train.images, after.train.images, "drawn from the seed");
    }
}
