//! `rethink kernel` end to end: the scipy comparison on real MNIST digits (the issue's
//! must-show), the other inputs and solvers on small data, and the command's one-line errors.

mod common;
use common::{kernel, pseudo_random_bytes};

use rethink::data::cifar::write_cifar10_archive;
use rethink::data::idx::write_mnist;
use rethink::data::image_set::{ImageSet, Splits};
use std::path::{Path, PathBuf};
use std::process::Command as Process;

/// The real MNIST test digits that ship in `data/mnist/`.
fn mnist_dir() -> PathBuf {
    PathBuf::from(common::MNIST)
}

/// The binary's exit status and stderr for `rethink kernel <args>`.
fn kernel_cli(args: &[&str]) -> (bool, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_rethink")).arg("kernel").args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts a failed run printed exactly one line containing every part.
fn assert_one_line_error((ok, stderr): (bool, String), parts: &[&str]) {
    assert!(!ok, "expected failure, stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line expected: {stderr}");
    for part in parts {
        assert!(stderr.contains(part), "{part:?} missing in: {stderr}");
    }
}

fn image_set(n: usize, channels: usize, side: usize, seed: u64) -> ImageSet {
    ImageSet {
        images: pseudo_random_bytes(n * channels * side * side, seed),
        labels: (0..n).map(|i| ((i as u64 * 7 + seed) % 10) as u8).collect(),
        channels,
        height: side,
        width: side,
    }
}

/// A small MNIST-format dataset of random 12×12 images (any image size in the header works).
fn tiny_mnist(dir: &Path, n_train: usize, n_test: usize) {
    let splits = Splits { train: image_set(n_train, 1, 12, 1), test: image_set(n_test, 1, 12, 2), num_classes: 10 };
    write_mnist(dir, &splits).unwrap();
}

#[derive(serde::Deserialize)]
struct Fixture {
    n_train: usize,
    n_test: usize,
    bandwidth: f64,
    test_mistakes: usize,
    predictions: String,
}

/// The must-show: on the real digits, first 8,000 as train and last 2,000 as test,
/// bandwidth 0.02, our test error equals scipy's `solve(K, Y, assume_a='pos')` (1.85%)
/// within 2 of 2,000 predictions — and the f32-refined solution is the f64 one.
#[test]
fn matches_scipy_on_8000_real_mnist_digits() {
    let dir = mnist_dir();
    assert!(
        dir.join("t10k-images-idx3-ubyte.gz").is_file() || dir.join("t10k-images-idx3-ubyte").is_file(),
        "the real MNIST test digits are needed in {} (or set RETHINK_MNIST_DIR)",
        dir.display()
    );
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kernel_mnist_8k.json"))
            .unwrap();
    let scipy: Fixture = serde_json::from_str(&text).unwrap();
    assert_eq!((scipy.n_train, scipy.n_test, scipy.bandwidth), (8000, 2000, 0.02));
    let scipy_preds: Vec<u8> = scipy.predictions.bytes().map(|b| b - b'0').collect();

    let tmp = tempfile::tempdir().unwrap();
    let (d, out32, out64) = (dir.to_str().unwrap(), tmp.path().join("f32"), tmp.path().join("f64"));
    let common =
        ["--data", "mnist", "--data-dir", d, "--split-test-set", "8000", "--test-size", "2000", "--bandwidth", "0.02"];
    let f32r = kernel(&[&common[..], &["--out", out32.to_str().unwrap()]].concat()).unwrap();
    let r = &f32r.report;
    assert_eq!((r.data.n_train, r.data.n_test, r.data.dim), (8000, 2000, 784));
    let differ = f32r.predictions.iter().zip(&scipy_preds).filter(|(a, b)| a != b).count();
    assert!(differ <= 2, "{differ} of 2000 predictions differ from scipy's");
    assert!(
        r.test_mistakes.abs_diff(scipy.test_mistakes) <= 2,
        "{} mistakes vs scipy's {}",
        r.test_mistakes,
        scipy.test_mistakes
    );
    println!(
        "ours: err = {:.2}% ({} mistakes), scipy: {} mistakes, {differ} predictions differ",
        r.test_error_percent, r.test_mistakes, scipy.test_mistakes
    );
    assert_eq!(r.train_error_percent, 0.0, "the interpolant fits every training label");
    assert!(r.solver.converged && r.backward_error.unwrap() <= 1e-14, "{:?}", r.backward_error);
    assert!(r.norm_ctkc > 0.0);
    assert_eq!(r.norm_w, r.norm_ctkc.sqrt(), "‖w‖ is the RKHS norm √(cᵀKc)");

    // The f32 factor refined against the exact f64 residual gives the f64 solution.
    let f64d = kernel(&[&common[..], &["--out", out64.to_str().unwrap(), "--precision", "f64"]].concat()).unwrap();
    assert_eq!(f32r.predictions, f64d.predictions);
    let rel = (&f32r.c - &f64d.c).norm_max() / f64d.c.norm_max();
    assert!(rel < 1e-8, "f32-refined vs f64 coefficients: relative difference {rel:e}");
    assert_eq!(f64d.report.refinement.len(), 1, "an f64 factor needs one certifying product");

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out32.join("result.json")).unwrap()).unwrap();
    assert_eq!(json["test_mistakes"], r.test_mistakes);
    assert_eq!(json["solver"]["precision"], "f32-refined");
    for phase in ["load", "kernel", "factor", "solve", "refine", "predict", "total"] {
        assert!(json["times"][phase].as_f64().unwrap() >= 0.0, "{phase}");
    }
}

