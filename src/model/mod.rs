//! The networks, one file per architecture, behind one [`Model`] type the training loop uses.

pub mod alexnet;
pub mod batch_norm;
pub mod inception;
pub mod init;
pub mod layers;
pub mod mlp;
pub mod params;
#[cfg(test)]
mod test_support;
pub mod wide_resnet;

use crate::rng::{self, Purpose};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

pub use alexnet::AlexNet;
pub use batch_norm::BatchNormNoScale;
pub use inception::Inception;
pub use mlp::{Mlp, parse_mlp_spec};
pub use params::{NamedTensor, named_tensors, trainable_param_count};
pub use wide_resnet::{WideResNet, WrnSpec};

/// Architecture family, as `--arch` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// Wide ResNet (depth 6n+4, widen factor, dropout).
    WideResnet,
    /// Multi-layer perceptron given by `--mlp-spec`.
    Mlp,
    /// The paper's small Inception (with BatchNorm).
    Inception,
    /// The paper's small Inception without BatchNorm.
    InceptionNobn,
    /// The paper's small AlexNet (conv-pool-LRN ×2, FC 384, FC 192).
    Alexnet,
}

impl Arch {
    /// The `--arch` name, e.g. `inception-nobn`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::WideResnet => "wide-resnet",
            Arch::Mlp => "mlp",
            Arch::Inception => "inception",
            Arch::InceptionNobn => "inception-nobn",
            Arch::Alexnet => "alexnet",
        }
    }
}

/// Everything needed to build a network for a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Architecture family.
    pub arch: Arch,
    /// Wide ResNet shape (used when `arch` is `WideResnet`).
    pub wrn: WrnSpec,
    /// MLP hidden widths (used when `arch` is `Mlp`).
    pub mlp_hidden: Vec<usize>,
    /// Whether MLP layers have biases (the demo's have none, the paper's have).
    pub mlp_bias: bool,
    /// Input image shape `[channels, height, width]`.
    pub input: [usize; 3],
    /// Number of output classes.
    pub num_classes: usize,
}

/// A network of any supported architecture (one per run, so variant sizes do not matter).
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Model {
    /// A Wide ResNet.
    WideResnet(WideResNet),
    /// A multi-layer perceptron.
    Mlp(Mlp),
    /// The small Inception, with or without BatchNorm.
    Inception(Inception),
    /// The small AlexNet.
    AlexNet(AlexNet),
}

impl Model {
    /// Builds the network with weights drawn from the `Init` stream of `seed`.
    ///
    /// Layer sizes follow the input shape and class count of `spec`. Every architecture pads
    /// "SAME"-style, so any image of at least 1×1 pixel with at least one channel fits; an empty
    /// shape or zero classes is an error, not a panic.
    pub fn new(spec: &ModelSpec, seed: u64, device: &Device) -> anyhow::Result<Self> {
        let [channels, height, width] = spec.input;
        if channels == 0 || height == 0 || width == 0 {
            anyhow::bail!(
                "input images of shape {channels}x{height}x{width} (channels x height x width) are too small for --arch {}",
                spec.arch.name()
            );
        }
        if spec.num_classes == 0 {
            anyhow::bail!("--arch {} needs at least one class", spec.arch.name());
        }
        let mut rng = rng::stream(seed, Purpose::Init, 0);
        Ok(match spec.arch {
            Arch::WideResnet => {
                Model::WideResnet(WideResNet::new(&mut rng, spec.wrn, channels, spec.num_classes, device)?)
            }
            Arch::Mlp => Model::Mlp(Mlp::new(
                &mut rng,
                channels * height * width,
                &spec.mlp_hidden,
                spec.num_classes,
                spec.mlp_bias,
                device,
            )),
            Arch::Inception | Arch::InceptionNobn => Model::Inception(Inception::new(
                &mut rng,
                channels,
                spec.num_classes,
                spec.arch == Arch::Inception,
                device,
            )),
            Arch::Alexnet => Model::AlexNet(AlexNet::new(&mut rng, spec.input, spec.num_classes, device)),
        })
    }

    /// Logits `[batch, classes]` for images `[batch, channels, height, width]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Model::WideResnet(net) => net.forward(images),
            Model::Mlp(net) => net.forward(images),
            Model::Inception(net) => net.forward(images),
            Model::AlexNet(net) => net.forward(images),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::model::params::named_tensors;

    const ALL: [Arch; 5] = [Arch::WideResnet, Arch::Mlp, Arch::Inception, Arch::InceptionNobn, Arch::Alexnet];

    #[test]
    fn arch_names_match_the_command_line() {
        for arch in ALL {
            let value = arch.to_possible_value().expect("every arch has a name");
            assert_eq!(value.get_name(), arch.name());
            let json = serde_json::to_string(&arch).unwrap();
            assert_eq!(json, format!("\"{}\"", arch.name()));
        }
    }

    #[test]
    fn same_seed_same_weights() {
        for arch in [Arch::Inception, Arch::Alexnet, Arch::Mlp] {
            let device = Device::flex();
            let weights = |seed| {
                let model = Model::new(&spec(arch, [3, 8, 8], 10), seed, &device).unwrap();
                named_tensors(&model).into_iter().map(|t| t.data.try_to_vec::<f32>().unwrap()).collect::<Vec<_>>()
            };
            assert_eq!(weights(3), weights(3), "{arch:?}");
            assert_ne!(weights(3), weights(4), "{arch:?}");
        }
    }

    #[test]
    fn empty_input_is_an_error_not_a_panic() {
        for arch in ALL {
            for input in [[0, 28, 28], [3, 0, 28], [3, 28, 0]] {
                let err = Model::new(&spec(arch, input, 10), 0, &Device::flex()).unwrap_err();
                let message = err.to_string();
                assert!(message.contains("too small") && !message.contains('\n'), "{message}");
            }
            assert!(Model::new(&spec(arch, [3, 28, 28], 0), 0, &Device::flex()).is_err());
        }
    }

    /// The models off the CPU backend (a GPU) compute with burn's own operations instead of the
    /// fused kernels. Forcing that path here, every model's loss, one SGD step's change of every
    /// tensor (running statistics included) and the eval logits after it match the fused path:
    /// ‖Δ_fused − Δ_reference‖ ≤ tol·‖Δ_reference‖ per tensor.
    /// (Measured: within 4e-5 for every model and tensor.)
    #[test]
    fn reference_ops_path_matches_fused_kernels() {
        for arch in ALL {
            for input in [[3, 32, 32], [1, 28, 28]] {
                let fused = train_step(arch, input);
                let reference = crate::ops::with_reference_ops(|| train_step(arch, input));
                let what = format!("{arch:?} on {input:?}");
                assert_relative_close(&[fused.loss], &[reference.loss], 1e-5, &format!("{what}: loss"));
                assert_eq!(fused.updates.len(), reference.updates.len());
                for ((name, f), (_, r)) in fused.updates.iter().zip(&reference.updates) {
                    assert_relative_close(f, r, 1e-4, &format!("{what}: change of {name}"));
                }
                assert_relative_close(&fused.logits, &reference.logits, 1e-4, &format!("{what}: eval logits"));
            }
        }
    }

    #[test]
    fn tiny_inputs_work() {
        for arch in ALL {
            for input in [[3, 1, 1], [1, 2, 3], [2, 5, 4]] {
                let model = Model::new(&spec(arch, input, 10), 0, &Device::flex()).unwrap();
                let [c, h, w] = input;
                let logits = model.forward(random_images(2, [c, h, w], &Device::flex()));
                assert_eq!(logits.dims(), [2, 10], "{arch:?} {input:?}");
            }
        }
    }
}
