//! Multi-layer perceptron, as in the reference demo's `model_mlp.py` (no biases by default).

use super::init::linear_glorot;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use rand_chacha::ChaCha8Rng;

/// Hidden layer widths parsed from a spec such as `512` or `512x128x512`.
pub fn parse_mlp_spec(spec: &str) -> anyhow::Result<Vec<usize>> {
    let widths: Option<Vec<usize>> =
        spec.split('x').map(|part| part.trim().parse::<usize>().ok().filter(|&w| w > 0)).collect();
    match widths {
        Some(widths) if !widths.is_empty() => Ok(widths),
        _ => anyhow::bail!(
            "--mlp-spec {spec:?} is not a list of positive hidden widths joined by 'x' (e.g. 512 or 512x128x512)"
        ),
    }
}

/// Fully connected ReLU network on flattened images.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// Builds `inputs → hidden… → num_classes` with the demo's initialisation drawn from `rng`.
    pub fn new(
        rng: &mut ChaCha8Rng,
        inputs: usize,
        hidden: &[usize],
        num_classes: usize,
        bias: bool,
        device: &Device,
    ) -> Self {
        let mut widths = vec![inputs];
        widths.extend_from_slice(hidden);
        widths.push(num_classes);
        let layers = widths.windows(2).map(|w| linear_glorot(rng, w[0], w[1], bias, device)).collect();
        Self { layers }
    }

    /// Logits for a batch of images `[batch, channels, height, width]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x: Tensor<2> = images.flatten(1, 3);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = relu(x);
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::*;
    use crate::model::{Arch, Model, trainable_param_count};

    #[test]
    fn parses_specs() {
        assert_eq!(parse_mlp_spec("512").unwrap(), vec![512]);
        assert_eq!(parse_mlp_spec("512x128x512").unwrap(), vec![512, 128, 512]);
        for bad in ["", "x", "512x", "abc", "0", "512x-1"] {
            let err = parse_mlp_spec(bad).unwrap_err().to_string();
            assert!(err.contains("--mlp-spec"), "{bad}: {err}");
        }
    }

    #[test]
    fn paper_parameter_counts_with_biases() {
        let mlp = |hidden: &str, bias: bool| {
            let mut spec = spec(Arch::Mlp, [3, 28, 28], 10);
            spec.mlp_hidden = parse_mlp_spec(hidden).unwrap();
            spec.mlp_bias = bias;
            trainable_param_count(&Model::new(&spec, 0, &Device::flex()).unwrap())
        };
        assert_eq!(mlp("512", true), 1_209_866);
        assert_eq!(mlp("512x512x512", true), 1_735_178);
        assert_eq!(mlp("512", false), 1_209_866 - 512 - 10);
    }

    #[test]
    fn forward_shapes_for_every_input() {
        check_forward_shapes(Arch::Mlp);
    }

    #[test]
    fn gradients_reach_every_parameter_and_loss_falls() {
        check_training(Arch::Mlp, [3, 28, 28], 0.01);
    }
}
