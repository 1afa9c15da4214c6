//! Each fused kernel against burn's reference operations, forward and backward, through the
//! public tensor functions (so the dispatch and autodiff registration are covered too).

use super::{batch_norm_eval, batch_norm_train, conv2d, conv2d_add};
use burn::tensor::activation::relu;
use burn::tensor::module::{batch_norm, batch_norm_train as burn_batch_norm_train, conv2d as burn_conv2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Distribution, Tensor, TensorData, Tolerance};

fn device() -> Device {
    Device::flex().autodiff()
}

fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<D> {
    let device = device();
    device.seed(seed);
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device)
}

fn assert_close<const D: usize>(got: Tensor<D>, want: Tensor<D>, what: &str) {
    let (got, want) = (got.into_data(), want.into_data());
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let scale = want.iter::<f32>().fold(1.0f32, |m, v| m.max(v.abs()));
    let got = TensorData::new(got.iter::<f32>().map(|v| v / scale).collect::<Vec<_>>(), got.shape().clone());
    let want = TensorData::new(want.iter::<f32>().map(|v| v / scale).collect::<Vec<_>>(), want.shape().clone());
    got.assert_approx_eq::<f32>(&want, Tolerance::absolute(1e-4));
    let _ = what;
}

#[test]
fn conv2d_matches_burn_forward_and_backward() {
    // (batch, in, size, out, kernel, stride, pad): WRN's 3×3 s1/s2 convs and 1×1 s2 shortcut,
    // on shapes that take each kernel path (row, by-channel, direct weight gradient, GEMM).
    for (i, &(n, c, size, o, k, stride, pad)) in [
        (2, 3, 8, 4, 3, 1, 1),
        (2, 8, 16, 8, 3, 1, 1),
        (2, 16, 16, 16, 3, 1, 1),
        (2, 16, 8, 32, 3, 1, 1),
        (2, 16, 8, 32, 3, 2, 1),
        (3, 4, 9, 5, 3, 2, 1),
        (2, 4, 8, 6, 1, 2, 0),
        (2, 5, 6, 3, 1, 1, 0),
        (1, 2, 7, 2, 5, 1, 2),
    ]
    .iter()
    .enumerate()
    {
        let seed = 10 * i as u64;
        let x = random([n, c, size, size], seed).require_grad();
        let w = random([o, c, k, k], seed + 1).require_grad();
        let probe = random([n, o, (size + 2 * pad - k) / stride + 1, (size + 2 * pad - k) / stride + 1], seed + 2);
        let options = ConvOptions::new([stride, stride], [pad, pad], [1, 1], 1);
        let ours = conv2d(x.clone(), w.clone(), stride, pad);
        let reference = burn_conv2d(x.clone(), w.clone(), None, options);
        assert_close(ours.clone(), reference.clone(), "conv forward");
        let g_ours = (ours * probe.clone()).sum().backward();
        let g_ref = (reference * probe).sum().backward();
        assert_close(x.grad(&g_ours).unwrap(), x.grad(&g_ref).unwrap(), "conv dx");
        assert_close(w.grad(&g_ours).unwrap(), w.grad(&g_ref).unwrap(), "conv dw");
    }
}

#[test]
fn batch_norm_relu_matches_burn_forward_and_backward() {
    for (relu_on, shape) in [(true, [4, 3, 5, 5]), (false, [3, 2, 4, 6])] {
        let x = random(shape, 1).mul_scalar(2.0).add_scalar(0.5).require_grad();
        let gamma = random([shape[1]], 2).add_scalar(1.5).require_grad();
        let beta = random([shape[1]], 3).require_grad();
        let probe = random(shape, 4);
        let eps = 1e-3;
        let (ours, mean, var) = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps, relu_on);
        let r = burn_batch_norm_train(x.clone(), gamma.clone(), beta.clone(), eps);
        let reference = if relu_on { relu(r.output) } else { r.output };
        assert_close(ours.clone(), reference.clone(), "bn forward");
        assert_close(mean, r.mean, "bn mean");
        assert_close(var.clone(), r.variance.clone(), "bn var");
        let g_ours = (ours * probe.clone()).sum().backward();
        let g_ref = (reference * probe.clone()).sum().backward();
        assert_close(x.grad(&g_ours).unwrap(), x.grad(&g_ref).unwrap(), "bn dx");
        assert_close(gamma.grad(&g_ours).unwrap(), gamma.grad(&g_ref).unwrap(), "bn dgamma");
        assert_close(beta.grad(&g_ours).unwrap(), beta.grad(&g_ref).unwrap(), "bn dbeta");

        // Inference mode, on the plain device and (for the input gradient) on autodiff.
        let running_mean = random([shape[1]], 5);
        let running_var = random([shape[1]], 6).abs().add_scalar(0.5);
        let params = |inner: bool| {
            let t = |t: Tensor<1>| if inner { t.inner() } else { t.detach() };
            (t(gamma.clone()), t(beta.clone()), t(running_mean.clone()), t(running_var.clone()))
        };
        let eval = |x: Tensor<4>, inner: bool| {
            let (g, b, m, v) = params(inner);
            batch_norm_eval(x, g, b, m, v, eps, relu_on)
        };
        let eval_ref = |x: Tensor<4>, inner: bool| {
            let (g, b, m, v) = params(inner);
            let y = batch_norm(x, g, b, m, v, eps);
            if relu_on { relu(y) } else { y }
        };
        assert_close(eval(x.clone().inner(), true), eval_ref(x.clone().inner(), true), "bn eval forward");
        let g_ours = (eval(x.clone(), false) * probe.clone()).sum().backward();
        let g_ref = (eval_ref(x.clone(), false) * probe).sum().backward();
        assert_close(x.grad(&g_ours).unwrap(), x.grad(&g_ref).unwrap(), "bn eval dx");
    }
}