/// Random labels are interpolated too (train error 0) and the test error is then chance —
/// here with the Laplacian kernel (Belkin et al. 2018) on real digits.
#[test]
fn laplacian_kernel_fits_random_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let d = mnist_dir();
    let out = kernel(&[
        "--data-dir",
        d.to_str().unwrap(),
        "--split-test-set",
        "600",
        "--test-size",
        "400",
        "--kernel",
        "laplacian",
        "--randomize",
        "labels",
        "--out",
        tmp.path().to_str().unwrap(),
    ])
    .unwrap();
    let r = &out.report;
    assert_eq!(r.data.label_corrupt_prob, 1.0);
    assert!(r.data.corrupted_labels == 600);
    assert_eq!(r.train_error_percent, 0.0);
    assert!(r.test_error_percent > 70.0, "random labels cannot generalize: {}", r.test_error_percent);
}

/// Conjugate gradient (with and without the Nyström preconditioner) reaches the exact
/// solver's predictions, printing one line per iteration into the report.
#[test]
fn conjugate_gradient_matches_cholesky() {
    let tmp = tempfile::tempdir().unwrap();
    let d = mnist_dir();
    let base =
        ["--data-dir", d.to_str().unwrap(), "--split-test-set", "500", "--test-size", "300", "--bandwidth", "0.05"];
    let exact = kernel(&[&base[..], &["--out", tmp.path().join("a").to_str().unwrap()]].concat()).unwrap();
    for precond in ["nystrom", "none"] {
        let out = tmp.path().join(precond);
        let cg = kernel(
            &[
                &base[..],
                &[
                    "--solver",
                    "cg",
                    "--tol",
                    "1e-10",
                    "--max-iters",
                    "2000",
                    "--cg-precond",
                    precond,
                    "--cg-rank",
                    "50",
                    "--out",
                    out.to_str().unwrap(),
                ],
            ]
            .concat(),
        )
        .unwrap();
        let r = &cg.report;
        assert_eq!(r.solver.solver, "cg");
        assert!(r.solver.converged, "{precond}: {} iterations", r.cg_iterations.len());
        assert_eq!(r.train_error_percent, 0.0);
        assert_eq!(cg.predictions, exact.predictions, "{precond}");
        assert!(!r.cg_iterations.is_empty());
    }
}

