//! `config.json` and the checkpoint resume key stay what earlier versions wrote: the fixtures in
//! `tests/fixtures/train_config/` are the `config.json` files `rethink train` wrote for the command
//! lines below before the flags and the saved settings became one struct.

use rethink::cli::{Cli, Command, TrainArgs};
use rethink::train::config::TrainConfig;
use rethink::train::run_dir::experiment_name;
use serde::Serialize;

/// Flags shared by every fixture's command line (`--out`, `--run-name` and `--no-progress` left out:
/// they are not settings).
const COMMON: [&str; 10] =
    ["--data", "synthetic", "--synthetic-train", "64", "--synthetic-test", "32", "--batch-size", "32", "--epochs", "1"];

/// Each fixture and the flags, beyond [`COMMON`], that produced it.
const CASES: [(&str, &[&str]); 3] = [
    ("defaults", &["--wrn-depth", "10"]),
    (
        "mlp_noise",
        &[
            "--arch",
            "mlp",
            "--mlp-spec",
            "64x32",
            "--mlp-bias",
            "--label-corrupt-prob",
            "0.5",
            "--corrupt-seed",
            "7",
            "--data-augmentation",
            "--no-eval-full-trainset",
            "--lr-schedule",
            "exp",
            "--lr-decay",
            "0.9",
            "--stop-at-train-acc",
            "99.5",
            "--train-size",
            "48",
            "--val-size",
            "16",
            "--seed",
            "3",
            "--name",
            "foo",
            "--preprocess",
            "paper",
            "--learning-rate",
            "0.05",
            "--momentum",
            "0.5",
            "--weight-decay",
            "0",
        ],
    ),
    (
        "pixels",
        &[
            "--arch",
            "mlp",
            "--mlp-spec",
            "32",
            "--randomize",
            "shuffled-pixels",
            "--split-test-set",
            "20",
            "--val-labels",
            "corrupted",
            "--data-augmentation",
            "--no-data-augmentation",
            "--no-eval-full-trainset",
            "--eval-full-trainset",
            "--num-classes",
            "5",
            "--wrn-widen-factor",
            "2",
            "--wrn-droprate",
            "0.3",
        ],
    ),
];

/// The layout of `config.json` (as `RunDir::write_config` writes it).
#[derive(Serialize)]
struct Saved<'a> {
    version: &'a str,
    experiment: &'a str,
    config: &'a TrainConfig,
}

fn config(extra: &[&str]) -> TrainConfig {
    let args: Vec<&str> = COMMON.iter().chain(extra).copied().collect();
    TrainArgs::parse_args(&args).into_config().0
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/train_config/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn config_json_is_byte_identical_to_the_one_written_before() {
    for (name, extra) in CASES {
        let expected = fixture(name);
        let old: serde_json::Value = serde_json::from_str(&expected).unwrap();
        let config = config(extra);
        let experiment = experiment_name(&config);
        assert_eq!(experiment, old["experiment"].as_str().unwrap(), "{name}: experiment name");
        let saved = Saved { version: old["version"].as_str().unwrap(), experiment: &experiment, config: &config };
        // The one deliberate change since: `--backend flex` became `--device cpu` (issue 13).
        let expected = expected.replace("\"backend\": \"flex\"", "\"device\": \"cpu\"");
        assert_eq!(serde_json::to_string_pretty(&saved).unwrap(), expected, "{name}: config.json");
    }
}

#[test]
fn old_configs_load_and_keep_their_resume_key() {
    for (name, extra) in CASES {
        let old: serde_json::Value = serde_json::from_str(&fixture(name)).unwrap();
        let loaded: TrainConfig = serde_json::from_value(old["config"].clone()).unwrap();
        let parsed = config(extra);
        assert_eq!(loaded, parsed, "{name}");
        // A checkpoint's saved key (the old config less epochs, data_dir and the device, which a
        // resume may change) still matches.
        let mut key = old["config"].clone();
        for free in ["epochs", "data_dir", "backend"] {
            key.as_object_mut().unwrap().remove(free);
        }
        assert_eq!(parsed.resume_key(), key, "{name}: resume key");
        assert_eq!(TrainConfig::without_resume_free(old["config"].clone()), key, "{name}: saved key");
    }
}

#[test]
fn run_options_and_switch_pairs_parse_as_before() {
    let (config, run) = TrainArgs::parse_args(&[]).into_config();
    assert!(!config.data_augmentation && config.eval_full_trainset && run.progress && !run.resume);
    assert_eq!((run.out.to_str(), run.run_name, run.download.enabled), (Some("runs"), None, false));

    let flags = [
        "--out",
        "o",
        "--resume",
        "--run-name",
        "r",
        "--download",
        "--download-url",
        "http://x",
        "--download-md5",
        "abc",
        "--no-progress",
    ];
    let run = TrainArgs::parse_args(&flags).run;
    assert_eq!(run.out.to_str(), Some("o"));
    assert!(run.resume && !run.progress && run.download.enabled);
    assert_eq!(run.run_name.as_deref(), Some("r"));
    assert_eq!((run.download.url.as_deref(), run.download.md5.as_deref()), (Some("http://x"), Some("abc")));

    let last_wins = |args: &[&str]| TrainArgs::parse_args(args).into_config().0;
    assert!(last_wins(&["--no-data-augmentation", "--data-augmentation"]).data_augmentation);
    assert!(!last_wins(&["--data-augmentation", "--no-data-augmentation"]).data_augmentation);
    assert!(last_wins(&["--no-eval-full-trainset", "--eval-full-trainset"]).eval_full_trainset);
    assert!(!last_wins(&["--eval-full-trainset", "--no-eval-full-trainset"]).eval_full_trainset);
}

#[test]
fn labels_takes_the_data_flags_of_train() {
    let data = ["--data", "cifar100", "--label-corrupt-prob", "0.3", "--seed", "5", "--train-size", "9", "--download"];
    let argv = ["rethink", "labels", "--out", "l.csv"].into_iter().chain(data);
    let Command::Labels(labels) = <Cli as clap::Parser>::parse_from(argv).command else { unreachable!() };
    let (config, options, out) = labels.into_config();
    let (train, _) = TrainArgs::parse_args(&data).into_config();
    assert_eq!(config, train);
    assert_eq!(config.num_classes, 100);
    assert!(options.download.enabled && options.progress);
    assert_eq!(out.to_str(), Some("l.csv"));
}
