//! A seeded, CIFAR-shaped synthetic dataset that needs no download.
//!
//! Each class has a smooth random prototype image; every example is its class prototype plus
//! independent pixel noise. True labels are therefore learnable (val accuracy far above chance)
//! and random labels can only be memorised — the paper's contrast, in seconds, on any machine.

use super::image_set::{ImageSet, Splits};
use crate::rng::{self, Purpose};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// Size and shape of the synthetic dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticSpec {
    /// Number of training images.
    pub train: usize,
    /// Number of test (validation) images.
    pub test: usize,
    /// Number of classes.
    pub num_classes: usize,
}

/// Channels, height and width of a synthetic image (CIFAR's).
pub const SHAPE: [usize; 3] = [3, 32, 32];
/// Side of the coarse grid a prototype is upsampled from (controls its smoothness).
const GRID: usize = 4;
/// Standard deviation of the per-pixel noise, in 8-bit pixel units.
const NOISE_STD: f64 = 150.0;

/// Generates the dataset from the `Synthetic` stream of `seed`.
pub fn generate(spec: SyntheticSpec, seed: u64) -> Splits {
    let mut rng = rng::stream(seed, Purpose::Synthetic, 0);
    let prototypes: Vec<Vec<f32>> = (0..spec.num_classes).map(|_| prototype(&mut rng)).collect();
    let train = sample_set(&mut rng, &prototypes, spec.train);
    let test = sample_set(&mut rng, &prototypes, spec.test);
    Splits { train, test, num_classes: spec.num_classes }
}

/// A smooth image: a random GRID×GRID colour grid, bilinearly upsampled to 32×32.
fn prototype(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let [channels, height, width] = SHAPE;
    let grid: Vec<f32> = (0..channels * GRID * GRID).map(|_| rng.random_range(64.0..192.0)).collect();
    let mut image = Vec::with_capacity(channels * height * width);
    for c in 0..channels {
        for y in 0..height {
            let gy = y as f32 * (GRID - 1) as f32 / (height - 1) as f32;
            let (y0, fy) = (gy.floor() as usize, gy.fract());
            let y1 = (y0 + 1).min(GRID - 1);
            for x in 0..width {
                let gx = x as f32 * (GRID - 1) as f32 / (width - 1) as f32;
                let (x0, fx) = (gx.floor() as usize, gx.fract());
                let x1 = (x0 + 1).min(GRID - 1);
                let at = |yy: usize, xx: usize| grid[(c * GRID + yy) * GRID + xx];
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                image.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    image
}

/// `count` noisy examples with classes drawn uniformly.
fn sample_set(rng: &mut ChaCha8Rng, prototypes: &[Vec<f32>], count: usize) -> ImageSet {
    let [channels, height, width] = SHAPE;
    let noise = Normal::new(0.0, NOISE_STD).expect("noise std is positive");
    let mut images = Vec::with_capacity(count * channels * height * width);
    let mut labels = Vec::with_capacity(count);
    for _ in 0..count {
        let class = rng.random_range(0..prototypes.len());
        labels.push(class as u8);
        for &value in &prototypes[class] {
            let pixel = value as f64 + noise.sample(rng);
            images.push(pixel.round().clamp(0.0, 255.0) as u8);
        }
    }
    ImageSet { images, labels, channels, height, width }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_seeded_and_shaped() {
        let spec = SyntheticSpec { train: 50, test: 20, num_classes: 10 };
        let a = generate(spec, 1);
        assert_eq!(a.train.len(), 50);
        assert_eq!(a.test.len(), 20);
        assert_eq!(a.train.images.len(), 50 * 3 * 32 * 32);
        assert!(a.train.labels.iter().all(|&l| l < 10));
        assert_eq!(a.train, generate(spec, 1).train);
        assert_ne!(a.train, generate(spec, 2).train);
    }
}
