//! The paper's small Inception for CIFAR-10 (Zhang et al., 2017, appendix A, figure 3), with or
//! without BatchNorm.
//!
//! Conv module = conv(k×k, C, stride s, TF "SAME" padding) → [BN] → ReLU.
//! Inception(c1, c3) = concat(Conv 1×1 c1, Conv 3×3 c3) over channels.
//! Downsample(c3) = concat(Conv 3×3 stride 2 c3, max-pool 3×3 stride 2), both "SAME", so
//! 28 → 14 → 7 (32 → 16 → 8), as the paper's global 7×7 mean pool on 28×28 crops requires.
//!
//! Layers: Conv 3×3 96 → Inception(32,32) → Inception(32,48) → Downsample(80) →
//! Inception(112,48) → Inception(96,64) → Inception(80,80) → Inception(48,96) → Downsample(96) →
//! Inception(176,160) → Inception(176,160) → global mean pool → Linear.
//!
//! # Parameter count
//!
//! The paper gives 1,649,402 parameters for both variants (28×28×3 input, 10 classes). That is
//! conv weights + one learned value per conv output channel + the linear layer (336·10 + 10);
//! a BN with both γ and β would add 3,424 (1,652,826), and conv biases in front of such a BN would
//! add them twice. The one reading consistent for both variants is TensorFlow-slim's Conv module:
//! without BN the conv has a bias; with BN the conv has no bias (BN's mean subtraction would cancel
//! it) and the BN has an offset β but no scale γ (`slim.batch_norm` defaults: `center=True`,
//! `scale=False`), see [`BatchNormNoScale`]. So `Number of parameters:` prints 1,649,402 for
//! `--arch inception` and `--arch inception-nobn`, and every counted parameter is trained.

use super::batch_norm::BatchNormNoScale;
use super::init::{conv_he_fan_out, linear_glorot};
use super::layers::conv2d;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

/// Width of the first convolution.
const STEM: usize = 96;
/// Inception(c1, c3) widths of the three stages, and the Downsample(c3) widths between them.
const STAGE1: [(usize, usize); 2] = [(32, 32), (32, 48)];
const DOWN1: usize = 80;
const STAGE2: [(usize, usize); 4] = [(112, 48), (96, 64), (80, 80), (48, 96)];
const DOWN2: usize = 96;
const STAGE3: [(usize, usize); 2] = [(176, 160), (176, 160)];

/// conv → [BatchNorm] → ReLU, the paper's "Conv module".
#[derive(Module, Debug)]
pub struct ConvModule {
    /// k×k convolution with "SAME" padding; it has a bias exactly when there is no BN.
    conv: Conv2d,
    /// Scale-free batch norm (absent in the `inception-nobn` variant).
    bn: Option<BatchNormNoScale>,
}

impl ConvModule {
    fn new(
        rng: &mut ChaCha8Rng,
        input: usize,
        output: usize,
        kernel: usize,
        stride: usize,
        batch_norm: bool,
        device: &Device,
    ) -> Self {
        let mut conv = conv_he_fan_out(rng, input, output, kernel, stride, !batch_norm, device);
        // TF "SAME": output size ceil(n / stride), the odd padding pixel at the bottom/right.
        conv.padding = PaddingConfig2d::Same;
        let bn = batch_norm.then(|| BatchNormNoScale::new(output, device));
        Self { conv, bn }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = conv2d(&self.conv, x);
        match &self.bn {
            Some(bn) => bn.forward_relu(x),
            None => relu(x),
        }
    }
}

/// Inception(c1, c3): a 1×1 and a 3×3 Conv module side by side, outputs concatenated.
#[derive(Module, Debug)]
pub struct InceptionBlock {
    /// Conv 1×1 with c1 channels.
    branch1: ConvModule,
    /// Conv 3×3 with c3 channels.
    branch3: ConvModule,
}