/// CIFAR-10 pixels (3×32×32 = 3,072 dimensions) and pixel randomizations go through the same path.
#[test]
fn cifar10_and_pixel_randomizations() {
    let tmp = tempfile::tempdir().unwrap();
    let splits = Splits { train: image_set(60, 3, 32, 3), test: image_set(20, 3, 32, 4), num_classes: 10 };
    write_cifar10_archive(tmp.path(), &splits).unwrap();
    for randomize in ["none", "shuffled-pixels", "random-pixels", "gaussian"] {
        let out = tmp.path().join(randomize);
        let o = kernel(&[
            "--data",
            "cifar10",
            "--data-dir",
            tmp.path().to_str().unwrap(),
            "--train-size",
            "50",
            "--randomize",
            randomize,
            "--bandwidth",
            "0.001",
            "--out",
            out.to_str().unwrap(),
        ])
        .unwrap();
        assert_eq!((o.report.data.n_train, o.report.data.n_test, o.report.data.dim), (50, 20, 3072));
        assert_eq!(o.report.train_error_percent, 0.0, "{randomize}");
        assert!(out.join("result.json").is_file());
    }
}

/// CIFAR-100 has 100 classes: `predictions.txt` holds every class index in full, one per line
/// (it once wrote one digit per point, recording every class ≥ 10 as 9).
#[test]
fn cifar100_predictions_are_written_in_full() {
    let tmp = tempfile::tempdir().unwrap();
    // One random image per class, fine label i (coarse i/5); the test images are the training
    // images, so the interpolant predicts every class exactly.
    let pixels = pseudo_random_bytes(100 * 3072, 5);
    let mut records = Vec::with_capacity(100 * 3074);
    for (i, image) in pixels.chunks(3072).enumerate() {
        records.extend_from_slice(&[(i / 5) as u8, i as u8]);
        records.extend_from_slice(image);
    }
    std::fs::write(tmp.path().join("train.bin"), &records).unwrap();
    std::fs::write(tmp.path().join("test.bin"), &records).unwrap();
    let out = tmp.path().join("out");
    let o = kernel(&[
        "--data",
        "cifar100",
        "--data-dir",
        tmp.path().to_str().unwrap(),
        "--bandwidth",
        "0.01",
        "--out",
        out.to_str().unwrap(),
    ])
    .unwrap();
    let classes: Vec<u8> = (0..100).collect();
    assert_eq!(o.predictions, classes);
    assert_eq!(o.report.test_mistakes, 0);
    let text = std::fs::read_to_string(out.join("predictions.txt")).unwrap();
    let written: Vec<u8> = text.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(written, classes, "{text}");
    assert!(text.ends_with("\n98\n99\n"), "{text}");
}

/// Asking for VNNI packing is safe on any CPU: without AVX-512 VNNI the public constructor
/// falls back to the unpacked (exact f32) path, with the same Gram values.
#[test]
fn requested_packing_gives_the_unpacked_gram_on_any_cpu() {
    use faer::Mat;
    use rethink::kernel::cpu::vnni_available;
    use rethink::kernel::gram::{PixelRows, gram};
    let (na, nb, dim) = (70, 45, 784);
    let (va, vb) = (pseudo_random_bytes(na * dim, 7), pseudo_random_bytes(nb * dim, 8));
    let packed =
        (PixelRows::with_packing(va.clone(), na, dim, true), PixelRows::with_packing(vb.clone(), nb, dim, true));
    assert_eq!(packed.0.is_packed(), vnni_available());
    let plain =
        (PixelRows::with_packing(va.clone(), na, dim, false), PixelRows::with_packing(vb.clone(), nb, dim, false));
    for (rows, cols) in [(0..70, 0..45), (32..70, 8..40), (3..70, 1..45)] {
        let block = |(a, b): &(PixelRows, PixelRows)| {
            let mut g = Mat::<f64>::zeros(rows.len(), cols.len());
            gram(a, rows.clone(), b, cols.clone(), g.as_mut());
            g
        };
        let (g, want) = (block(&packed), block(&plain));
        assert_eq!(g, want);
        let (i, j) = (rows.start, cols.start);
        let exact: u64 = (0..dim).map(|k| va[i * dim + k] as u64 * vb[j * dim + k] as u64).sum();
        assert_eq!(g[(0, 0)], exact as f64);
    }
}

