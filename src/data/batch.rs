//! Turning examples into float tensors: normalisation and the demo's augmentation.

use super::image_set::ImageSet;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Per-channel normalisation `(x/255 − mean) / std`.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalization {
    /// Per-channel mean of x/255.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of x/255.
    pub std: Vec<f32>,
}

impl Normalization {
    /// The demo's CIFAR-10 constants (mean 125.3, 123.0, 113.9; std 63.0, 62.1, 66.7, over 255).
    pub fn cifar10() -> Self {
        Self {
            mean: [125.3, 123.0, 113.9].iter().map(|v| v / 255.0).collect(),
            std: [63.0, 62.1, 66.7].iter().map(|v| v / 255.0).collect(),
        }
    }

    /// The usual MNIST constants (mean 0.1307, std 0.3081).
    pub fn mnist() -> Self {
        Self { mean: vec![0.1307], std: vec![0.3081] }
    }
}

/// The demo's training augmentation: random 32×32 crop of the image zero-padded by `PAD`
/// pixels, then a horizontal flip with probability ½.
pub const PAD: usize = 4;

/// Normalised pixels `[indices.len(), C, H, W]` of the given examples, augmented with `augment`
/// when given (one crop offset and one flip draw per image, in index order).
pub fn batch_pixels(
    set: &ImageSet,
    indices: &[usize],
    norm: &Normalization,
    mut augment: Option<&mut ChaCha8Rng>,
) -> Vec<f32> {
    let (channels, height, width) = (set.channels, set.height, set.width);
    let scale: Vec<f32> = norm.std.iter().map(|s| 1.0 / (255.0 * s)).collect();
    let shift: Vec<f32> = norm.mean.iter().zip(&norm.std).map(|(m, s)| m / s).collect();
    let mut out = Vec::with_capacity(indices.len() * set.image_len());
    for &index in indices {
        let image = set.image(index);
        let (dy, dx, flip) = match augment.as_deref_mut() {
            Some(rng) => {
                let dy = rng.random_range(0..=2 * PAD) as isize - PAD as isize;
                let dx = rng.random_range(0..=2 * PAD) as isize - PAD as isize;
                (dy, dx, rng.random_bool(0.5))
            }
            None => (0, 0, false),
        };
        for c in 0..channels {
            let plane = &image[c * height * width..(c + 1) * height * width];
            for y in 0..height {
                let sy = y as isize + dy;
                for x in 0..width {
                    let xx = if flip { width - 1 - x } else { x };
                    let sx = xx as isize + dx;
                    let inside = sy >= 0 && sx >= 0 && (sy as usize) < height && (sx as usize) < width;
                    let pixel = if inside { plane[sy as usize * width + sx as usize] } else { 0 };
                    out.push(pixel as f32 * scale[c] - shift[c]);
                }
            }
        }
    }
    out
}

/// A batch ready for the model: images `[B, C, H, W]`, labels and their one-hot matrix.
pub struct Batch {
    /// Normalised (and possibly augmented) images.
    pub images: Tensor<4>,
    /// Target classes, `[B]`.
    pub targets: Tensor<1, Int>,
    /// The same targets as host values, for accuracy bookkeeping.
    pub labels: Vec<u8>,
}

/// Builds the batch of `indices` from `set` (with `labels` as targets) on `device`.
pub fn make_batch(
    set: &ImageSet,
    labels: &[u8],
    indices: &[usize],
    norm: &Normalization,
    augment: Option<&mut ChaCha8Rng>,
    device: &Device,
) -> Batch {
    let pixels = batch_pixels(set, indices, norm, augment);
    let shape = [indices.len(), set.channels, set.height, set.width];
    let images = Tensor::<4>::from_data(TensorData::new(pixels, shape), device);
    let labels: Vec<u8> = indices.iter().map(|&i| labels[i]).collect();
    let target_values: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(target_values, [indices.len()]), device);
    Batch { images, targets, labels }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{self, Purpose};

    fn ramp() -> ImageSet {
        let images: Vec<u8> = (0..3 * 32 * 32).map(|i| (i % 251) as u8 + 1).collect();
        ImageSet { images, labels: vec![0], channels: 3, height: 32, width: 32 }
    }

    #[test]
    fn normalises_without_augmentation() {
        let set = ramp();
        let norm = Normalization::cifar10();
        let out = batch_pixels(&set, &[0], &norm, None);
        let expect = (set.images[5] as f32 / 255.0 - norm.mean[0]) / norm.std[0];
        assert!((out[5] - expect).abs() < 1e-5);
        let g = 32 * 32 + 7;
        let expect = (set.images[g] as f32 / 255.0 - norm.mean[1]) / norm.std[1];
        assert!((out[g] - expect).abs() < 1e-5);
    }

    #[test]
    fn augmentation_is_a_shifted_or_flipped_copy_with_zero_padding() {
        let set = ramp();
        let norm = Normalization { mean: vec![0.0; 3], std: vec![1.0 / 255.0; 3] };
        let mut rng = rng::stream(3, Purpose::Augment, 0);
        for _ in 0..20 {
            let out = batch_pixels(&set, &[0], &norm, Some(&mut rng));
            // Each output row is a contiguous (possibly reversed) run of a source row or zeros.
            let zeros = out.iter().filter(|&&v| v == 0.0).count();
            assert!(zeros <= 3 * (32 * 32 - 24 * 24));
            let src: std::collections::HashSet<u32> = set.images.iter().map(|&p| p as u32).collect();
            assert!(out.iter().all(|&v| v == 0.0 || src.contains(&(v as u32))));
        }
    }
}
