//! Shared checks of the architecture tests: building, forward shapes, and a few SGD steps.

use super::params::{is_running_stat, named_tensors};
use super::{Arch, Model, ModelSpec, WrnSpec};
use crate::rng::{self, Purpose};
use crate::train::evaluate::cross_entropy;
use crate::train::sgd::{Sgd, SgdConfig};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand_distr::{Distribution, Normal};

/// A spec for `arch` on `input` images; WRN-10-1, MLP 1×512 with biases.
pub fn spec(arch: Arch, input: [usize; 3], num_classes: usize) -> ModelSpec {
    ModelSpec {
        arch,
        wrn: WrnSpec { depth: 10, widen_factor: 1, droprate: 0.0 },
        mlp_hidden: vec![512],
        mlp_bias: true,
        input,
        num_classes,
    }
}

/// `arch` built with seed 0 on the plain CPU device.
pub fn build(arch: Arch, input: [usize; 3], num_classes: usize) -> Model {
    Model::new(&spec(arch, input, num_classes), 0, &Device::flex()).expect("valid spec")
}

/// A batch of standard-normal images `[batch, c, h, w]`, the same on every call.
pub fn random_images(batch: usize, [c, h, w]: [usize; 3], device: &Device) -> Tensor<4> {
    let mut rng = rng::stream(99, Purpose::Synthetic, 0);
    let normal = Normal::new(0.0f32, 1.0).expect("valid distribution");
    let values: Vec<f32> = (0..batch * c * h * w).map(|_| normal.sample(&mut rng)).collect();
    Tensor::from_data(TensorData::new(values, [batch, c, h, w]), device)
}

/// Logits have shape `[B, classes]` and are finite for CIFAR-10 crops and full images, MNIST
/// images and CIFAR-100's 100 classes, in eval mode.
pub fn check_forward_shapes(arch: Arch) {
    let device = Device::flex();
    for (input, classes) in [([3, 28, 28], 10), ([3, 32, 32], 10), ([1, 28, 28], 10), ([3, 28, 28], 100)] {
        let logits = build(arch, input, classes).forward(random_images(3, input, &device));
        assert_eq!(logits.dims(), [3, classes], "{arch:?} on {input:?}");
        let values = logits.into_data().try_to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{arch:?} on {input:?}");
    }
}

/// On an autodiff device: one SGD step changes every trainable tensor (gradients reach all
/// layers), and a few more steps with momentum lower the loss on a fixed tiny batch.
pub fn check_training(arch: Arch, input: [usize; 3], lr: f64) {
    let device = Device::flex().autodiff();
    let mut model = Model::new(&spec(arch, input, 10), 1, &device).unwrap();
    let images = random_images(8, input, &device);
    let labels: Vec<i64> = (0..8).map(|i| (i * 3 % 10) as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [8]), &device);
    let loss_of = |model: &Model| cross_entropy(model.forward(images.clone()), targets.clone());
    let value = |loss: &Tensor<1>| loss.clone().into_scalar::<f32>();

    let trainable =
        |model: &Model| named_tensors(model).into_iter().filter(|t| !is_running_stat(&t.name)).collect::<Vec<_>>();
    let before = trainable(&model);
    let mut sgd = Sgd::new(SgdConfig { momentum: 0.9, weight_decay: 0.0 });
    let loss = loss_of(&model);
    let first = value(&loss);
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    model = sgd.step(lr, model, grads);
    for (old, new) in before.iter().zip(trainable(&model)) {
        assert_eq!(old.name, new.name);
        assert_ne!(old.data, new.data, "{arch:?}: {} got no gradient", old.name);
    }
    for _ in 0..5 {
        let loss = loss_of(&model);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = sgd.step(lr, model, grads);
    }
    let last = value(&loss_of(&model));
    assert!(last.is_finite() && last < 0.9 * first, "{arch:?}: loss {first} -> {last}");
}

/// What one training step computes: the loss, how every tensor moved under SGD with momentum
/// and weight decay (running statistics included), and the logits of the updated model in eval mode.
pub struct StepOutcome {
    /// Training loss before the step.
    pub loss: f32,
    /// Every named tensor's change over the steps (running statistics included), by name.
    pub updates: Vec<(String, Vec<f32>)>,
    /// Eval-mode logits after the step.
    pub logits: Vec<f32>,
}

/// One SGD step (momentum 0.9, weight decay 5e-4) of `arch` on a fixed batch, then an eval forward, on the autodiff CPU device.
pub fn train_step(arch: Arch, input: [usize; 3]) -> StepOutcome {
    let device = Device::flex().autodiff();
    let mut model = Model::new(&spec(arch, input, 10), 7, &device).unwrap();
    let before = named_tensors(&model);
    let images = random_images(6, input, &device);
    let labels: Vec<i64> = (0..6).map(|i| (i * 7 % 10) as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [6]), &device);
    let mut sgd = Sgd::new(SgdConfig { momentum: 0.9, weight_decay: 5e-4 });
    let loss = cross_entropy(model.forward(images.clone()), targets.clone());
    let first = loss.clone().into_scalar::<f32>();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    model = sgd.step(0.05, model, grads);
    let eval = model.valid();
    let logits = eval.forward(images.inner()).into_data().try_to_vec::<f32>().unwrap();
    let values = |data: &TensorData| data.clone().try_to_vec::<f32>().unwrap();
    let updates = before
        .iter()
        .zip(named_tensors(&model))
        .map(|(old, new)| (new.name, values(&new.data).iter().zip(values(&old.data)).map(|(n, o)| n - o).collect()))
        .collect();
    StepOutcome { loss: first, updates, logits }
}

/// `‖a − b‖ ≤ tol · ‖b‖` (Euclidean norms; an all-zero `b` needs `a` zero), naming `what`.
pub fn assert_relative_close(a: &[f32], b: &[f32], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: length");
    let norm = |v: &mut dyn Iterator<Item = f32>| v.map(|x| x as f64 * x as f64).sum::<f64>().sqrt();
    let diff = norm(&mut a.iter().zip(b).map(|(x, y)| x - y));
    let size = norm(&mut b.iter().copied());
    assert!(diff <= tol * size, "{what}: ‖Δ‖ = {diff:e}, {:e} of ‖reference‖ = {size:e}", diff / size);
}
