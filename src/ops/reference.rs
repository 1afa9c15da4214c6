//! What the fused kernels compute, in burn's ordinary operations, so the same model code runs on
//! every backend burn has (the GPU ones included). The public functions of [`super`] call these
//! whenever the tensors are not on the CPU backend the kernels are written for
//! ([`super::fused_on`]); the tests compare the two paths.

use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::tensor::module;
use burn::tensor::ops::ConvOptions;

/// `conv2d(x, weight)`: no bias, square kernel, equal stride and padding on both axes.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
    module::conv2d(x, weight, None, ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1))
}

/// Training-mode batch norm (batch statistics), then ReLU when `relu`: `(output, mean, var)`.
///
/// The variance is taken of the centred values (two passes), not as `E[x²] − mean²`: after a
/// ReLU and a 1×1 convolution a channel's mean can be hundreds of times its spread, and the
/// one-pass form then loses most of the variance's digits in f32 (burn's own `batch_norm_train`
/// on the CPU backend did, by 1–2% in the Inception's gradients). The fused kernel accumulates
/// in f64; this matches it to float rounding.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    relu_on: bool,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    let dims = x.dims();
    let (batch, channels) = (dims[0], dims[1]);
    let x = x.reshape([batch as i64, channels as i64, -1]);
    let mean = x.clone().mean_dim(2).mean_dim(0);
    let centred = x - mean.clone();
    let var = centred.clone().square().mean_dim(2).mean_dim(0);
    let scale = var.clone().add_scalar(epsilon).sqrt().recip() * gamma.reshape([1, channels, 1]);
    let y = centred * scale + beta.reshape([1, channels, 1]);
    (rectify(y.reshape(dims), relu_on), mean.reshape([channels]), var.reshape([channels]))
}

/// Inference-mode batch norm with the given statistics, then ReLU when `relu`.
pub fn batch_norm_eval<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    var: Tensor<1>,
    epsilon: f64,
    relu_on: bool,
) -> Tensor<D> {
    rectify(module::batch_norm(x, gamma, beta, mean, var, epsilon), relu_on)
}

/// One SGD step with momentum and coupled weight decay (PyTorch's rule, dampening 0):
/// `v ← m·v + (g + wd·w)`, `w ← w − lr·v`, with `velocity` flat (`[n]`) as the fused update keeps it.
pub fn sgd_update<const D: usize>(
    weight: Tensor<D>,
    grad: Tensor<D>,
    velocity: Tensor<1>,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
) -> (Tensor<D>, Tensor<1>) {
    let [n] = velocity.dims();
    let grad = if weight_decay == 0.0 { grad } else { grad + weight.clone().mul_scalar(weight_decay) };
    let velocity = velocity.reshape(weight.dims()).mul_scalar(momentum) + grad;
    (weight - velocity.clone().mul_scalar(lr), velocity.reshape([n]))
}

fn rectify<const D: usize>(x: Tensor<D>, relu_on: bool) -> Tensor<D> {
    if relu_on { relu(x) } else { x }
}
