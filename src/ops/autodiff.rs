//! The backward steps of [`CpuKernels`] on `Autodiff<Flex>`: each forward runs the Flex kernel
//! and records one graph node whose backward calls the matching gradient kernel.

use super::{BatchNormTrain, CpuKernels, batch_norm, bn_geometry, conv2d_backward, tensor, values};
use burn::backend::Autodiff;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, TensorMetadata};

/// Backward of the convolution: input and weight gradients.
#[derive(Debug)]
struct Conv2dBackward;

impl Backward<Flex, 2> for Conv2dBackward {
    /// Checkpointed input and weight, stride, padding.
    type State = (NodeId, NodeId, usize, usize);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        register_conv_grads(ops.state, [node_x.map(|n| n.id), node_weight.map(|n| n.id)], &grad, grads, checkpointer);
    }
}

/// Computes and registers the input and weight gradients of a convolution for the nodes that
/// need them, from the checkpointed input and weight.
fn register_conv_grads(
    (x_state, weight_state, stride, pad): (NodeId, NodeId, usize, usize),
    [node_x, node_weight]: [Option<NodeId>; 2],
    grad: &FlexTensor,
    grads: &mut Gradients,
    checkpointer: &mut Checkpointer,
) {
    if node_x.is_none() && node_weight.is_none() {
        return;
    }
    let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
    let weight: FlexTensor = checkpointer.retrieve_node_output(weight_state);
    let (dx, dw) = conv2d_backward(&x, &weight, grad, stride, pad, node_x.is_some());
    if let (Some(id), Some(dx)) = (node_x, dx) {
        grads.register::<Flex>(id, dx);
    }
    if let Some(id) = node_weight {
        grads.register::<Flex>(id, dw);
    }
}

/// Backward of convolution + residual: the convolution's gradients, and the output gradient
/// itself for the residual.
#[derive(Debug)]
struct Conv2dAddBackward;

impl Backward<Flex, 3> for Conv2dAddBackward {
    /// Checkpointed input and weight, stride, padding.
    type State = (NodeId, NodeId, usize, usize);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_weight, node_residual] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        register_conv_grads(ops.state, [node_x.map(|n| n.id), node_weight.map(|n| n.id)], &grad, grads, checkpointer);
        if let Some(node) = node_residual {
            grads.register::<Flex>(node.id, grad);
        }
    }
}

/// What the batch-norm backward needs from its forward.
#[derive(Debug, Clone)]
struct BnState {
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    var: FlexTensor,
    epsilon: f64,
    relu: bool,
}

/// Backward of training-mode batch norm (+ ReLU): gradients of input, γ and β.
#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 3> for BatchNormBackward {
    type State = BnState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let g = bn_geometry(&s.x);
        let (dx, dgamma, dbeta) = batch_norm::backward_train(
            &g,
            &values(&s.x),
            &values(&grad),
            &values(&s.gamma),
            &values(&s.beta),
            &values(&s.mean),
            &values(&s.var),
            s.epsilon,
            s.relu,
        );
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, s.x.shape().to_vec()));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(dgamma, vec![g.channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(dbeta, vec![g.channels]));
        }
    }
}

/// Backward of inference-mode batch norm (+ ReLU) with respect to its input: an affine map.
#[derive(Debug)]
struct BatchNormEvalBackward;

impl Backward<Flex, 1> for BatchNormEvalBackward {
    /// Output (for the ReLU mask), γ, running variance, ε, relu.
    type State = (FlexTensor, FlexTensor, FlexTensor, f64, bool);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let Some(node) = node_x else { return };
        let (output, gamma, var, epsilon, relu) = ops.state;
        let g = bn_geometry(&output);
        // dx = dy · γ/√(var + ε) (· mask): the eval-mode forward with zero mean and shift.
        let zeros = vec![0.0f32; g.channels];
        let scaled = batch_norm::forward_eval(
            &g,
            &values(&grad),
            &values(&gamma),
            &zeros,
            &zeros,
            &values(&var),
            epsilon,
            false,
        );
        let dx = if relu {
            scaled.iter().zip(values(&output).iter()).map(|(&d, &y)| if y > 0.0 { d } else { 0.0 }).collect()
        } else {
            scaled
        };
        grads.register::<Flex>(node.id, tensor(dx, output.shape().to_vec()));
    }
}

impl<C: CheckpointStrategy> CpuKernels for Autodiff<Flex, C> {
    fn conv2d_fused(x: FloatTensor<Self>, weight: FloatTensor<Self>, stride: usize, pad: usize) -> FloatTensor<Self> {
        match Conv2dBackward.prepare::<C>([x.node(), weight.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let out = Flex::conv2d_fused(x.into_primitive(), weight.into_primitive(), stride, pad);
                prep.finish((x_state, weight_state, stride, pad), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::conv2d_fused(x.into_primitive(), weight.into_primitive(), stride, pad))
            }
        }
    }

    fn conv2d_add_fused(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        residual: FloatTensor<Self>,
        stride: usize,
        pad: usize,
    ) -> FloatTensor<Self> {
        let prep =
            Conv2dAddBackward.prepare::<C>([x.node(), weight.node(), residual.node()]).compute_bound().stateful();
        match prep {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let out = Flex::conv2d_add_fused(
                    x.into_primitive(),
                    weight.into_primitive(),
                    residual.into_primitive(),
                    stride,
                    pad,
                );
                prep.finish((x_state, weight_state, stride, pad), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::conv2d_add_fused(
                x.into_primitive(),
                weight.into_primitive(),
                residual.into_primitive(),
                stride,
                pad,
            )),
        }
    }

    fn batch_norm_relu_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> BatchNormTrain<Self> {
        let prep = BatchNormBackward.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful();
        let (x, gamma, beta) = (x.into_primitive(), gamma.into_primitive(), beta.into_primitive());
        let out = Flex::batch_norm_relu_train(x.clone(), gamma.clone(), beta.clone(), epsilon, relu);
        let output = match prep {
            OpsKind::Tracked(prep) => {
                let state = BnState { x, gamma, beta, mean: out.mean.clone(), var: out.var.clone(), epsilon, relu };
                prep.finish(state, out.output)
            }
            OpsKind::UnTracked(prep) => prep.finish(out.output),
        };
        BatchNormTrain { output, mean: Self::from_inner(out.mean), var: Self::from_inner(out.var) }
    }

    fn batch_norm_relu_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        var: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        // Only the input is differentiated: the statistics and parameters are treated as fixed.
        let prep = BatchNormEvalBackward.prepare::<C>([x.node()]).compute_bound().stateful();
        let (gamma, var) = (gamma.into_primitive(), var.into_primitive());
        let out = Flex::batch_norm_relu_eval(
            x.into_primitive(),
            gamma.clone(),
            beta.into_primitive(),
            mean.into_primitive(),
            var.clone(),
            epsilon,
            relu,
        );
        match prep {
            OpsKind::Tracked(prep) => prep.finish((out.clone(), gamma, var, epsilon, relu), out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}
