//! Fast CPU kernels for the hot operations of the convolutional networks, registered with burn
//! as a backend extension, so the models stay ordinary burn code.
//!
//! - [`conv2d`]: convolution as per-image im2col + GEMM (rayon over the batch), with its own
//!   input- and weight-gradient kernels.
//! - [`batch_norm_train`] / [`batch_norm_eval`]: batch normalisation fused with the ReLU that
//!   follows it, two passes forward and two backward instead of burn's dozen.
//! - [`sgd::sgd_update`]: the optimizer step in one pass, in place.
//! - [`inference`]: at inference, a batch norm + ReLU folded into the convolution after it.
//!
//! The kernels are written for burn's `Flex` CPU backend. The public functions below check the
//! tensors' device once ([`fused_on`]): on Flex they call the kernels; on any other backend (a GPU)
//! they compute the same thing with burn's ordinary operations ([`reference`]), so the models are
//! one codebase on every device.
//!
//! The [`CpuKernels`] trait is implemented for burn's `Flex` backend (the kernels, in [`conv`]
//! and [`batch_norm`]) and for `Autodiff<Flex>` (the backward steps, in `autodiff`). Each kernel is
//! tested against a direct reference in its module, and against burn's own operations through the
//! public functions below (forward and gradients) in `tests`.

mod autodiff;
pub mod batch_norm;
pub mod buffer;
pub mod by_channel;
pub mod conv;
pub mod direct;
pub mod inference;
pub mod reference;
pub mod sgd;
#[cfg(test)]
mod tests;

use burn::backend::flex::{Flex, FlexTensor, Layout};
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Backend, Bytes, DType, Dispatch, DispatchDevice, ExtensionType, TensorMetadata, backend_extension,
};
use burn::tensor::{Device, Shape, Tensor};
use std::cell::Cell;

thread_local! {
    /// Set by [`with_reference_ops`]: the fused kernels are bypassed on this thread.
    static REFERENCE_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// Whether the fused CPU kernels compute on `device`: burn's `Flex` backend, with or without
/// autodiff (and not inside [`with_reference_ops`]). Every other device gets [`reference`].
pub fn fused_on(device: &Device) -> bool {
    !REFERENCE_ONLY.with(Cell::get) && matches!(device.clone().inner().as_dispatch(), DispatchDevice::Flex(_))
}

/// Runs `f` with the fused kernels switched off on this thread, so the CPU computes exactly what
/// a GPU device would (burn's own operations): how the tests check the non-CPU path of every
/// model without a GPU.
pub fn with_reference_ops<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            REFERENCE_ONLY.with(|flag| flag.set(self.0));
        }
    }
    let _restore = Restore(REFERENCE_ONLY.with(|flag| flag.replace(true)));
    f()
}

/// The operations this crate adds to burn's backends.
#[backend_extension(Flex, Autodiff)]
pub trait CpuKernels: Backend {
    /// Convolution without bias, square kernel, equal stride and zero padding on both axes.
    fn conv2d_fused(x: FloatTensor<Self>, weight: FloatTensor<Self>, stride: usize, pad: usize) -> FloatTensor<Self>;

    /// `conv2d_fused(x, weight) + residual` (a ResNet block's last convolution and its
    /// shortcut), the sum formed while each image's output is in cache.
    fn conv2d_add_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        stride: usize,
        pad: usize,
    ) -> FloatTensor<Self>;

    /// Training-mode batch norm (batch statistics), then ReLU when `relu`.
    fn batch_norm_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormTrain<Self>;

    /// Inference-mode batch norm with the given statistics, then ReLU when `relu`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_relu_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self>;
}

/// Output of a training-mode batch norm: the activation and the batch statistics that feed the
/// running averages.
#[derive(ExtensionType)]
pub struct BatchNormTrain<B: Backend> {
    /// Normalised (and rectified) activation.
    pub output: FloatTensor<B>,
    /// Per-channel batch mean.
    pub mean: FloatTensor<B>,
    /// Per-channel biased batch variance.
    pub var: FloatTensor<B>,
}

/// `y = conv2d(x, weight)` for `x: [N, C, H, W]`, `weight: [O, C, k, k]`, no bias.
pub fn conv2d(x: Tensor<4>, weight: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
    if !fused_on(&x.device()) {
        return reference::conv2d(x, weight, stride, pad);
    }
    Tensor::from_dispatch(Dispatch::conv2d_fused(x.into_dispatch(), weight.into_dispatch(), stride, pad))
}

/// `conv2d(x, weight, stride, pad) + residual`, `residual` shaped like the output.
pub fn conv2d_add(x: Tensor<4>, weight: Tensor<4>, residual: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
    if !fused_on(&x.device()) {
        return reference::conv2d(x, weight, stride, pad) + residual;
    }
    Tensor::from_dispatch(Dispatch::conv2d_add_fused(
        x.into_dispatch(),
        weight.into_dispatch(),
        residual.into_dispatch(),
        stride,
        pad,
    ))
}

/// Training-mode batch norm of `x: [N, C, ...]` (then ReLU when `relu`): `(output, mean, var)`.
pub fn batch_norm_train<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
    relu: bool,
) -> (Tensor<D>, Tensor<1>, Tensor<1>) {
    if !fused_on(&x.device()) {
        return reference::batch_norm_train(x, gamma, beta, epsilon, relu);
    }
    let out =
        Dispatch::batch_norm_relu_train(x.into_dispatch(), gamma.into_dispatch(), beta.into_dispatch(), epsilon, relu);
    (Tensor::from_dispatch(out.output), Tensor::from_dispatch(out.mean), Tensor::from_dispatch(out.var))
}

