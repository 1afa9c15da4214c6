//! Turning examples into float tensors: the demo's normalisation and augmentation, or the
//! paper's centre crop and per-image whitening.

use super::image_set::ImageSet;
use burn::tensor::{Device, Int, Tensor, TensorData};
use clap::ValueEnum;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

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
        Self::from_pixels(&[125.3, 123.0, 113.9], &[63.0, 62.1, 66.7])
    }

    /// The usual CIFAR-100 constants (mean 129.3, 124.1, 112.4; std 68.2, 65.4, 70.4, over 255).
    pub fn cifar100() -> Self {
        Self::from_pixels(&[129.3, 124.1, 112.4], &[68.2, 65.4, 70.4])
    }

    /// The usual MNIST constants (mean 0.1307, std 0.3081).
    pub fn mnist() -> Self {
        Self { mean: vec![0.1307], std: vec![0.3081] }
    }

    fn from_pixels(mean: &[f32], std: &[f32]) -> Self {
        Self { mean: mean.iter().map(|v| v / 255.0).collect(), std: std.iter().map(|v| v / 255.0).collect() }
    }
}

/// How images become network inputs, as `--preprocess` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Preprocess {
    /// The demo's: full image, per-channel normalisation; augmentation = random crop of the
    /// 4-pixel zero-padded image + horizontal flip.
    #[default]
    Demo,
    /// The paper's: centre 28×28 crop, then per-image whitening (x − mean)/max(std, 1/√N);
    /// augmentation = random 28×28 crop + horizontal flip.
    Paper,
}

/// Zero padding of the demo's random crop.
pub const PAD: usize = 4;
/// Side of the paper's crop.
pub const PAPER_CROP: usize = 28;

/// The full input pipeline of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct InputPipeline {
    /// Demo or paper preprocessing.
    pub preprocess: Preprocess,
    /// The per-channel normalisation used by `Preprocess::Demo`.
    pub norm: Normalization,
}

impl InputPipeline {
    /// Shape `[C, H, W]` of the network input for images of `set`.
    pub fn input_shape(&self, set: &ImageSet) -> [usize; 3] {
        match self.preprocess {
            Preprocess::Demo => [set.channels, set.height, set.width],
            Preprocess::Paper => [set.channels, set.height.min(PAPER_CROP), set.width.min(PAPER_CROP)],
        }
    }

    /// Network inputs `[indices.len(), C, H, W]` of the given examples, augmented with
    /// `augment` when given (one crop offset and one flip draw per image, in index order).
    pub fn pixels(&self, set: &ImageSet, indices: &[usize], mut augment: Option<&mut ChaCha8Rng>) -> Vec<f32> {
        let [channels, out_h, out_w] = self.input_shape(set);
        let mut out = Vec::with_capacity(indices.len() * channels * out_h * out_w);
        for &index in indices {
            let window = self.window(set, augment.as_deref_mut());
            let start = out.len();
            crop(set.image(index), set, out_h, out_w, window, &mut out);
            let image = &mut out[start..];
            match self.preprocess {
                Preprocess::Demo => normalize(image, &self.norm, out_h * out_w),
                Preprocess::Paper => whiten(image),
            }
        }
        out
    }

    /// Crop offset (may be negative: zero padding) and flip of one image.
    fn window(&self, set: &ImageSet, augment: Option<&mut ChaCha8Rng>) -> Window {
        let [_, out_h, out_w] = self.input_shape(set);
        let (slack_h, slack_w) = (set.height - out_h, set.width - out_w);
        match (self.preprocess, augment) {
            (Preprocess::Demo, None) => Window { dy: 0, dx: 0, flip: false },
            (Preprocess::Demo, Some(rng)) => {
                let dy = rng.random_range(0..=2 * PAD) as isize - PAD as isize;
                let dx = rng.random_range(0..=2 * PAD) as isize - PAD as isize;
                Window { dy, dx, flip: rng.random_bool(0.5) }
            }
            (Preprocess::Paper, None) => Window { dy: (slack_h / 2) as isize, dx: (slack_w / 2) as isize, flip: false },
            (Preprocess::Paper, Some(rng)) => {
                let dy = rng.random_range(0..=slack_h) as isize;
                let dx = rng.random_range(0..=slack_w) as isize;
                Window { dy, dx, flip: rng.random_bool(0.5) }
            }
        }
    }
}

/// Where an output image is cut from its source.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Row of the source at output row 0 (negative: above the image, reads zeros).
    dy: isize,
    /// Column of the source at output column 0.
    dx: isize,
    /// Mirror the output horizontally.
    flip: bool,
}

/// Appends the `out_h × out_w` window of `image` (zeros outside the source) as floats 0..255.
fn crop(image: &[u8], set: &ImageSet, out_h: usize, out_w: usize, w: Window, out: &mut Vec<f32>) {
    let (height, width) = (set.height, set.width);
    for c in 0..set.channels {
        let plane = &image[c * height * width..(c + 1) * height * width];
        for y in 0..out_h {
            let sy = y as isize + w.dy;
            for x in 0..out_w {
                let xx = if w.flip { out_w - 1 - x } else { x };
                let sx = xx as isize + w.dx;
                let inside = sy >= 0 && sx >= 0 && (sy as usize) < height && (sx as usize) < width;
                out.push(if inside { plane[sy as usize * width + sx as usize] as f32 } else { 0.0 });
            }
        }
    }
}

/// In place: pixel values 0..255 of one image → `(x/255 − mean_c) / std_c`.
fn normalize(image: &mut [f32], norm: &Normalization, plane: usize) {
    for (k, v) in image.iter_mut().enumerate() {
        let c = k / plane;
        *v = (*v / 255.0 - norm.mean[c]) / norm.std[c];
    }
}

