//! burn's `Conv2d` and `BatchNorm` layers run through the fused CPU kernels of [`crate::ops`].
//!
//! The layers keep burn's parameters, names and initialisation (so checkpoints and parameter
//! counts do not change); only the computation is swapped. A layer the kernels do not cover
//! (groups, dilation, asymmetric padding) falls back to burn's own forward.

use crate::ops;
use crate::ops::inference::BnParams;
use burn::module::RunningState;
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::Tensor;

/// `conv.forward(x)`, computed by [`ops::conv2d`] when the layer's shape allows.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let Some((stride, pad)) = fused_shape(conv) else {
        return conv.forward(x);
    };
    let out = ops::conv2d(x, conv.weight.val(), stride, pad);
    match &conv.bias {
        Some(bias) => {
            let [channels] = bias.shape().dims();
            out + bias.val().reshape([1, channels, 1, 1])
        }
        None => out,
    }
}

/// `conv.forward(x) + residual` (a residual block's last step), in one pass through
/// [`ops::conv2d_add`] when the layer's shape allows.
pub fn conv2d_add(conv: &Conv2d, x: Tensor<4>, residual: Tensor<4>) -> Tensor<4> {
    match fused_shape(conv).filter(|_| conv.bias.is_none()) {
        Some((stride, pad)) => ops::conv2d_add(x, conv.weight.val(), residual, stride, pad),
        None => conv2d(conv, x) + residual,
    }
}

/// `conv.forward(relu(bn.forward(x))) [+ residual]`. At inference (a plain device) the batch
/// norm + ReLU is folded into the convolution's reading of its input
/// ([`ops::inference`]); in training, and for layers the kernels do not cover, it is
/// [`batch_norm_relu`] then [`conv2d`] / [`conv2d_add`].
pub fn bn_relu_conv(bn: &BatchNorm, conv: &Conv2d, x: Tensor<4>, residual: Option<Tensor<4>>) -> Tensor<4> {
    let device = x.device();
    match fused_shape(conv).filter(|_| !device.is_autodiff() && conv.bias.is_none()) {
        Some((stride, pad)) => {
            let params = BnParams {
                gamma: bn.gamma.val(),
                beta: bn.beta.val(),
                mean: bn.running_mean.value().to_device(&device),
                var: bn.running_var.value().to_device(&device),
                epsilon: bn.epsilon,
            };
            ops::inference::conv2d_after_bn_relu(x, conv.weight.val(), residual, params, stride, pad)
        }
        None => {
            let activated = batch_norm_relu(bn, x);
            match residual {
                Some(residual) => conv2d_add(conv, activated, residual),
                None => conv2d(conv, activated),
            }
        }
    }
}

/// `(stride, padding)` when the fused kernels cover the layer: one group, no dilation, a square
/// kernel, equal strides and symmetric padding.
fn fused_shape(conv: &Conv2d) -> Option<(usize, usize)> {
    let [kh, kw] = conv.kernel_size;
    let [sh, sw] = conv.stride;
    let pad = match conv.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == left && top == bottom && top == right => {
            Some(top)
        }
        PaddingConfig2d::Valid => Some(0),
        // "Same" is symmetric for odd kernels at stride 1 (TensorFlow pads strided ones unevenly).
        PaddingConfig2d::Same if kh % 2 == 1 && sh == 1 => Some((kh - 1) / 2),
        _ => None,
    };
    let fits = conv.groups == 1 && conv.dilation == [1, 1] && kh == kw && sh == sw;
    pad.filter(|_| fits).map(|pad| (sh, pad))
}

/// `relu(bn.forward(x))` in one fused kernel, with burn's rules: batch statistics (and an update
/// of the running averages) on an autodiff device with training enabled, running statistics
/// otherwise.
pub fn batch_norm_relu(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let training = x.device().is_autodiff() && bn.training.is_enabled();
    let stats = RunningStats { mean: &bn.running_mean, var: &bn.running_var, momentum: bn.momentum };
    normalize(x, bn.gamma.val(), bn.beta.val(), stats, bn.epsilon, training, true)
}

