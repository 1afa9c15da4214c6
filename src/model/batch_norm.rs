//! Batch normalisation with a learned offset but no learned scale, as TensorFlow's
//! `tf.contrib.layers.batch_norm` / `slim.batch_norm` build it by default (`center=True`,
//! `scale=False`).
//!
//! The paper's small Inception has 1,649,402 parameters both with and without BatchNorm. That
//! holds exactly when each Conv module carries one learned value per output channel in both
//! variants: the conv bias without BN, the BN offset β with BN (TF-slim drops the conv bias when a
//! normaliser follows, and its batch norm has no γ). burn's `BatchNorm` always has γ and β, hence
//! this module; its running statistics keep burn's field names `running_mean`/`running_var`, so
//! [`trainable_param_count`](super::trainable_param_count) and checkpoints treat them as state.

use super::layers::{RunningStats, normalize};
use burn::module::{Module, Param, RunningState};
use burn::tensor::{Device, Tensor};

/// TensorFlow's default ε for batch norm (burn's and PyTorch's is 1e-5).
pub const EPSILON: f64 = 1e-3;

/// Weight of the current batch in the running statistics (PyTorch convention; TF's decay 0.9).
///
/// The paper does not say; 0.1 lets the eval-mode statistics settle within an epoch even on the
/// small synthetic data sets, like the WRN's burn/PyTorch default.
pub const MOMENTUM: f64 = 0.1;

/// Per-channel batch normalisation `y = (x − mean) / sqrt(var + ε) + β`, without scale.
///
/// Batch statistics are used (and the running averages updated) on an autodiff device, the
/// running averages otherwise — the same rule as burn's `BatchNorm`, so `Module::valid()` gives
/// eval mode.
#[derive(Module, Debug)]
pub struct BatchNormNoScale {
    /// Learned per-channel offset β, initialised to zero.
    pub beta: Param<Tensor<1>>,
    /// Running mean, state rather than a parameter.
    pub running_mean: RunningState<Tensor<1>>,
    /// Running (biased) variance, state rather than a parameter.
    pub running_var: RunningState<Tensor<1>>,
    /// Weight of the current batch in the running statistics.
    pub momentum: f64,
    /// Added to the variance for numerical stability.
    pub epsilon: f64,
}

impl BatchNormNoScale {
    /// A layer for `channels` channels: β = 0, running mean 0, running variance 1.
    pub fn new(channels: usize, device: &Device) -> Self {
        Self {
            beta: Param::from_tensor(Tensor::zeros([channels], device)),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([channels], device)),
            momentum: MOMENTUM,
            epsilon: EPSILON,
        }
    }

    /// Normalises `x` `[batch, channels, height, width]` channel by channel.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, false)
    }

    /// `relu(self.forward(x))` in one fused kernel.
    pub fn forward_relu(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with(x, true)
    }

    fn forward_with(&self, x: Tensor<4>, relu: bool) -> Tensor<4> {
        let device = x.device();
        let [channels] = self.beta.shape().dims();
        // The fixed scale γ = 1 is a constant, not a parameter: no gradient, not counted.
        let gamma = Tensor::ones([channels], &device);
        let running = RunningStats { mean: &self.running_mean, var: &self.running_var, momentum: self.momentum };
        normalize(x, gamma, self.beta.val(), running, self.epsilon, device.is_autodiff(), relu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::params::{named_shapes, trainable_param_count};
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn only_the_offset_is_a_parameter() {
        let bn = BatchNormNoScale::new(5, &Device::flex());
        assert_eq!(trainable_param_count(&bn), 5);
        let names: Vec<String> = named_shapes(&bn).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["beta", "running_mean", "running_var"]);
    }

    #[test]
    fn normalises_in_training_and_uses_running_stats_in_eval() {
        let device = Device::flex().autodiff();
        let bn = BatchNormNoScale::new(3, &device);
        let x = Tensor::<4>::random([4, 3, 5, 5], Distribution::Normal(2.0, 3.0), &device);
        let y = bn.forward(x.clone());
        // Per-channel mean 0 and variance ~1 over batch and space.
        let mean = y.clone().mean_dim(3).mean_dim(2).mean_dim(0).reshape([3]);
        let var = y.square().mean_dim(3).mean_dim(2).mean_dim(0).reshape([3]);
        mean.into_data().assert_approx_eq::<f32>(&TensorData::from([0.0f32; 3]), Default::default());
        for v in var.into_data().iter::<f32>() {
            assert!((v - 1.0).abs() < 1e-3, "variance {v}");
        }
        // One update moved the running mean a tenth of the way towards the batch mean (~2).
        let eval = bn.valid();
        for m in eval.running_mean.value().into_data().iter::<f32>() {
            assert!((0.1..0.3).contains(&m), "running mean {m}");
        }
        let out = eval.forward(x.inner());
        assert_eq!(out.dims(), [4, 3, 5, 5]);
    }
}
