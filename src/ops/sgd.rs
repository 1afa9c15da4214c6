//! The SGD update as one pass over memory, in place when the buffers are not shared.
//!
//! burn's tensor operations spell `g += wd·w; v = m·v + g; w −= lr·v` as six passes, each
//! allocating a new tensor; on the MLP that was a third of a training step. The arithmetic (and
//! its f32 rounding) is the same as those six operations.

use super::{exclusive, tensor, values};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, ExtensionType, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

/// The optimizer update, on the plain (non-autodiff) CPU backend.
#[backend_extension(Flex)]
pub trait CpuOptim: Backend {
    /// One SGD step with momentum and coupled weight decay (PyTorch's rule, dampening 0):
    /// `v ← m·v + (g + wd·w)`, `w ← w − lr·v`. Returns the new weight and velocity.
    fn sgd_update(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        velocity: FloatTensor<Self>,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    ) -> SgdUpdate<Self>;
}

/// New weight (shape of the weight) and velocity (shape of the velocity given).
#[derive(ExtensionType)]
pub struct SgdUpdate<B: Backend> {
    /// The updated weight.
    pub weight: FloatTensor<B>,
    /// The updated momentum buffer.
    pub velocity: FloatTensor<B>,
}

/// [`CpuOptim::sgd_update`] on tensors: `(weight, velocity)`. `velocity` must have as many
/// elements as `weight` (its shape is kept); zeros give PyTorch's first step, `v = g + wd·w`.
pub fn sgd_update<const D: usize>(
    weight: Tensor<D>,
    grad: Tensor<D>,
    velocity: Tensor<1>,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
) -> (Tensor<D>, Tensor<1>) {
    if !super::fused_on(&weight.device()) {
        return super::reference::sgd_update(weight, grad, velocity, lr, momentum, weight_decay);
    }
    let out = Dispatch::sgd_update(
        weight.into_dispatch(),
        grad.into_dispatch(),
        velocity.into_dispatch(),
        lr,
        momentum,
        weight_decay,
    );
    (Tensor::from_dispatch(out.weight), Tensor::from_dispatch(out.velocity))
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 15;

impl CpuOptim for Flex {
    fn sgd_update(
        mut weight: FlexTensor,
        grad: FlexTensor,
        mut velocity: FlexTensor,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
    ) -> SgdUpdate<Self> {
        let n = weight.shape().num_elements();
        assert_eq!(grad.shape().num_elements(), n, "sgd: gradient size");
        assert_eq!(velocity.shape().num_elements(), n, "sgd: velocity size");
        let (lr, m, wd) = (lr as f32, momentum as f32, weight_decay as f32);
        let grad = values(&grad);
        let step = |w: &mut [f32], v: &mut [f32], g: &[f32]| {
            for ((w, v), &g) in w.iter_mut().zip(v.iter_mut()).zip(g) {
                *v = *v * m + (g + *w * wd);
                *w -= *v * lr;
            }
        };
        let (w_shape, v_shape) = (weight.shape().to_vec(), velocity.shape().to_vec());
        // In place when both buffers are ours alone; otherwise into fresh buffers.
        let (w_in_place, v_in_place) = (exclusive(&weight), exclusive(&velocity));
        let mut fresh_w = if w_in_place { Vec::new() } else { values(&weight).into_owned() };
        let mut fresh_v = if v_in_place { Vec::new() } else { values(&velocity).into_owned() };
        let w_buf = if w_in_place { weight.try_storage_mut::<f32>().expect("unique weight") } else { &mut fresh_w };
        let v_buf = if v_in_place { velocity.try_storage_mut::<f32>().expect("unique velocity") } else { &mut fresh_v };
        w_buf
            .par_chunks_mut(CHUNK)
            .zip(v_buf.par_chunks_mut(CHUNK))
            .zip(grad.par_chunks(CHUNK))
            .for_each(|((w, v), g)| step(w, v, g));
        SgdUpdate {
            weight: if w_in_place { weight } else { tensor(fresh_w, w_shape) },
            velocity: if v_in_place { velocity } else { tensor(fresh_v, v_shape) },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    /// The fused step equals burn's six operations, bit for bit, in place or not.
    #[test]
    fn matches_the_tensor_operations() {
        let device = Device::flex();
        let w = Tensor::<2>::random([70, 1000], Distribution::Normal(0.0, 1.0), &device);
        let g = Tensor::<2>::random([70, 1000], Distribution::Normal(0.0, 1.0), &device);
        let v = Tensor::<1>::random([70_000], Distribution::Normal(0.0, 1.0), &device);
        let (lr, m, wd) = (0.1, 0.9, 1e-4);
        let update = g.clone() + w.clone().mul_scalar(wd);
        let want_v = v.clone().reshape([70, 1000]).mul_scalar(m) + update;
        let want_w = w.clone() - want_v.clone().mul_scalar(lr);
        // Shared inputs (w and v are still referenced above): fresh buffers.
        let (got_w, got_v) = sgd_update(w.clone(), g.clone(), v.clone(), lr, m, wd);
        got_w.to_data().assert_eq(&want_w.to_data(), true);
        got_v.clone().reshape([70, 1000]).to_data().assert_eq(&want_v.to_data(), true);
        assert_eq!(got_v.dims(), [70_000]);
        // Exclusive inputs: updated in place, same numbers.
        let (w2, v2) = (w.to_data(), v.to_data());
        let (got_w, got_v) =
            sgd_update(Tensor::<2>::from_data(w2, &device), g, Tensor::<1>::from_data(v2, &device), lr, m, wd);
        got_w.to_data().assert_eq(&want_w.to_data(), true);
        got_v.reshape([70, 1000]).to_data().assert_eq(&want_v.to_data(), true);
    }
}
