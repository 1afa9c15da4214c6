//! The paper's Table 1: per finished run, the model, its parameter count, whether random
//! crops and weight decay were on, the labels it was trained on, and the final train and test
//! accuracy — as Markdown (`table1.md`) and CSV (`table1.csv`).

use super::Outcome;
use super::csv::{Csv, num};
use super::names::{model_name, model_rank, randomization_rank};
use super::runs::Run;
use crate::atomic::write_atomic;
use crate::data::randomize::Randomization;
use crate::train::config::ValLabels;
use crate::train::run_dir::python_g;
use anyhow::Result;
use std::path::Path;

/// One row of Table 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Model name, e.g. `MLP 3x512`.
    pub model: String,
    /// Trainable parameters.
    pub parameters: usize,
    /// Random crop (`--data-augmentation`).
    pub random_crop: bool,
    /// L2 weight decay (0 = off).
    pub weight_decay: f64,
    /// `true`, `random`, `p=0.5`, or the pixel randomization.
    pub labels: String,
    /// Final train accuracy (percent).
    pub train_accuracy: f64,
    /// Final test (validation) accuracy (percent).
    pub test_accuracy: f64,
    /// Whether the test accuracy is against the true test labels.
    pub clean_test_labels: bool,
    /// Dataset name.
    pub data: String,
    /// Epochs trained.
    pub epochs: usize,
    /// The run directory.
    pub run: String,
}

/// The labels column: `true`, `random`, `p=0.2`, or e.g. `shuffled pixels`.
pub fn labels_text(run: &Run) -> String {
    let p = run.config.label_corrupt_prob;
    let labels = if p >= 1.0 {
        "random".to_string()
    } else if p > 0.0 {
        format!("p={}", python_g(p))
    } else {
        "true".to_string()
    };
    let images = match run.config.randomize {
        Randomization::None | Randomization::Labels => return labels,
        Randomization::ShuffledPixels => "shuffled pixels",
        Randomization::RandomPixels => "random pixels",
        Randomization::Gaussian => "Gaussian",
    };
    if p > 0.0 { format!("{images}, {labels} labels") } else { images.to_string() }
}

/// The rows for the finished runs, in the paper's order: by model, then true labels (random
/// crop and weight decay on first), corrupted labels by p, random labels, randomized pixels.
pub fn rows(runs: &[Run]) -> Vec<Row> {
    let mut finished: Vec<&Run> = runs.iter().filter(|r| r.finished()).collect();
    finished.sort_by(|a, b| {
        let key = |r: &Run| (model_rank(&r.config), model_name(&r.config), randomization_rank(&r.config));
        let (ca, cb) = (&a.config, &b.config);
        key(a)
            .cmp(&key(b))
            .then(ca.label_corrupt_prob.total_cmp(&cb.label_corrupt_prob))
            .then(cb.data_augmentation.cmp(&ca.data_augmentation))
            .then(cb.weight_decay.total_cmp(&ca.weight_decay))
            .then(a.dir.cmp(&b.dir))
    });
    finished
        .into_iter()
        .map(|run| {
            let last = run.last();
            Row {
                model: model_name(&run.config),
                parameters: run.results.as_ref().map_or(0, |r| r.param_count),
                random_crop: run.config.data_augmentation,
                weight_decay: run.config.weight_decay,
                labels: labels_text(run),
                train_accuracy: last.train_acc,
                test_accuracy: last.val_acc,
                clean_test_labels: run.config.val_labels == ValLabels::Clean,
                data: run.config.data.name().to_string(),
                epochs: run.metrics.len(),
                run: run.dir.display().to_string(),
            }
        })
        .collect()
}

/// `1649402` → `1,649,402`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn yes_no(on: bool) -> &'static str {
    if on { "yes" } else { "no" }
}

