//! rethink: the randomization tests of Zhang et al., "Understanding deep learning requires
//! rethinking generalization" (ICLR 2017) — train over-parameterized networks on data whose
//! labels or pixels are randomized and watch them memorize.
//!
//! Data flow one way: [`data`] (formats, corruption, batching) → [`model`] (architectures) →
//! [`train`] (loop, optimizer, metrics, checkpoints). [`kernel`] solves the paper's kernel
//! interpolation exactly (section 5). [`cli`] maps flags onto typed settings. [`ops`] holds the
//! fast CPU kernels (convolution, fused batch norm + ReLU) the models call through burn.

pub mod atomic;
pub mod cli;
pub mod commands;
pub mod data;
pub mod device;
pub mod kernel;
pub mod model;
pub mod npy;
pub mod ops;
pub mod report;
pub mod rng;
pub mod sweep;
pub mod train;
