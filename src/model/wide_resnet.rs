//! Wide Residual Network (pre-activation), as in the reference demo's `model_wideresnet.py`.

use super::init::{conv_he_fan_out, linear_glorot};
use super::layers::{batch_norm_relu, bn_relu_conv, conv2d, conv2d_add};
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear};
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

/// Shape of a Wide ResNet: depth 6n+4, widen factor k, dropout between the convs of a block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrnSpec {
    /// Total depth; must be 6n+4 (28 in the demo).
    pub depth: usize,
    /// Width multiplier k of the three groups (16k, 32k, 64k channels).
    pub widen_factor: usize,
    /// Dropout probability inside each block (0 = off).
    pub droprate: f64,
}

impl WrnSpec {
    /// Blocks per group, n = (depth − 4) / 6, or an error for a depth that is not 6n+4.
    pub fn blocks_per_group(&self) -> anyhow::Result<usize> {
        if self.depth < 10 || !(self.depth - 4).is_multiple_of(6) {
            anyhow::bail!("--wrn-depth {} is not of the form 6n+4 with n >= 1 (e.g. 10, 16, 22, 28, 40)", self.depth);
        }
        Ok((self.depth - 4) / 6)
    }
}

/// Pre-activation basic block: BN-ReLU-conv3×3-BN-ReLU-(dropout)-conv3×3 plus a shortcut.
#[derive(Module, Debug)]
pub struct BasicBlock {
    bn1: BatchNorm,
    conv1: Conv2d,
    bn2: BatchNorm,
    conv2: Conv2d,
    dropout: Dropout,
    /// 1×1 strided projection when the width changes; identity otherwise.
    shortcut: Option<Conv2d>,
}

impl BasicBlock {
    fn new(rng: &mut ChaCha8Rng, input: usize, output: usize, stride: usize, droprate: f64, device: &Device) -> Self {
        Self {
            bn1: BatchNormConfig::new(input).init(device),
            conv1: conv_he_fan_out(rng, input, output, 3, stride, false, device),
            bn2: BatchNormConfig::new(output).init(device),
            conv2: conv_he_fan_out(rng, output, output, 3, 1, false, device),
            dropout: DropoutConfig::new(droprate).init(),
            shortcut: (input != output).then(|| conv_he_fan_out(rng, input, output, 1, stride, false, device)),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !x.device().is_autodiff() {
            // Inference: each batch norm + ReLU is read by the convolution after it (dropout is
            // the identity here).
            let out = bn_relu_conv(&self.bn1, &self.conv1, x.clone(), None);
            let residual = match &self.shortcut {
                Some(projection) => bn_relu_conv(&self.bn1, projection, x, None),
                None => x,
            };
            return bn_relu_conv(&self.bn2, &self.conv2, out, Some(residual));
        }
        let activated = batch_norm_relu(&self.bn1, x.clone());
        let out = conv2d(&self.conv1, activated.clone());
        let out = self.dropout.forward(batch_norm_relu(&self.bn2, out));
        // As in the demo: the projection sees the activated input, the identity the raw input.
        let residual = match &self.shortcut {
            Some(projection) => conv2d(projection, activated),
            None => x,
        };
        conv2d_add(&self.conv2, out, residual)
    }
}

/// WRN-depth-k for `channels`-channel images and `num_classes` outputs.
#[derive(Module, Debug)]
pub struct WideResNet {
    conv1: Conv2d,
    blocks: Vec<BasicBlock>,
    bn: BatchNorm,
    fc: Linear,
}

impl WideResNet {
    /// Builds the network with the demo's initialisation drawn from `rng`.
    pub fn new(
        rng: &mut ChaCha8Rng,
        spec: WrnSpec,
        channels: usize,
        num_classes: usize,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let n = spec.blocks_per_group()?;
        let k = spec.widen_factor;
        let widths = [16, 16 * k, 32 * k, 64 * k];
        let conv1 = conv_he_fan_out(rng, channels, widths[0], 3, 1, false, device);
        let mut blocks = Vec::with_capacity(3 * n);
        for group in 0..3 {
            let stride = if group == 0 { 1 } else { 2 };
            for i in 0..n {
                let input = if i == 0 { widths[group] } else { widths[group + 1] };
                let stride = if i == 0 { stride } else { 1 };
                blocks.push(BasicBlock::new(rng, input, widths[group + 1], stride, spec.droprate, device));
            }
        }
        Ok(Self {
            conv1,
            blocks,
            bn: BatchNormConfig::new(widths[3]).init(device),
            fc: linear_glorot(rng, widths[3], num_classes, true, device),
        })
    }

    /// Logits for a batch of images `[batch, channels, height, width]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = conv2d(&self.conv1, images);
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = batch_norm_relu(&self.bn, x);
        // Global average pool: the demo's 8×8 average pool on 32×32 inputs, any size here.
        let [batch, channels, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([batch, channels]);
        self.fc.forward(pooled)
    }
}