/// Inference-mode batch norm of `x: [N, C, ...]` with fixed statistics (then ReLU when `relu`).
pub fn batch_norm_eval<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    mean: Tensor<1>,
    var: Tensor<1>,
    epsilon: f64,
    relu: bool,
) -> Tensor<D> {
    if !fused_on(&x.device()) {
        return reference::batch_norm_eval(x, gamma, beta, mean, var, epsilon, relu);
    }
    Tensor::from_dispatch(Dispatch::batch_norm_relu_eval(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        mean.into_dispatch(),
        var.into_dispatch(),
        epsilon,
        relu,
    ))
}

/// The contiguous `f32` contents of a Flex tensor (copied only if it is a strided view).
pub(crate) fn values(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => std::borrow::Cow::Owned(tensor.to_contiguous().as_slice::<f32>().expect("contiguous f32").to_vec()),
    }
}

/// Whether `t` owns its buffer alone and is a plain contiguous `f32` tensor, so that an
/// operation may write its result into it in place.
fn exclusive(t: &FlexTensor) -> bool {
    let n = t.shape().num_elements();
    t.dtype() == DType::F32
        && t.is_unique()
        && t.is_contiguous()
        && t.layout().start_offset() == 0
        && t.bytes().len() == n * 4
}

/// A contiguous Flex tensor of `shape` holding `data`.
pub(crate) fn tensor(data: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(Shape::from(shape)), DType::F32)
}

/// The convolution geometry of an input and weight pair, checked.
pub(crate) fn conv_geometry(x: &FlexTensor, weight: &FlexTensor, stride: usize, pad: usize) -> conv::ConvGeometry {
    let [batch, in_channels, height, width] = x.shape().dims();
    let [out_channels, c, kernel_h, kernel_w] = weight.shape().dims();
    assert_eq!(c, in_channels, "conv2d: weight has {c} input channels, input has {in_channels}");
    assert!(
        stride >= 1 && height + 2 * pad >= kernel_h && width + 2 * pad >= kernel_w,
        "conv2d: kernel larger than input"
    );
    conv::ConvGeometry { batch, in_channels, height, width, out_channels, kernel_h, kernel_w, stride, pad }
}

/// Batch-norm geometry of `[N, C, ...]`.
fn bn_geometry(x: &FlexTensor) -> batch_norm::BnGeometry {
    let dims = x.shape().to_vec();
    assert!(dims.len() >= 2, "batch norm needs [batch, channels, ...]");
    batch_norm::BnGeometry { batch: dims[0], channels: dims[1], plane: dims[2..].iter().product() }
}

/// Input and weight gradients of [`CpuKernels::conv2d_fused`] on Flex tensors.
fn conv2d_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    grad: &FlexTensor,
    stride: usize,
    pad: usize,
    need_input_grad: bool,
) -> (Option<FlexTensor>, FlexTensor) {
    let g = conv_geometry(x, weight, stride, pad);
    let (dx, dw) = conv::conv2d_backward(&g, &values(x), &values(weight), &values(grad), need_input_grad);
    (dx.map(|dx| tensor(dx, x.shape().to_vec())), tensor(dw, weight.shape().to_vec()))
}

impl CpuKernels for Flex {
    fn conv2d_fused(x: FlexTensor, weight: FlexTensor, stride: usize, pad: usize) -> FlexTensor {
        let g = conv_geometry(&x, &weight, stride, pad);
        let out = conv::conv2d_forward(&g, &values(&x), &values(&weight));
        tensor(out, vec![g.batch, g.out_channels, g.out_h(), g.out_w()])
    }

    fn conv2d_add_fused(
        x: FlexTensor,
        weight: FlexTensor,
        residual: FlexTensor,
        stride: usize,
        pad: usize,
    ) -> FlexTensor {
        let g = conv_geometry(&x, &weight, stride, pad);
        let shape = vec![g.batch, g.out_channels, g.out_h(), g.out_w()];
        assert_eq!(residual.shape().to_vec(), shape, "conv2d + residual: residual shape");
        let residual = values(&residual);
        let out = conv::conv2d_forward_fused(
            &g,
            &values(&x),
            &values(&weight),
            conv::Fused { residual: Some(&residual), input_affine: None },
        );
        tensor(out, shape)
    }

    fn batch_norm_relu_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormTrain<Self> {
        let g = bn_geometry(&x);
        let out = batch_norm::forward_train(&g, &values(&x), &values(&gamma), &values(&beta), epsilon, relu);
        BatchNormTrain {
            output: tensor(out.output, x.shape().to_vec()),
            mean: tensor(out.mean, vec![g.channels]),
            var: tensor(out.var, vec![g.channels]),
        }
    }

    fn batch_norm_relu_eval(
        mut x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        var: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        let g = bn_geometry(&x);
        let (gamma, beta, mean, var) = (values(&gamma), values(&beta), values(&mean), values(&var));
        // An activation nobody else holds (a convolution's fresh output, at inference) is
        // normalised where it lies: no new buffer, one pass.
        if exclusive(&x) {
            let data = x.try_storage_mut::<f32>().expect("unique tensor");
            batch_norm::forward_eval_in_place(&g, data, &gamma, &beta, &mean, &var, epsilon, relu);
            return x;
        }
        let out = batch_norm::forward_eval(&g, &values(&x), &gamma, &beta, &mean, &var, epsilon, relu);
        tensor(out, x.shape().to_vec())
    }
}