/// A batch norm's running averages and the weight of each new batch in them.
pub struct RunningStats<'a> {
    /// Running mean.
    pub mean: &'a RunningState<Tensor<1>>,
    /// Running (biased) variance.
    pub var: &'a RunningState<Tensor<1>>,
    /// Weight of the current batch.
    pub momentum: f64,
}

/// Batch norm (then ReLU when `relu`) through [`ops`]: batch statistics folded into the running
/// averages when `training`, the running averages themselves otherwise.
pub fn normalize(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    running: RunningStats<'_>,
    epsilon: f64,
    training: bool,
    relu: bool,
) -> Tensor<4> {
    let device = x.device();
    if !training {
        let mean = running.mean.value().to_device(&device);
        let var = running.var.value().to_device(&device);
        return ops::batch_norm_eval(x, gamma, beta, mean, var, epsilon, relu);
    }
    let (output, mean, var) = ops::batch_norm_train(x, gamma, beta, epsilon, relu);
    let m = running.momentum;
    let running_mean = running.mean.value_sync().to_device(&device);
    let running_var = running.var.value_sync().to_device(&device);
    running.mean.update(running_mean.mul_scalar(1.0 - m).add(mean.detach().mul_scalar(m)).detach());
    running.var.update(running_var.mul_scalar(1.0 - m).add(var.detach().mul_scalar(m)).detach());
    output
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::BatchNormConfig;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::activation::relu;
    use burn::tensor::{Device, Distribution, Tolerance};

    #[test]
    fn layers_match_burn_forward_in_training_and_eval() {
        let device = Device::flex().autodiff();
        let x = Tensor::<4>::random([3, 4, 6, 6], Distribution::Normal(1.0, 2.0), &device);
        for (padding, bias, stride) in [
            (PaddingConfig2d::Explicit(1, 1, 1, 1), false, 1),
            (PaddingConfig2d::Valid, true, 2),
            (PaddingConfig2d::Same, true, 1),
        ] {
            let conv = Conv2dConfig::new([4, 5], [3, 3])
                .with_padding(padding)
                .with_bias(bias)
                .with_stride([stride, stride])
                .init(&device);
            conv2d(&conv, x.clone())
                .into_data()
                .assert_approx_eq::<f32>(&conv.forward(x.clone()).into_data(), Tolerance::absolute(1e-4));
        }
        let (ours, theirs) = (BatchNormConfig::new(4).init(&device), BatchNormConfig::new(4).init(&device));
        let y = batch_norm_relu(&ours, x.clone());
        y.into_data().assert_approx_eq::<f32>(&relu(theirs.forward(x.clone())).into_data(), Tolerance::absolute(1e-4));
        // The running statistics moved the same way; eval mode then agrees too.
        let (ours, theirs) = (ours.valid(), theirs.valid());
        ours.running_var
            .value()
            .into_data()
            .assert_approx_eq::<f32>(&theirs.running_var.value().into_data(), Tolerance::absolute(1e-5));
        let x = x.inner();
        batch_norm_relu(&ours, x.clone())
            .into_data()
            .assert_approx_eq::<f32>(&relu(theirs.forward(x.clone())).into_data(), Tolerance::absolute(1e-4));
        // Folded into the next convolution (with and without a residual), on both kernel paths:
        // a 16-wide image (row kernel) and a 6-wide one (by-channel or GEMM).
        for (size, out_channels) in [(16, 16), (6, 5)] {
            let conv = Conv2dConfig::new([4, out_channels], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(&x.device());
            let x = Tensor::<4>::random([3, 4, size, size], Distribution::Normal(1.0, 2.0), &x.device());
            let residual =
                Tensor::<4>::random([3, out_channels, size, size], Distribution::Normal(0.0, 1.0), &x.device());
            let want = conv.forward(relu(theirs.forward(x.clone())));
            bn_relu_conv(&ours, &conv, x.clone(), None)
                .into_data()
                .assert_approx_eq::<f32>(&want.clone().into_data(), Tolerance::absolute(1e-4));
            bn_relu_conv(&ours, &conv, x, Some(residual.clone()))
                .into_data()
                .assert_approx_eq::<f32>(&(want + residual).into_data(), Tolerance::absolute(1e-4));
        }
    }
}
