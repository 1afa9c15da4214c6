//! SGD with momentum and weight decay, with PyTorch's `torch.optim.SGD` semantics.
//!
//! `g ← grad + wd·w;  v ← g (first step) or m·v + g;  w ← w − lr·v` (no dampening, no
//! Nesterov). The momentum buffers are keyed by parameter path rather than burn's random
//! parameter ids, so a checkpoint restores into a freshly built model.

use crate::ops;
use burn::module::{Module, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use std::collections::BTreeMap;

/// Hyper-parameters of [`Sgd`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdConfig {
    /// Momentum factor m.
    pub momentum: f64,
    /// L2 weight decay wd, added to the gradient.
    pub weight_decay: f64,
}

/// The optimizer and its momentum buffers.
#[derive(Debug, Clone)]
pub struct Sgd {
    config: SgdConfig,
    /// Flattened momentum buffer of each parameter, by dotted path.
    velocity: BTreeMap<String, Tensor<1>>,
}

impl Sgd {
    /// A fresh optimizer with empty momentum buffers.
    pub fn new(config: SgdConfig) -> Self {
        Self { config, velocity: BTreeMap::new() }
    }

    /// One update of every parameter of `module` that has a gradient in `grads`.
    pub fn step<M: Module>(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M {
        let mut mapper = Update { sgd: self, lr, grads: &mut grads, path: Vec::new() };
        module.map(&mut mapper)
    }

    /// The momentum buffers, flattened, by parameter path (for checkpoints).
    pub fn state(&self) -> BTreeMap<String, TensorData> {
        self.velocity.iter().map(|(k, v)| (k.clone(), v.to_data())).collect()
    }

    /// Restores momentum buffers saved by [`Sgd::state`], on `device`.
    pub fn load_state(&mut self, state: BTreeMap<String, TensorData>, device: &Device) {
        let device = device.clone().without_autodiff();
        self.velocity = state.into_iter().map(|(k, data)| (k, Tensor::<1>::from_data(data, &device))).collect();
    }
}

/// Mapper applying one SGD step to each parameter.
struct Update<'a> {
    sgd: &'a mut Sgd,
    lr: f64,
    grads: &'a mut GradientsParams,
    path: Vec<String>,
}

impl ModuleMapper for Update<'_> {
    fn enter_module(&mut self, name: &str, _container: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let SgdConfig { momentum, weight_decay } = self.sgd.config;
        let require_grad = tensor.is_require_grad();
        let weight = tensor.inner();
        let numel: usize = weight.dims().iter().product();
        let name = self.path.join(".");
        // No velocity yet is a zero velocity: m·0 + g is exactly PyTorch's first step, v = g.
        let velocity = match self.sgd.velocity.remove(&name) {
            Some(v) => v,
            None => Tensor::zeros([numel], &weight.device()),
        };
        let (weight, velocity) = ops::sgd::sgd_update(weight, grad, velocity, self.lr, momentum, weight_decay);
        if momentum != 0.0 {
            self.sgd.velocity.insert(name, velocity);
        }
        let mut updated = Tensor::from_inner(weight);
        if require_grad {
            updated = updated.require_grad();
        }
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Tensor;

    /// torch.optim.SGD(momentum=m, weight_decay=wd, dampening=0) on loss = Σ(x·W), whose
    /// gradient is the constant x: g_t = x + wd·w_t; v_1 = g_1, v_t = m·v_{t−1} + g_t;
    /// w_{t+1} = w_t − lr·v_t. Three steps, compared element by element.
    #[test]
    fn follows_torch_optim_sgd() {
        let device = Device::flex().autodiff();
        let (lr, m, wd) = (0.1, 0.9, 0.01);
        let mut model: Linear = LinearConfig::new(2, 1).with_bias(false).init(&device);
        model.weight = Param::from_data(TensorData::new(vec![0.5f32, -1.0], [2, 1]), &device);
        let x = [3.0f64, -2.0];
        let mut sgd = Sgd::new(SgdConfig { momentum: m, weight_decay: wd });
        let (mut w, mut v) = ([0.5f64, -1.0], [0.0f64; 2]);
        for step in 0..3 {
            let input = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, -2.0], [1, 2]), &device);
            let loss = model.forward(input).sum();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = sgd.step(lr, model, grads);
            for i in 0..2 {
                let g = x[i] + wd * w[i];
                v[i] = if step == 0 { g } else { m * v[i] + g };
                w[i] -= lr * v[i];
            }
            let got = model.weight.val().into_data().iter::<f32>().collect::<Vec<_>>();
            for i in 0..2 {
                assert!((got[i] as f64 - w[i]).abs() < 1e-5, "step {step}: {got:?} vs {w:?}");
            }
        }
        let velocity = sgd.state()["weight"].iter::<f32>().collect::<Vec<_>>();
        assert!((velocity[0] as f64 - v[0]).abs() < 1e-5 && (velocity[1] as f64 - v[1]).abs() < 1e-5);
    }
}