#[test]
fn bad_kernel_parameters_are_one_line_errors() {
    assert_one_line_error(kernel_cli(&["--bandwidth", "-1"]), &["--bandwidth -1 must be a positive number"]);
    assert_one_line_error(
        kernel_cli(&["--kernel", "laplacian", "--sigma", "0"]),
        &["--sigma 0 must be a positive number"],
    );
    assert_one_line_error(
        kernel_cli(&["--kernel", "laplacian", "--bandwidth", "0.1"]),
        &["--bandwidth applies to --kernel gaussian"],
    );
    assert_one_line_error(
        kernel_cli(&["--label-corrupt-prob", "1.5"]),
        &["--label-corrupt-prob 1.5 is outside [0, 1]"],
    );
}

#[test]
fn sizes_larger_than_the_data_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_mnist(tmp.path(), 30, 10);
    let d = tmp.path().to_str().unwrap();
    assert_one_line_error(
        kernel_cli(&["--data-dir", d, "--train-size", "31"]),
        &["--train-size 31 exceeds the 30 training images", d],
    );
    assert_one_line_error(
        kernel_cli(&["--data-dir", d, "--test-size", "11"]),
        &["--test-size 11 exceeds the 10 test images"],
    );
    assert_one_line_error(
        kernel_cli(&["--data-dir", d, "--split-test-set", "8", "--test-size", "3"]),
        &["--test-size 3 exceeds the 2 test images"],
    );
}

#[test]
fn missing_files_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().to_str().unwrap();
    assert_one_line_error(kernel_cli(&["--data-dir", d]), &["train-images-idx3-ubyte", "file not found", d]);
    assert_one_line_error(
        kernel_cli(&["--data-dir", d, "--split-test-set", "5"]),
        &["t10k-images-idx3-ubyte", "file not found"],
    );
    assert_one_line_error(kernel_cli(&["--data", "cifar10", "--data-dir", d]), &[d]);
    // With only the test files, the message points at --split-test-set.
    let m = mnist_dir();
    assert_one_line_error(
        kernel_cli(&["--data-dir", m.to_str().unwrap()]),
        &["train-images-idx3-ubyte", "--split-test-set"],
    );
}

#[test]
fn memory_check_refuses_before_allocating() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_mnist(tmp.path(), 40, 10);
    let d = tmp.path().to_str().unwrap();
    let refuse = kernel_cli(&["--data-dir", d, "--solver", "cholesky", "--max-memory", "0.001"]);
    assert_one_line_error(
        refuse,
        &["not enough memory", "needs", "kernel tiles", "only 0.00 GiB is available (--max-memory)"],
    );
    let refuse = kernel_cli(&["--data-dir", d, "--max-memory", "0.001"]);
    assert_one_line_error(refuse, &["not enough memory", "--max-memory"]);
    // The same run with room succeeds and reports the plan.
    let out = tmp.path().join("out");
    let ok = kernel(&["--data-dir", d, "--max-memory", "4", "--out", out.to_str().unwrap()]).unwrap();
    assert!(ok.report.memory.planned_bytes <= ok.report.memory.available_bytes);
    assert_eq!(ok.report.memory.available_source, "--max-memory");
}

#[test]
fn cli_prints_the_demo_line() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_mnist(tmp.path(), 40, 10);
    let out = Process::new(env!("CARGO_BIN_EXE_rethink"))
        .args(["kernel", "--data-dir", tmp.path().to_str().unwrap(), "--out", tmp.path().join("o").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for part in
        ["err = ", "train error = 0.00%", "norm cᵀKc = ", "‖w‖ = √(cᵀKc) = ", "times: load", "refine 1:", "factor:"]
    {
        assert!(stdout.contains(part), "{part:?} missing in:\n{stdout}");
    }
    assert!(tmp.path().join("o/result.json").is_file());
}