/// Table 1 as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut datasets: Vec<&str> = rows.iter().map(|r| r.data.as_str()).collect();
    datasets.dedup();
    let mut md = format!(
        "# Table 1: train and test accuracy (%) — {}\n\n",
        datasets.iter().map(|d| d.to_uppercase()).collect::<Vec<_>>().join(", ")
    );
    md.push_str("| model | # params | random crop | weight decay | labels | train accuracy | test accuracy |\n");
    md.push_str("|---|---:|:---:|:---:|---|---:|---:|\n");
    let mut previous = "";
    for row in rows {
        let model = if row.model == previous { "" } else { row.model.as_str() };
        let params = if row.model == previous { String::new() } else { thousands(row.parameters) };
        previous = &row.model;
        let dagger = if row.clean_test_labels { "" } else { " †" };
        md.push_str(&format!(
            "| {model} | {params} | {} | {} | {} | {:.2} | {:.2}{dagger} |\n",
            yes_no(row.random_crop),
            yes_no(row.weight_decay > 0.0),
            row.labels,
            row.train_accuracy,
            row.test_accuracy
        ));
    }
    if rows.iter().any(|r| !r.clean_test_labels) {
        md.push_str("\n† scored against test labels corrupted like the training labels (`--val-labels corrupted`), not the true ones.\n");
    }
    md
}

/// Table 1 as CSV.
pub fn csv(rows: &[Row]) -> Csv {
    let mut csv = Csv::new(&[
        "model",
        "parameters",
        "random_crop",
        "weight_decay",
        "labels",
        "train_accuracy",
        "test_accuracy",
        "test_labels",
        "data",
        "epochs",
        "run",
    ]);
    for row in rows {
        csv.row(vec![
            row.model.clone(),
            row.parameters.to_string(),
            yes_no(row.random_crop).into(),
            num(Some(row.weight_decay)),
            row.labels.clone(),
            num(Some(row.train_accuracy)),
            num(Some(row.test_accuracy)),
            (if row.clean_test_labels { "clean" } else { "corrupted" }).into(),
            row.data.clone(),
            row.epochs.to_string(),
            row.run.clone(),
        ]);
    }
    csv
}

/// Writes `table1.md` and `table1.csv` for the finished runs.
pub fn table1(runs: &[Run], out: &Path) -> Result<Outcome> {
    let rows = rows(runs);
    if rows.is_empty() {
        return Ok(Outcome::Skipped("no finished run (none has a results.json)".into()));
    }
    let md_path = out.join("table1.md");
    write_atomic(&md_path, markdown(&rows).as_bytes())?;
    let csv_path = out.join("table1.csv");
    csv(&rows).save(&csv_path)?;
    Ok(Outcome::Written(vec![md_path, csv_path]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(model: &str, labels: &str, clean: bool) -> Row {
        Row {
            model: model.into(),
            parameters: 1_649_402,
            random_crop: false,
            weight_decay: 0.0,
            labels: labels.into(),
            train_accuracy: 100.0,
            test_accuracy: 9.78,
            clean_test_labels: clean,
            data: "cifar10".into(),
            epochs: 3,
            run: "runs/a,b".into(),
        }
    }

    #[test]
    fn markdown_follows_the_paper_layout() {
        let md = markdown(&[row("Inception", "true", true), row("Inception", "random", false)]);
        assert!(md.contains("| Inception | 1,649,402 | no | no | true | 100.00 | 9.78 |\n"), "{md}");
        assert!(md.contains("|  |  | no | no | random | 100.00 | 9.78 † |\n"), "{md}");
        assert!(md.contains("† scored against"));
        assert!(md.starts_with("# Table 1: train and test accuracy (%) — CIFAR10"));
        assert_eq!(thousands(369_498), "369,498");
        assert_eq!(thousands(12), "12");
    }

    #[test]
    fn csv_has_one_row_per_run() {
        let text = csv(&[row("MLP 1x512", "p=0.5", true)]).text().to_string();
        assert_eq!(
            text,
            "model,parameters,random_crop,weight_decay,labels,train_accuracy,test_accuracy,test_labels,data,epochs,run\n\
             MLP 1x512,1649402,no,0,p=0.5,100,9.78,clean,cifar10,3,\"runs/a,b\"\n"
        );
    }
}