impl InceptionBlock {
    fn new(rng: &mut ChaCha8Rng, input: usize, (c1, c3): (usize, usize), batch_norm: bool, device: &Device) -> Self {
        Self {
            branch1: ConvModule::new(rng, input, c1, 1, 1, batch_norm, device),
            branch3: ConvModule::new(rng, input, c3, 3, 1, batch_norm, device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        Tensor::cat(vec![self.branch1.forward(x.clone()), self.branch3.forward(x)], 1)
    }
}

/// Downsample(c3): a stride-2 3×3 Conv module and a stride-2 3×3 max pool, concatenated.
#[derive(Module, Debug)]
pub struct Downsample {
    /// Conv 3×3, stride 2, c3 channels.
    conv: ConvModule,
    /// Max pool 3×3, stride 2, "SAME" (its input is post-ReLU, so padding never wins the max).
    pool: MaxPool2d,
}

impl Downsample {
    fn new(rng: &mut ChaCha8Rng, input: usize, c3: usize, batch_norm: bool, device: &Device) -> Self {
        Self {
            conv: ConvModule::new(rng, input, c3, 3, 2, batch_norm, device),
            pool: MaxPool2dConfig::new([3, 3]).with_strides([2, 2]).with_padding(PaddingConfig2d::Same).init(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        Tensor::cat(vec![self.conv.forward(x.clone()), self.pool.forward(x)], 1)
    }
}

/// The small Inception network of the paper (see the module documentation).
#[derive(Module, Debug)]
pub struct Inception {
    /// Conv 3×3, 96 channels.
    stem: ConvModule,
    /// Two Inception blocks at full resolution.
    stage1: Vec<InceptionBlock>,
    /// Downsample(80).
    down1: Downsample,
    /// Four Inception blocks at half resolution.
    stage2: Vec<InceptionBlock>,
    /// Downsample(96).
    down2: Downsample,
    /// Two Inception blocks at quarter resolution.
    stage3: Vec<InceptionBlock>,
    /// Linear classifier on the globally mean-pooled features.
    fc: Linear,
}

impl Inception {
    /// Builds the network for `channels`-channel images, drawing weights from `rng` (convs He
    /// fan-out, linear Glorot normal, biases and BN offsets zero). Any image size works: the
    /// padding is "SAME" and the features are mean-pooled globally.
    pub fn new(rng: &mut ChaCha8Rng, channels: usize, num_classes: usize, batch_norm: bool, device: &Device) -> Self {
        let mut width = STEM;
        let stem = ConvModule::new(rng, channels, STEM, 3, 1, batch_norm, device);
        let stage = |rng: &mut ChaCha8Rng, widths: &[(usize, usize)], width: &mut usize| {
            widths
                .iter()
                .map(|&(c1, c3)| {
                    let block = InceptionBlock::new(rng, *width, (c1, c3), batch_norm, device);
                    *width = c1 + c3;
                    block
                })
                .collect::<Vec<_>>()
        };
        let stage1 = stage(rng, &STAGE1, &mut width);
        let down1 = Downsample::new(rng, width, DOWN1, batch_norm, device);
        width += DOWN1;
        let stage2 = stage(rng, &STAGE2, &mut width);
        let down2 = Downsample::new(rng, width, DOWN2, batch_norm, device);
        width += DOWN2;
        let stage3 = stage(rng, &STAGE3, &mut width);
        let fc = linear_glorot(rng, width, num_classes, true, device);
        Self { stem, stage1, down1, stage2, down2, stage3, fc }
    }

    /// Logits `[batch, classes]` for images `[batch, channels, height, width]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem.forward(images);
        for block in &self.stage1 {
            x = block.forward(x);
        }
        x = self.down1.forward(x);
        for block in &self.stage2 {
            x = block.forward(x);
        }
        x = self.down2.forward(x);
        for block in &self.stage3 {
            x = block.forward(x);
        }
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([batch, channels]);
        self.fc.forward(pooled)
    }

    /// Spatial size `[height, width]` of the features entering the global mean pool.
    pub fn feature_size(height: usize, width: usize) -> [usize; 2] {
        [height.div_ceil(2).div_ceil(2), width.div_ceil(2).div_ceil(2)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::named_shapes;
    use crate::model::test_support::*;
    use crate::model::{Arch, trainable_param_count};

    #[test]
    fn paper_parameter_count_with_and_without_batch_norm() {
        for arch in [Arch::Inception, Arch::InceptionNobn] {
            let model = build(arch, [3, 28, 28], 10);
            assert_eq!(trainable_param_count(&model), 1_649_402, "{arch:?}");
        }
    }

    #[test]
    fn batch_norm_replaces_the_conv_biases() {
        let with_bn = named_shapes(&build(Arch::Inception, [3, 28, 28], 10));
        let without = named_shapes(&build(Arch::InceptionNobn, [3, 28, 28], 10));
        let count =
            |shapes: &[(String, Vec<usize>)], suffix: &str| shapes.iter().filter(|(n, _)| n.ends_with(suffix)).count();
        // 1 stem + 8 blocks × 2 + 2 downsample convs = 19 Conv modules.
        assert_eq!(count(&with_bn, "conv.bias"), 0);
        assert_eq!(count(&with_bn, "bn.beta"), 19);
        assert_eq!(count(&with_bn, "bn.running_var"), 19);
        assert_eq!(count(&without, "conv.bias"), 19);
        assert_eq!(count(&without, "bn.beta"), 0);
    }

    #[test]
    fn downsampling_is_tf_same() {
        assert_eq!(Inception::feature_size(28, 28), [7, 7]);
        assert_eq!(Inception::feature_size(32, 32), [8, 8]);
        let device = Device::flex();
        let down = Downsample::new(&mut crate::rng::stream(0, crate::rng::Purpose::Init, 0), 4, 6, false, &device);
        for (size, out) in [(28, 14), (14, 7), (7, 4), (2, 1), (1, 1)] {
            let x = Tensor::<4>::ones([1, 4, size, size], &device);
            assert_eq!(down.forward(x).dims(), [1, 10, out, out], "input {size}");
        }
    }

    #[test]
    fn forward_shapes_for_every_input() {
        for arch in [Arch::Inception, Arch::InceptionNobn] {
            check_forward_shapes(arch);
        }
    }

    #[test]
    fn gradients_reach_every_parameter_and_loss_falls() {
        for arch in [Arch::Inception, Arch::InceptionNobn] {
            // 16×16 keeps the test quick; the parameters do not depend on the image size.
            check_training(arch, [3, 16, 16], 0.01);
        }
    }
}