/// In place: per-image whitening `(x − mean) / max(std, 1/√N)` over all N values of the image,
/// as TensorFlow's `per_image_standardization` (on pixel values 0..255).
fn whiten(image: &mut [f32]) {
    let n = image.len() as f64;
    let mean = image.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = image.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let scale = var.sqrt().max(1.0 / n.sqrt());
    for v in image.iter_mut() {
        *v = ((*v as f64 - mean) / scale) as f32;
    }
}

/// A batch on the host: preprocessed pixels and labels, not yet a tensor. Built off the
/// critical path by [`super::prefetch`].
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Network inputs, `[B, C, H, W]` row-major.
    pub pixels: Vec<f32>,
    /// Shape `[B, C, H, W]`.
    pub shape: [usize; 4],
    /// Target classes.
    pub labels: Vec<u8>,
}

/// A batch ready for the model: images `[B, C, H, W]`, labels and their tensor.
#[derive(Clone)]
pub struct Batch {
    /// Preprocessed (and possibly augmented) images.
    pub images: Tensor<4>,
    /// Target classes, `[B]`.
    pub targets: Tensor<1, Int>,
    /// The same targets as host values, for accuracy bookkeeping.
    pub labels: Vec<u8>,
}

impl HostBatch {
    /// Gathers, preprocesses and (if `augment` is given) augments the examples `indices` of `set`
    /// with `labels` as targets.
    pub fn new(
        pipeline: &InputPipeline,
        set: &ImageSet,
        labels: &[u8],
        indices: &[usize],
        augment: Option<&mut ChaCha8Rng>,
    ) -> Self {
        let pixels = pipeline.pixels(set, indices, augment);
        let [c, h, w] = pipeline.input_shape(set);
        let labels = indices.iter().map(|&i| labels[i]).collect();
        Self { pixels, shape: [indices.len(), c, h, w], labels }
    }

    /// The batch as tensors on `device`.
    pub fn into_batch(self, device: &Device) -> Batch {
        let images = Tensor::<4>::from_data(TensorData::new(self.pixels, self.shape), device);
        let target_values: Vec<i64> = self.labels.iter().map(|&l| l as i64).collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(target_values, [self.shape[0]]), device);
        Batch { images, targets, labels: self.labels }
    }
}

/// Builds the batch of `indices` from `set` (with `labels` as targets) on `device`.
pub fn make_batch(
    pipeline: &InputPipeline,
    set: &ImageSet,
    labels: &[u8],
    indices: &[usize],
    augment: Option<&mut ChaCha8Rng>,
    device: &Device,
) -> Batch {
    HostBatch::new(pipeline, set, labels, indices, augment).into_batch(device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{self, Purpose};

    fn ramp() -> ImageSet {
        let images: Vec<u8> = (0..3 * 32 * 32).map(|i| (i % 251) as u8 + 1).collect();
        ImageSet { images, labels: vec![0], channels: 3, height: 32, width: 32 }
    }

    fn demo() -> InputPipeline {
        InputPipeline { preprocess: Preprocess::Demo, norm: Normalization::cifar10() }
    }

    #[test]
    fn normalises_without_augmentation() {
        let set = ramp();
        let p = demo();
        let out = p.pixels(&set, &[0], None);
        let expect = (set.images[5] as f32 / 255.0 - p.norm.mean[0]) / p.norm.std[0];
        assert!((out[5] - expect).abs() < 1e-5);
        let g = 32 * 32 + 7;
        let expect = (set.images[g] as f32 / 255.0 - p.norm.mean[1]) / p.norm.std[1];
        assert!((out[g] - expect).abs() < 1e-5);
    }

    #[test]
    fn demo_augmentation_is_a_shifted_or_flipped_copy_with_zero_padding() {
        let set = ramp();
        let p = InputPipeline {
            preprocess: Preprocess::Demo,
            norm: Normalization { mean: vec![0.0; 3], std: vec![1.0 / 255.0; 3] },
        };
        let mut rng = rng::stream(3, Purpose::Augment, 0);
        let src: std::collections::HashSet<u32> = set.images.iter().map(|&p| p as u32).collect();
        let mut distinct = std::collections::HashSet::new();
        for _ in 0..20 {
            let out = p.pixels(&set, &[0], Some(&mut rng));
            let zeros = out.iter().filter(|&&v| v == 0.0).count();
            assert!(zeros <= 3 * (32 * 32 - 28 * 28));
            assert!(out.iter().all(|&v| v == 0.0 || src.contains(&(v.round() as u32))));
            distinct.insert(out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        }
        assert!(distinct.len() > 5, "augmentation should vary");
    }

    #[test]
    fn paper_preprocessing_crops_the_centre_and_whitens() {
        let set = ramp();
        let p = InputPipeline { preprocess: Preprocess::Paper, norm: Normalization::cifar10() };
        assert_eq!(p.input_shape(&set), [3, 28, 28]);
        let out = p.pixels(&set, &[0], None);
        assert_eq!(out.len(), 3 * 28 * 28);
        let n = out.len() as f64;
        let mean = out.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = out.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3, "mean {mean} var {var}");
        // Centre crop: output (0,0) of channel 0 is source (2,2); whitening is affine, so the
        // order of values is preserved.
        let raw: Vec<f32> = set.images.iter().map(|&v| v as f32).collect();
        let (a, b) = (raw[2 * 32 + 2], raw[2 * 32 + 3]);
        assert_eq!(a < b, out[0] < out[1]);
        let constant = ImageSet { images: vec![7; 3 * 32 * 32], ..set.clone() };
        assert!(p.pixels(&constant, &[0], None).iter().all(|&v| v == 0.0));
    }
}
