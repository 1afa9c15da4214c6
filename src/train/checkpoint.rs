//! Checkpoints: model, optimizer state, epoch and RNG state in one safetensors file.
//!
//! Tensors are stored as f32 under `model.<path>` and `velocity.<path>`; the safetensors
//! metadata holds the format tag, the next epoch, the settings the run must resume with and the
//! metrics history. The generators' state at an epoch boundary is (seed, epoch) — see
//! [`crate::rng`] — so storing the epoch and the seed restores every random stream exactly.

use crate::atomic::write_atomic;
use anyhow::{Context, Result, bail};
use burn::tensor::{DType, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Value of the `format` metadata key.
const FORMAT: &str = "rethink-checkpoint-1";
const MODEL: &str = "model.";
const VELOCITY: &str = "velocity.";

/// Everything needed to continue a run after its last completed epoch.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The epoch the resumed run starts with.
    pub next_epoch: usize,
    /// Model tensors (parameters and running statistics) by path.
    pub model: BTreeMap<String, TensorData>,
    /// Flattened momentum buffers by parameter path.
    pub velocity: BTreeMap<String, TensorData>,
    /// JSON metadata entries (settings, history, extra run state), by key.
    pub meta: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Stores `value` as JSON under `key` in the metadata.
    pub fn put<T: Serialize>(&mut self, key: &str, value: &T) {
        let json = serde_json::to_string(value).expect("checkpoint metadata serialises");
        self.meta.insert(key.to_string(), json);
    }

    /// Reads the JSON metadata entry `key`.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let json = self.meta.get(key).with_context(|| format!("metadata {key:?} is missing"))?;
        serde_json::from_str(json).with_context(|| format!("metadata {key:?} is malformed"))
    }

    /// Writes the checkpoint atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (prefix, tensors) in [(MODEL, &self.model), (VELOCITY, &self.velocity)] {
            for (name, data) in tensors {
                let data = data.clone().convert::<f32>();
                let shape = data.shape().to_vec();
                buffers.push((format!("{prefix}{name}"), shape, data.as_bytes().to_vec()));
            }
        }
        let views = buffers.iter().map(|(name, shape, bytes)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes).expect("tensor bytes match their shape");
            (name.clone(), view)
        });
        let mut meta: HashMap<String, String> = self.meta.clone().into_iter().collect();
        meta.insert("format".into(), FORMAT.into());
        meta.insert("next_epoch".into(), self.next_epoch.to_string());
        let bytes = safetensors::serialize(views, Some(meta))
            .with_context(|| format!("cannot serialise checkpoint {}", path.display()))?;
        write_atomic(path, &bytes)
    }

    /// Reads a checkpoint, refusing (with the file's name) anything that is not a complete
    /// rethink checkpoint.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
        Self::parse(&bytes).with_context(|| format!("corrupt checkpoint {}", path.display()))
    }

    fn parse(bytes: &[u8]) -> Result<Self> {
        let (_, header) = SafeTensors::read_metadata(bytes).context("not a safetensors file")?;
        let mut meta: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
        if meta.remove("format").as_deref() != Some(FORMAT) {
            bail!("not a {FORMAT} file");
        }
        let next_epoch = meta
            .remove("next_epoch")
            .and_then(|e| e.parse().ok())
            .context("metadata next_epoch is missing or malformed")?;
        let file = SafeTensors::deserialize(bytes).context("tensor data is truncated or malformed")?;
        let mut model = BTreeMap::new();
        let mut velocity = BTreeMap::new();
        for (name, view) in file.tensors() {
            if view.dtype() != Dtype::F32 {
                bail!("tensor {name:?} is {:?}, expected F32", view.dtype());
            }
            let data = TensorData::from_bytes_vec(view.data().to_vec(), view.shape().to_vec(), DType::F32);
            if let Some(rest) = name.strip_prefix(MODEL) {
                model.insert(rest.to_string(), data);
            } else if let Some(rest) = name.strip_prefix(VELOCITY) {
                velocity.insert(rest.to_string(), data);
            } else {
                bail!("unexpected tensor {name:?}");
            }
        }
        Ok(Self { next_epoch, model, velocity, meta })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        let mut ckpt = Checkpoint {
            next_epoch: 3,
            model: BTreeMap::from([("fc.weight".to_string(), TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]))]),
            velocity: BTreeMap::from([("fc.weight".to_string(), TensorData::new(vec![0.5f32; 4], [4]))]),
            meta: BTreeMap::new(),
        };
        ckpt.put("history", &vec![1.5f64, 2.5]);
        ckpt
    }

    #[test]
    fn round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        sample().save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!(back.next_epoch, 3);
        assert_eq!(back.model["fc.weight"].try_to_vec::<f32>().unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(back.velocity["fc.weight"].shape().to_vec(), vec![4]);
        assert_eq!(back.get::<Vec<f64>>("history").unwrap(), vec![1.5, 2.5]);
    }

    #[test]
    fn metadata_floats_round_trip_exactly() {
        // Values whose shortest decimal form serde_json's default (fast, inexact) parser reads
        // back one ulp off: seen as resumed metrics.csv files differing in the last digit.
        let values = vec![28.733905579399142f64, 2.1418980267030974, 0.1 + 0.2, 1e-300, 123456.78901234567];
        let mut ckpt = sample();
        ckpt.put("values", &values);
        let back: Vec<f64> = ckpt.get("values").unwrap();
        for (a, b) in values.iter().zip(&back) {
            assert_eq!(a.to_bits(), b.to_bits(), "{a} came back as {b}");
        }
    }

    #[test]
    fn refuses_truncated_and_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.safetensors");
        sample().save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let err = format!("{:#}", Checkpoint::load(&path).unwrap_err());
        assert!(err.contains("corrupt checkpoint") && err.contains("c.safetensors"), "{err}");
        std::fs::write(&path, b"hello").unwrap();
        assert!(Checkpoint::load(&path).is_err());
    }
}
