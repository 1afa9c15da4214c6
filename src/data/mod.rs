//! Datasets: file formats, download, label corruption and batching.

pub mod batch;
pub mod cifar;
pub mod corrupt;
pub mod download;
pub mod idx;
pub mod image_set;
pub mod mnist_like;
pub mod numpy_rng;
pub mod prefetch;
pub mod prepared;
pub mod randomize;
pub mod source;
pub mod synthetic;
