//! The paper's small AlexNet for CIFAR-10 (Zhang et al., 2017, appendix A), after the
//! TensorFlow CIFAR-10 tutorial's model.
//!
//! [conv 5×5 64 (stride 1, "SAME", bias) → ReLU → max-pool 3×3 stride 2 → local response norm] ×2
//! → FC 384 → ReLU → FC 192 → ReLU → FC classes.
//!
//! # Parameter count
//!
//! The paper gives 1,387,786 parameters on 28×28×3 input. The convolutions and the last two
//! layers hold 4,864 + 102,464 + 73,920 + 1,930; the remaining 1,204,608 = 3,137 · 384 make the
//! first FC layer's input 3,136 = 64 · 7 · 7. So both max pools are TF "SAME" (28 → 14 → 7, as in
//! the tutorial's `padding='SAME'`), not "VALID" (28 → 13 → 6).
//!
//! # Local response normalisation
//!
//! The tutorial's `tf.nn.lrn(x, depth_radius=4, bias=1.0, alpha=0.001/9.0, beta=0.75)`:
//! `y = x / (1 + 0.001/9 · Σ x²)^0.75`, the sum over the 9 channels c−4…c+4 that exist. burn's
//! `LocalResponseNorm` divides the sum by the window size (zero padding counted), so it is the
//! same with `size = 9`, `alpha = 0.001`, `beta = 0.75`, `k = 1`.

use super::init::{conv_he_fan_out, linear_glorot};
use super::layers::conv2d;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LocalResponseNorm, LocalResponseNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

/// Channels of both convolutions.
const CONV_WIDTH: usize = 64;
/// Widths of the two hidden fully connected layers.
const FC_WIDTHS: [usize; 2] = [384, 192];

/// LRN window: 2 · depth_radius + 1 channels.
pub const LRN_SIZE: usize = 9;
/// LRN α on the window mean (TF's 0.001/9 on the window sum).
pub const LRN_ALPHA: f64 = 0.001;
/// LRN exponent β.
pub const LRN_BETA: f64 = 0.75;
/// LRN bias k.
pub const LRN_BIAS: f64 = 1.0;

/// The small AlexNet of the paper (see the module documentation).
#[derive(Module, Debug)]
pub struct AlexNet {
    /// First 5×5 convolution, 64 channels.
    conv1: Conv2d,
    /// Second 5×5 convolution, 64 channels.
    conv2: Conv2d,
    /// Max pool 3×3, stride 2, "SAME" (after each convolution).
    pool: MaxPool2d,
    /// Local response normalisation across channels (after each pool).
    lrn: LocalResponseNorm,
    /// FC 384.
    fc1: Linear,
    /// FC 192.
    fc2: Linear,
    /// FC to the class logits.
    fc3: Linear,
}

impl AlexNet {
    /// Builds the network for images `[channels, height, width]`, drawing weights from `rng`
    /// (convs He fan-out, linear Glorot normal, biases zero). The first FC layer's input size
    /// follows from the image size (64 · ⌈⌈h/2⌉/2⌉ · ⌈⌈w/2⌉/2⌉).
    pub fn new(
        rng: &mut ChaCha8Rng,
        [channels, height, width]: [usize; 3],
        num_classes: usize,
        device: &Device,
    ) -> Self {
        let conv1 = conv_he_fan_out(rng, channels, CONV_WIDTH, 5, 1, true, device);
        let conv2 = conv_he_fan_out(rng, CONV_WIDTH, CONV_WIDTH, 5, 1, true, device);
        let [h, w] = Self::feature_size(height, width);
        let flat = CONV_WIDTH * h * w;
        Self {
            conv1,
            conv2,
            pool: MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Same).init(),
            lrn: LocalResponseNormConfig::new(LRN_SIZE)
                .with_alpha(LRN_ALPHA)
                .with_beta(LRN_BETA)
                .with_k(LRN_BIAS)
                .init(),
            fc1: linear_glorot(rng, flat, FC_WIDTHS[0], true, device),
            fc2: linear_glorot(rng, FC_WIDTHS[0], FC_WIDTHS[1], true, device),
            fc3: linear_glorot(rng, FC_WIDTHS[1], num_classes, true, device),
        }
    }

    /// Spatial size `[height, width]` of the features entering the first FC layer.
    pub fn feature_size(height: usize, width: usize) -> [usize; 2] {
        [height.div_ceil(2).div_ceil(2), width.div_ceil(2).div_ceil(2)]
    }

    /// Logits `[batch, classes]` for images `[batch, channels, height, width]` of the size the
    /// network was built for.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let x = self.lrn.forward(self.pool.forward(relu(conv2d(&self.conv1, images))));
        let x = self.lrn.forward(self.pool.forward(relu(conv2d(&self.conv2, x))));
        let x: Tensor<2> = x.flatten(1, 3);
        let x = relu(self.fc1.forward(x));
        let x = relu(self.fc2.forward(x));
        self.fc3.forward(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::*;
    use crate::model::{Arch, trainable_param_count};
    use burn::tensor::TensorData;

    #[test]
    fn paper_parameter_count() {
        assert_eq!(trainable_param_count(&build(Arch::Alexnet, [3, 28, 28], 10)), 1_387_786);
        // 32×32: the first FC layer sees 64·8·8 features.
        let expected = 1_387_786 + 64 * (64 - 49) * 384;
        assert_eq!(trainable_param_count(&build(Arch::Alexnet, [3, 32, 32], 10)), expected);
    }

    #[test]
    fn lrn_matches_tensorflow() {
        let device = Device::flex();
        let net = AlexNet::new(&mut crate::rng::stream(0, crate::rng::Purpose::Init, 0), [3, 4, 4], 10, &device);
        let channels: usize = 12;
        let values: Vec<f32> = (0..channels).map(|c| c as f32 - 3.5).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values.clone(), [1, channels, 1, 1]), &device);
        let y: Vec<f32> = net.lrn.forward(x).into_data().try_to_vec().unwrap();
        for c in 0..channels {
            let window = c.saturating_sub(4)..(c + 5).min(channels);
            let sum: f64 = values[window].iter().map(|v| (*v as f64).powi(2)).sum();
            let expected = values[c] as f64 / (1.0 + 0.001 / 9.0 * sum).powf(0.75);
            assert!((y[c] as f64 - expected).abs() < 1e-5, "channel {c}: {} vs {expected}", y[c]);
        }
    }

    #[test]
    fn forward_shapes_for_every_input() {
        check_forward_shapes(Arch::Alexnet);
    }

    #[test]
    fn gradients_reach_every_parameter_and_loss_falls() {
        check_training(Arch::Alexnet, [3, 28, 28], 0.01);
    }
}
