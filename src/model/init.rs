//! Parameter initialisation from the run's own seeded generator.
//!
//! burn's initialisers draw from the backend's generator; the demo's initialisations are drawn
//! here instead, from a named ChaCha stream, so the same `--seed` gives the same weights on every
//! backend and machine.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A parameter of `shape` drawn from N(0, std²).
pub fn normal_param<const D: usize>(
    rng: &mut ChaCha8Rng,
    shape: [usize; D],
    std: f64,
    device: &Device,
) -> Param<Tensor<D>> {
    let count = shape.iter().product();
    let dist = Normal::new(0.0f64, std).expect("standard deviation is finite and positive");
    let values: Vec<f32> = (0..count).map(|_| dist.sample(rng) as f32).collect();
    Param::from_data(TensorData::new(values, shape), device)
}

/// A k×k convolution with "same"-style padding `(k-1)/2`, its weight drawn from
/// N(0, 2/(k·k·out_channels)) — the WRN demo's (He, fan-out) initialisation.
pub fn conv_he_fan_out(
    rng: &mut ChaCha8Rng,
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    stride: usize,
    bias: bool,
    device: &Device,
) -> Conv2d {
    let pad = (kernel - 1) / 2;
    let mut conv = Conv2dConfig::new([in_channels, out_channels], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .with_initializer(Initializer::Zeros)
        .init(device);
    let std = (2.0 / (kernel * kernel * out_channels) as f64).sqrt();
    conv.weight = normal_param(rng, [out_channels, in_channels, kernel, kernel], std, device);
    conv
}

/// A linear layer with weight drawn from N(0, 2/(fan_in+fan_out)) and zero bias (if any).
pub fn linear_glorot(rng: &mut ChaCha8Rng, fan_in: usize, fan_out: usize, bias: bool, device: &Device) -> Linear {
    let mut linear =
        LinearConfig::new(fan_in, fan_out).with_bias(bias).with_initializer(Initializer::Zeros).init(device);
    let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
    linear.weight = normal_param(rng, [fan_in, fan_out], std, device);
    linear
}