#[test]
fn conv2d_add_matches_burn_conv_plus_residual() {
    for (i, &(n, c, size, o)) in [(2, 8, 16, 16), (2, 3, 7, 4)].iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let x = random([n, c, size, size], seed).require_grad();
        let w = random([o, c, 3, 3], seed + 1).require_grad();
        let residual = random([n, o, size, size], seed + 2).require_grad();
        let probe = random([n, o, size, size], seed + 3);
        let ours = conv2d_add(x.clone(), w.clone(), residual.clone(), 1, 1);
        let reference =
            burn_conv2d(x.clone(), w.clone(), None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1)) + residual.clone();
        assert_close(ours.clone(), reference.clone(), "conv+add forward");
        let g_ours = (ours * probe.clone()).sum().backward();
        let g_ref = (reference * probe).sum().backward();
        assert_close(x.grad(&g_ours).unwrap(), x.grad(&g_ref).unwrap(), "conv+add dx");
        assert_close(w.grad(&g_ours).unwrap(), w.grad(&g_ref).unwrap(), "conv+add dw");
        assert_close(residual.grad(&g_ours).unwrap(), residual.grad(&g_ref).unwrap(), "conv+add dresidual");
    }
}

#[test]
fn fused_kernels_run_on_the_cpu_backend_only() {
    assert!(super::fused_on(&Device::flex()) && super::fused_on(&device()));
    super::with_reference_ops(|| assert!(!super::fused_on(&device())));
    assert!(super::fused_on(&device()), "the override ends with its closure");
}

#[test]
fn sgd_reference_matches_fused_update() {
    let device = Device::flex();
    let w = Tensor::<2>::random([7, 5], Distribution::Normal(0.0, 1.0), &device);
    let g = Tensor::<2>::random([7, 5], Distribution::Normal(0.0, 1.0), &device);
    let v = Tensor::<1>::random([35], Distribution::Normal(0.0, 1.0), &device);
    let step = || super::sgd::sgd_update(w.clone(), g.clone(), v.clone(), 0.1, 0.9, 5e-4);
    let (fw, fv) = step();
    let (rw, rv) = super::with_reference_ops(step);
    fw.into_data().assert_approx_eq::<f32>(&rw.into_data(), Tolerance::absolute(1e-6));
    assert_eq!(rv.dims(), [35]);
    fv.into_data().assert_approx_eq::<f32>(&rv.into_data(), Tolerance::absolute(1e-6));
}

/// A channel whose mean is hundreds of times its spread (as after a ReLU and a 1×1
/// convolution): the reference path's two-pass variance keeps the fused kernel's accuracy. (burn's
/// own `batch_norm_train` on the CPU backend does not: with it, the Inception's gradients on the
/// reference path were 1–2% off the fused kernels'.)
#[test]
fn reference_batch_norm_keeps_its_digits_when_the_mean_dwarfs_the_spread() {
    for (shape, shift, spread) in [([6, 16, 8, 8], 3.0, 0.01), ([6, 176, 8, 8], 5.0, 0.1), ([4, 3, 5, 5], 0.0, 1.0)] {
        let x = random(shape, 1).mul_scalar(spread).add_scalar(shift).require_grad();
        let gamma = random([shape[1]], 2).add_scalar(1.5).require_grad();
        let beta = random([shape[1]], 3).require_grad();
        let probe = random(shape, 4);
        let (ours, mean, var) = batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-3, true);
        let (reference, r_mean, r_var) =
            super::reference::batch_norm_train(x.clone(), gamma.clone(), beta.clone(), 1e-3, true);
        assert_close(ours.clone(), reference.clone(), "bn forward");
        assert_close(mean, r_mean, "bn mean");
        assert_close(var, r_var, "bn var");
        let g_ours = (ours * probe.clone()).sum().backward();
        let g_ref = (reference * probe).sum().backward();
        assert_close(x.grad(&g_ours).unwrap(), x.grad(&g_ref).unwrap(), "dx");
        assert_close(gamma.grad(&g_ours).unwrap(), gamma.grad(&g_ref).unwrap(), "dgamma");
        assert_close(beta.grad(&g_ours).unwrap(), beta.grad(&g_ref).unwrap(), "dbeta");
    }
}
