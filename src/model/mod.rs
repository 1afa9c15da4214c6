//! The networks, one file per architecture, behind one [`Model`] type the training loop uses.

pub mod init;
pub mod mlp;
pub mod params;
pub mod wide_resnet;

use crate::rng::{self, Purpose};
use burn::module::Module;
use burn::tensor::{Device, Tensor};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

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
    /// Whether MLP layers have biases (the demo's have none).
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
}

impl Model {
    /// Builds the network with weights drawn from the `Init` stream of `seed`.
    pub fn new(spec: &ModelSpec, seed: u64, device: &Device) -> anyhow::Result<Self> {
        let mut rng = rng::stream(seed, Purpose::Init, 0);
        let [channels, height, width] = spec.input;
        Ok(match spec.arch {
            Arch::WideResnet => Model::WideResnet(WideResNet::new(
                &mut rng,
                spec.wrn,
                channels,
                spec.num_classes,
                device,
            )?),
            Arch::Mlp => Model::Mlp(Mlp::new(
                &mut rng,
                channels * height * width,
                &spec.mlp_hidden,
                spec.num_classes,
                spec.mlp_bias,
                device,
            )),
        })
    }

    /// Logits `[batch, classes]` for images `[batch, channels, height, width]`.
    pub fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        match self {
            Model::WideResnet(net) => net.forward(images),
            Model::Mlp(net) => net.forward(images),
        }
    }
}
