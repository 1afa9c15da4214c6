//! How runs are named in figures and tables: the paper's model names ("MLP 3x512",
//! "Inception w/o BatchNorm", …), the randomization tests ("true labels", "random labels",
//! "shuffled pixels", …), and the settings that tell otherwise identically named runs apart.

use crate::data::randomize::Randomization;
use crate::model::Arch;
use crate::train::config::TrainConfig;
use crate::train::run_dir::python_g;
use serde_json::Value;
use std::collections::BTreeMap;

/// The paper's name of a run's network, e.g. `Inception`, `MLP 3x512`, `WRN-28-1`.
pub fn model_name(config: &TrainConfig) -> String {
    match config.arch {
        Arch::Inception => "Inception".into(),
        Arch::InceptionNobn => "Inception w/o BatchNorm".into(),
        Arch::Alexnet => "AlexNet".into(),
        Arch::WideResnet => {
            let mut name = format!("WRN-{}-{}", config.wrn_depth, config.wrn_widen_factor);
            if config.wrn_droprate > 0.0 {
                name.push_str(&format!(" (dropout {})", python_g(config.wrn_droprate)));
            }
            name
        }
        Arch::Mlp => mlp_name(&config.mlp_spec),
    }
}

/// `MLP {layers}x{width}` when every hidden layer has the same width, else `MLP {spec}`.
fn mlp_name(spec: &str) -> String {
    let widths: Vec<&str> = spec.split('x').map(str::trim).collect();
    let uniform = widths.iter().all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit()))
        && widths.windows(2).all(|w| w[0] == w[1]);
    if uniform && !widths.is_empty() { format!("MLP {}x{}", widths.len(), widths[0]) } else { format!("MLP {spec}") }
}

/// Sort rank of a model in the paper's Table 1 order (Inception, Inception w/o BatchNorm,
/// AlexNet, MLP 3x512, MLP 1x512, then the rest).
pub fn model_rank(config: &TrainConfig) -> (usize, usize) {
    match config.arch {
        Arch::Inception => (0, 0),
        Arch::InceptionNobn => (1, 0),
        Arch::Alexnet => (2, 0),
        Arch::Mlp => {
            let layers = config.mlp_spec.split('x').count();
            (3, usize::MAX - layers)
        }
        Arch::WideResnet => (4, config.wrn_depth * 1000 + config.wrn_widen_factor),
    }
}

/// Whether a run's labels are the true ones, partially corrupted, or random (images untouched).
pub fn is_label_test(config: &TrainConfig) -> bool {
    matches!(config.randomize, Randomization::None | Randomization::Labels)
}

/// The randomization test as the paper's legend names it: `true labels`, `random labels`,
/// `corrupted labels (p=0.5)`, `shuffled pixels`, `random pixels`, `Gaussian`.
pub fn randomization_label(config: &TrainConfig) -> String {
    let p = config.label_corrupt_prob;
    let images = match config.randomize {
        Randomization::None | Randomization::Labels => None,
        Randomization::ShuffledPixels => Some("shuffled pixels"),
        Randomization::RandomPixels => Some("random pixels"),
        Randomization::Gaussian => Some("Gaussian"),
    };
    let labels = if p >= 1.0 {
        Some("random labels".to_string())
    } else if p > 0.0 {
        Some(format!("corrupted labels (p={})", python_g(p)))
    } else {
        None
    };
    match (images, labels) {
        (Some(i), Some(l)) => format!("{i} + {l}"),
        (Some(i), None) => i.into(),
        (None, Some(l)) => l,
        (None, None) => "true labels".into(),
    }
}

/// Order of the randomization tests in the paper's Figure 1a legend.
pub fn randomization_rank(config: &TrainConfig) -> usize {
    match config.randomize {
        Randomization::None => 0,
        Randomization::Labels => 1,
        Randomization::ShuffledPixels => 2,
        Randomization::RandomPixels => 3,
        Randomization::Gaussian => 4,
    }
}

/// Settings that say nothing about a run's numbers (where it ran, how long it was asked to
/// run): never used to tell runs apart.
pub const BOOKKEEPING: &[&str] = &["data_dir", "name", "backend", "device", "epochs", "stop_at_train_acc"];

/// The model's own settings: already in [`model_name`].
pub const MODEL_KEYS: &[&str] = &["arch", "wrn_depth", "wrn_widen_factor", "wrn_droprate", "mlp_spec"];

/// The settings of a randomization test: what a figure puts on its axis or legend.
pub const RANDOMIZATION_KEYS: &[&str] = &["randomize", "label_corrupt_prob", "corrupt_seed"];

