//! Inference-only fusion: an eval-mode batch norm + ReLU is a per-channel affine map and a
//! clamp, so the convolution after it can apply it while it copies its input into the padded
//! buffer it reads anyway. The activation is never written out, which saves a pass over memory
//! per layer. The numbers are those of [`super::batch_norm_eval`] followed by the convolution.

use super::conv::{self, Fused};
use super::{batch_norm, conv_geometry, tensor, values};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::Tensor;

/// Inference kernels, on the plain (non-autodiff) CPU backend.
#[backend_extension(Flex)]
pub trait CpuInference: Backend {
    /// `conv2d(relu(batch_norm(x)), weight) [+ residual]` with the running statistics, no
    /// bias; `residual` is used when `with_residual`.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_after_bn_relu(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        with_residual: bool,
        #[extension_type] bn: BnStats<Self>,
        stride: usize,
        pad: usize,
    ) -> FloatTensor<Self>;
}

/// A batch norm's parameters and running statistics, `[C]` each, and its ε.
#[derive(burn::backend::ExtensionType)]
pub struct BnStats<B: Backend> {
    /// Scale γ.
    pub gamma: FloatTensor<B>,
    /// Offset β.
    pub beta: FloatTensor<B>,
    /// Running mean.
    pub mean: FloatTensor<B>,
    /// Running variance.
    pub var: FloatTensor<B>,
    /// Added to the variance.
    pub epsilon: f64,
}

/// The tensors of a batch norm in inference mode, for [`conv2d_after_bn_relu`].
pub struct BnParams {
    /// Scale γ.
    pub gamma: Tensor<1>,
    /// Offset β.
    pub beta: Tensor<1>,
    /// Running mean.
    pub mean: Tensor<1>,
    /// Running variance.
    pub var: Tensor<1>,
    /// Added to the variance.
    pub epsilon: f64,
}

/// `conv2d(relu(bn(x)), weight, stride, pad) [+ residual]` at inference (plain device only;
/// burn's own operations off the CPU backend).
pub fn conv2d_after_bn_relu(
    x: Tensor<4>,
    weight: Tensor<4>,
    residual: Option<Tensor<4>>,
    bn: BnParams,
    stride: usize,
    pad: usize,
) -> Tensor<4> {
    if !super::fused_on(&x.device()) {
        let x = super::reference::batch_norm_eval(x, bn.gamma, bn.beta, bn.mean, bn.var, bn.epsilon, true);
        let out = super::reference::conv2d(x, weight, stride, pad);
        return match residual {
            Some(residual) => out + residual,
            None => out,
        };
    }
    let with_residual = residual.is_some();
    // Without a residual the op still takes a tensor there; the input stands in, unread.
    let residual = residual.unwrap_or_else(|| x.clone());
    let bn = BnStats {
        gamma: bn.gamma.into_dispatch(),
        beta: bn.beta.into_dispatch(),
        mean: bn.mean.into_dispatch(),
        var: bn.var.into_dispatch(),
        epsilon: bn.epsilon,
    };
    Tensor::from_dispatch(Dispatch::conv2d_after_bn_relu(
        x.into_dispatch(),
        weight.into_dispatch(),
        residual.into_dispatch(),
        with_residual,
        bn,
        stride,
        pad,
    ))
}

impl CpuInference for Flex {
    fn conv2d_after_bn_relu(
        x: FlexTensor,
        weight: FlexTensor,
        residual: FlexTensor,
        with_residual: bool,
        bn: BnStats<Self>,
        stride: usize,
        pad: usize,
    ) -> FlexTensor {
        let g = conv_geometry(&x, &weight, stride, pad);
        let shape = vec![g.batch, g.out_channels, g.out_h(), g.out_w()];
        let coef =
            batch_norm::affine(&values(&bn.gamma), &values(&bn.beta), &values(&bn.mean), &values(&bn.var), bn.epsilon);
        assert_eq!(coef.len(), g.in_channels, "conv2d after batch norm: channel count");
        let residual = with_residual.then(|| {
            assert_eq!(residual.shape().to_vec(), shape, "conv2d + residual: residual shape");
            values(&residual)
        });
        let fused = Fused { residual: residual.as_deref(), input_affine: Some(&coef) };
        tensor(conv::conv2d_forward_fused(&g, &values(&x), &values(&weight), fused), shape)
    }
}