/// A run's settings as JSON with the `ignored` keys removed: runs with equal keys differ
/// only in those settings.
pub fn settings_key(config: &TrainConfig, ignored: &[&[&str]]) -> String {
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        for key in ignored.iter().flat_map(|k| k.iter()) {
            map.remove(*key);
        }
    }
    value.to_string()
}

/// Suffixes telling apart runs that share a base label: for each item, the settings (other
/// than `ignored`) whose values differ among the items with the same base label, written
/// ` (learning_rate=0.01, seed=2)`; empty when the base label is already unique.
pub fn distinguishing_suffixes(items: &[(String, &TrainConfig)], ignored: &[&[&str]]) -> Vec<String> {
    let flat = |config: &TrainConfig| -> BTreeMap<String, String> {
        let value = serde_json::to_value(config).unwrap_or(Value::Null);
        let mut map = BTreeMap::new();
        if let Value::Object(obj) = value {
            for (k, v) in obj {
                if !ignored.iter().any(|keys| keys.contains(&k.as_str())) {
                    let text = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    map.insert(k, text);
                }
            }
        }
        map
    };
    let settings: Vec<BTreeMap<String, String>> = items.iter().map(|(_, c)| flat(c)).collect();
    items
        .iter()
        .enumerate()
        .map(|(i, (label, _))| {
            let peers: Vec<usize> = (0..items.len()).filter(|&j| items[j].0 == *label).collect();
            if peers.len() < 2 {
                return String::new();
            }
            let differing: Vec<String> = settings[i]
                .iter()
                .filter(|(k, v)| peers.iter().any(|&j| settings[j].get(*k) != Some(*v)))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            if differing.is_empty() { String::new() } else { format!(" ({})", differing.join(", ")) }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::TrainArgs;

    fn config(args: &[&str]) -> TrainConfig {
        let argv: Vec<&str> = ["--data", "synthetic"].iter().chain(args).copied().collect();
        TrainArgs::parse_args(&argv).into_config().0
    }

    #[test]
    fn names_models_like_the_paper() {
        assert_eq!(model_name(&config(&["--arch", "inception"])), "Inception");
        assert_eq!(model_name(&config(&["--arch", "inception-nobn"])), "Inception w/o BatchNorm");
        assert_eq!(model_name(&config(&["--arch", "alexnet"])), "AlexNet");
        assert_eq!(model_name(&config(&["--arch", "mlp"])), "MLP 1x512");
        assert_eq!(model_name(&config(&["--arch", "mlp", "--mlp-spec", "512x512x512"])), "MLP 3x512");
        assert_eq!(model_name(&config(&["--arch", "mlp", "--mlp-spec", "512x128"])), "MLP 512x128");
        assert_eq!(model_name(&config(&[])), "WRN-28-1");
        assert_eq!(
            model_name(&config(&["--wrn-depth", "16", "--wrn-widen-factor", "4", "--wrn-droprate", "0.3"])),
            "WRN-16-4 (dropout 0.3)"
        );
        let mlp3 = config(&["--arch", "mlp", "--mlp-spec", "512x512x512"]);
        assert!(model_rank(&config(&["--arch", "alexnet"])) < model_rank(&mlp3));
        assert!(model_rank(&mlp3) < model_rank(&config(&["--arch", "mlp"])));
    }

    #[test]
    fn names_randomizations_like_the_paper() {
        assert_eq!(randomization_label(&config(&[])), "true labels");
        assert_eq!(randomization_label(&config(&["--label-corrupt-prob", "1"])), "random labels");
        assert_eq!(randomization_label(&config(&["--label-corrupt-prob", "0.2"])), "corrupted labels (p=0.2)");
        assert_eq!(randomization_label(&config(&["--randomize", "shuffled-pixels"])), "shuffled pixels");
        assert_eq!(randomization_label(&config(&["--randomize", "gaussian"])), "Gaussian");
    }

    #[test]
    fn suffixes_name_only_the_differing_settings() {
        let a = config(&["--learning-rate", "0.01"]);
        let b = config(&["--learning-rate", "0.1", "--epochs", "9"]);
        let c = config(&["--arch", "mlp"]);
        let items = vec![("WRN".to_string(), &a), ("WRN".to_string(), &b), ("MLP".to_string(), &c)];
        let suffixes = distinguishing_suffixes(&items, &[BOOKKEEPING]);
        assert_eq!(suffixes, vec![" (learning_rate=0.01)", " (learning_rate=0.1)", ""]);
        assert_eq!(
            settings_key(&a, &[BOOKKEEPING, &["learning_rate"]]),
            settings_key(&b, &[BOOKKEEPING, &["learning_rate"]])
        );
        assert_ne!(settings_key(&a, &[BOOKKEEPING]), settings_key(&b, &[BOOKKEEPING]));
    }
}
