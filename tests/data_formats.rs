//! On-disk dataset formats: CIFAR-10/100 binary files and archives, MNIST IDX files.
//! Tiny datasets are built in temporary directories; the real MNIST test set that
//! ships in `data/mnist/` is loaded as well.

mod common;
use common::pseudo_random_bytes;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use rethink::data::cifar::*;
use rethink::data::idx::*;
use rethink::data::image_set::{ImageSet, Splits};

const REC: usize = 3073;

fn cifar_set(n: usize, seed: u64) -> ImageSet {
    ImageSet {
        images: pseudo_random_bytes(n * 3072, seed),
        labels: (0..n).map(|i| ((i as u64 * 7 + seed) % 10) as u8).collect(),
        channels: 3,
        height: 32,
        width: 32,
    }
}

fn tiny_splits() -> Splits {
    Splits { train: cifar_set(15, 1), test: cifar_set(3, 2), num_classes: 10 }
}

/// Raw CIFAR-10 file: `labels.len()` records with the given labels and seeded pixels.
fn cifar10_file(labels: &[u8], seed: u64) -> Vec<u8> {
    let px = pseudo_random_bytes(labels.len() * 3072, seed);
    let mut out = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        out.push(l);
        out.extend_from_slice(&px[i * 3072..(i + 1) * 3072]);
    }
    out
}

/// Write the six CIFAR-10 files into `dir`; file k (0..5 train, 5 test) has 3 records labelled k.
fn write_cifar10_dir(dir: &Path) {
    let names = CIFAR10_TRAIN_FILES.iter().chain([&CIFAR10_TEST_FILE]);
    for (k, name) in names.enumerate() {
        fs::write(dir.join(name), cifar10_file(&[k as u8; 3], k as u64)).unwrap();
    }
}

fn assert_splits_eq(a: &Splits, b: &Splits) {
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
    assert_eq!(a.num_classes, b.num_classes);
}

fn err_of<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    let e = r.expect_err("expected an error");
    let s = format!("{e:#}");
    assert!(!s.contains('\n'), "error message must be one line: {s}");
    s
}

/// A `.tar.gz` with the given (member path, content) entries.
fn write_tar_gz(path: &Path, members: &[(&str, &[u8])]) {
    let gz = GzEncoder::new(File::create(path).unwrap(), Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, name, *data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

// ---------------------------------------------------------------- CIFAR-10

#[test]
fn cifar10_archive_round_trip_in_all_four_path_forms() {
    let tmp = tempfile::tempdir().unwrap();
    let splits = tiny_splits();
    write_cifar10_archive(tmp.path(), &splits).unwrap();
    let archive = tmp.path().join(CIFAR10_ARCHIVE);
    assert!(archive.is_file());

    // (d) the archive itself, (c) the directory holding it.
    assert_splits_eq(&load_cifar10(&archive).unwrap(), &splits);
    assert_splits_eq(&load_cifar10(tmp.path()).unwrap(), &splits);

    // Extract with the tar crate: (b) parent of cifar-10-batches-bin/, (a) that folder.
    let out = tempfile::tempdir().unwrap();
    let gz = flate2::read::GzDecoder::new(File::open(&archive).unwrap());
    tar::Archive::new(gz).unpack(out.path()).unwrap();
    let bin_dir = out.path().join(CIFAR10_DIR);
    for name in CIFAR10_TRAIN_FILES.iter().chain([&CIFAR10_TEST_FILE]) {
        assert_eq!(fs::metadata(bin_dir.join(name)).unwrap().len(), 3 * REC as u64, "{name}");
    }
    let meta = fs::read_to_string(bin_dir.join("batches.meta.txt")).unwrap();
    assert_eq!(meta.lines().next(), Some("airplane"));
    assert_splits_eq(&load_cifar10(out.path()).unwrap(), &splits);
    assert_splits_eq(&load_cifar10(&bin_dir).unwrap(), &splits);

    // The on-disk record layout is label byte then the C×H×W pixels of the image.
    let b1 = fs::read(bin_dir.join("data_batch_1.bin")).unwrap();
    assert_eq!(b1[0], splits.train.labels[0]);
    assert_eq!(&b1[1..REC], splits.train.image(0));
    assert_eq!(b1[REC], splits.train.labels[1]);
}

#[test]
fn cifar10_archive_written_to_explicit_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("export.tar.gz");
    let splits = Splits { train: cifar_set(7, 3), test: cifar_set(1, 4), num_classes: 10 };
    write_cifar10_archive(&file, &splits).unwrap();
    assert_splits_eq(&load_cifar10(&file).unwrap(), &splits);
    assert!(!tmp.path().join("export.tar.gz.part").exists());
}

#[test]
fn cifar10_writer_rejects_invalid_splits_without_leaving_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bad = tiny_splits();
    bad.test.labels[1] = 10;
    let e = err_of(write_cifar10_archive(tmp.path(), &bad));
    assert!(e.contains("label 10"), "{e}");
    let few = Splits { train: cifar_set(4, 1), test: cifar_set(1, 1), num_classes: 10 };
    let e = err_of(write_cifar10_archive(tmp.path(), &few));
    assert!(e.contains(CIFAR10_ARCHIVE), "{e}");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn cifar10_directory_files_concatenate_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10_dir(tmp.path());
    let s = load_cifar10(tmp.path()).unwrap();
    assert_eq!(s.num_classes, 10);
    assert_eq!(s.train.labels, vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
    assert_eq!(s.test.labels, vec![5, 5, 5]);
    assert_eq!((s.train.channels, s.train.height, s.train.width), (3, 32, 32));
    assert_eq!(s.train.images.len(), 15 * 3072);
    // Third training file's first image = second record's pixels of the seed-2 file.
    assert_eq!(s.train.image(6), &pseudo_random_bytes(3 * 3072, 2)[..3072]);
    assert_eq!(s.test.image(2), &pseudo_random_bytes(3 * 3072, 5)[2 * 3072..]);
}

#[test]
fn cifar10_missing_file_is_named_with_directory_and_hint() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10_dir(tmp.path());
    let missing = tmp.path().join("data_batch_3.bin");
    fs::remove_file(&missing).unwrap();
    let e = err_of(load_cifar10(tmp.path()));
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(e.contains("--download"), "{e}");
    assert!(e.contains("not found"), "{e}");

    let empty = tempfile::tempdir().unwrap();
    let e = err_of(load_cifar10(empty.path()));
    assert!(e.contains(&empty.path().join("data_batch_1.bin").display().to_string()), "{e}");
    assert!(e.contains(CIFAR10_ARCHIVE) && e.contains("--download"), "{e}");

    let nowhere = empty.path().join("no-such-dir");
    let e = err_of(load_cifar10(&nowhere));
    assert!(e.contains(&nowhere.display().to_string()), "{e}");
}

#[test]
fn cifar10_truncated_file_reports_size_and_record_length() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10_dir(tmp.path());
    let f = tmp.path().join("data_batch_3.bin");
    let mut data = fs::read(&f).unwrap();
    data.pop();
    fs::write(&f, &data).unwrap();
    let e = err_of(load_cifar10(tmp.path()));
    assert!(e.contains(&f.display().to_string()), "{e}");
    assert!(e.contains("3073") && e.contains(&format!("{}", 3 * REC - 1)), "{e}");
    assert!(e.contains("truncated"), "{e}");

    fs::write(&f, b"").unwrap();
    let e = err_of(load_cifar10(tmp.path()));
    assert!(e.contains(&f.display().to_string()) && e.contains("empty"), "{e}");
}

#[test]
fn cifar10_label_out_of_range_names_file_and_record() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10_dir(tmp.path());
    let f = tmp.path().join(CIFAR10_TEST_FILE);
    fs::write(&f, cifar10_file(&[1, 2, 10], 9)).unwrap();
    let e = err_of(load_cifar10(tmp.path()));
    assert!(e.contains(&f.display().to_string()), "{e}");
    assert!(e.contains("record 2") && e.contains("label 10"), "{e}");
}

#[test]
fn cifar10_archive_errors_name_archive_and_member() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join(CIFAR10_ARCHIVE);
    let good = cifar10_file(&[1, 2, 3], 1);
    let bad = cifar10_file(&[1, 11, 3], 1);
    let mut members: Vec<(String, Vec<u8>)> =
        CIFAR10_TRAIN_FILES.iter().map(|n| (format!("{CIFAR10_DIR}/{n}"), good.clone())).collect();
    let refs: Vec<(&str, &[u8])> = members.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();

    // test_batch.bin missing from the archive.
    write_tar_gz(&archive, &refs);
    let e = err_of(load_cifar10(tmp.path()));
    assert!(e.contains(&archive.display().to_string()) && e.contains("test_batch.bin"), "{e}");
    assert!(e.contains("not found"), "{e}");

    // Bad label inside a member.
    members[3].1 = bad;
    let refs: Vec<(&str, &[u8])> = members.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    let mut with_test = refs.clone();
    let test_name = format!("{CIFAR10_DIR}/{CIFAR10_TEST_FILE}");
    with_test.push((&test_name, &good));
    write_tar_gz(&archive, &with_test);
    let e = err_of(load_cifar10(&archive));
    assert!(e.contains(&archive.display().to_string()), "{e}");
    assert!(e.contains("data_batch_4.bin") && e.contains("record 1") && e.contains("label 11"), "{e}");

    // A truncated download.
    write_cifar10_archive(tmp.path(), &tiny_splits()).unwrap();
    let full = fs::read(&archive).unwrap();
    fs::write(&archive, &full[..full.len() / 2]).unwrap();
    let e = err_of(load_cifar10(&archive));
    assert!(e.contains(&archive.display().to_string()), "{e}");

    // Not an archive at all.
    fs::write(&archive, b"<html>not found</html>").unwrap();
    let e = err_of(load_cifar10(&archive));
    assert!(e.contains(&archive.display().to_string()), "{e}");
}

// ---------------------------------------------------------------- CIFAR-100

fn cifar100_file(labels: &[(u8, u8)], seed: u64) -> Vec<u8> {
    let px = pseudo_random_bytes(labels.len() * 3072, seed);
    let mut out = Vec::new();
    for (i, &(coarse, fine)) in labels.iter().enumerate() {
        out.extend_from_slice(&[coarse, fine]);
        out.extend_from_slice(&px[i * 3072..(i + 1) * 3072]);
    }
    out
}

#[test]
fn cifar100_uses_fine_labels_in_directory_and_archive_forms() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(CIFAR100_DIR);
    fs::create_dir(&dir).unwrap();
    let train = cifar100_file(&[(19, 99), (0, 0), (5, 42)], 1);
    let test = cifar100_file(&[(3, 17)], 2);
    fs::write(dir.join(CIFAR100_TRAIN_FILE), &train).unwrap();
    fs::write(dir.join(CIFAR100_TEST_FILE), &test).unwrap();

    let s = load_cifar100(tmp.path()).unwrap();
    assert_eq!(s.num_classes, 100);
    assert_eq!(s.train.labels, vec![99, 0, 42]);
    assert_eq!(s.test.labels, vec![17]);
    assert_eq!(s.train.image(1), &pseudo_random_bytes(3 * 3072, 1)[3072..6144]);
    assert_splits_eq(&load_cifar100(&dir).unwrap(), &s);

    let archive_dir = tempfile::tempdir().unwrap();
    let archive = archive_dir.path().join(CIFAR100_ARCHIVE);
    let tn = format!("{CIFAR100_DIR}/{CIFAR100_TRAIN_FILE}");
    let sn = format!("{CIFAR100_DIR}/{CIFAR100_TEST_FILE}");
    write_tar_gz(&archive, &[(&tn, &train), (&sn, &test)]);
    assert_splits_eq(&load_cifar100(&archive).unwrap(), &s);
    assert_splits_eq(&load_cifar100(archive_dir.path()).unwrap(), &s);

    // A CIFAR-10-sized record is not a CIFAR-100 record; fine label 100 is out of range.
    fs::write(dir.join(CIFAR100_TEST_FILE), cifar10_file(&[1], 1)).unwrap();
    let e = err_of(load_cifar100(&dir));
    assert!(e.contains("test.bin") && e.contains("3074"), "{e}");
    fs::write(dir.join(CIFAR100_TEST_FILE), cifar100_file(&[(1, 2), (1, 100)], 1)).unwrap();
    let e = err_of(load_cifar100(&dir));
    assert!(e.contains("test.bin") && e.contains("record 1") && e.contains("fine label 100"), "{e}");
}

// ---------------------------------------------------------------- IDX / MNIST

fn idx_images(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0x803, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x801u32.to_be_bytes());
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn put(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, data).unwrap();
    p
}

#[test]
fn idx_reads_raw_and_gzipped_files_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let px = pseudo_random_bytes(4 * 3 * 5, 7);
    let img = idx_images(4, 3, 5, &px);
    let raw = put(tmp.path(), "a-idx3-ubyte", &img);
    let zipped = put(tmp.path(), "a-idx3-ubyte.gz", &gz(&img));
    let expect = (4, 3, 5, px.clone());
    assert_eq!(read_idx_images(&raw).unwrap(), expect);
    assert_eq!(read_idx_images(&zipped).unwrap(), expect);

    let lab = idx_labels(&[3, 1, 4, 1]);
    let raw = put(tmp.path(), "l-idx1-ubyte", &lab);
    let zipped = put(tmp.path(), "l-idx1-ubyte.gz", &gz(&lab));
    assert_eq!(read_idx_labels(&raw).unwrap(), vec![3, 1, 4, 1]);
    assert_eq!(read_idx_labels(&zipped).unwrap(), vec![3, 1, 4, 1]);
}

#[test]
fn idx_truncated_wrong_magic_and_trailing_data_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let img = idx_images(4, 3, 5, &pseudo_random_bytes(60, 1));
    for (name, data) in [
        ("short-raw", img[..img.len() - 1].to_vec()),
        ("short.gz", gz(&img[..img.len() - 7])),
        ("header-only", img[..10].to_vec()),
    ] {
        let p = put(tmp.path(), name, &data);
        let e = err_of(read_idx_images(&p));
        assert!(e.contains(&p.display().to_string()) && e.contains("truncated"), "{name}: {e}");
    }
    // A gzip stream cut in the middle.
    let z = gz(&img);
    let p = put(tmp.path(), "cut.gz", &z[..z.len() / 2]);
    let e = err_of(read_idx_images(&p));
    assert!(e.contains(&p.display().to_string()), "{e}");

    let lab = put(tmp.path(), "labels", &idx_labels(&[1, 2]));
    let e = err_of(read_idx_images(&lab));
    assert!(e.contains(&lab.display().to_string()) && e.contains("magic"), "{e}");
    let img_file = put(tmp.path(), "images", &img);
    let e = err_of(read_idx_labels(&img_file));
    assert!(e.contains("images") && e.contains("0x00000803"), "{e}");

    let mut long = img.clone();
    long.push(0);
    let p = put(tmp.path(), "long", &long);
    let e = err_of(read_idx_images(&p));
    assert!(e.contains(&p.display().to_string()) && e.contains("longer"), "{e}");

    let e = err_of(read_idx_labels(&tmp.path().join("absent")));
    assert!(e.contains("absent"), "{e}");
}

fn write_mnist(dir: &Path, n_train: u8, n_test: u8) {
    let imgs = |n: u8, seed| idx_images(n as u32, 28, 28, &pseudo_random_bytes(n as usize * 784, seed));
    put(dir, "train-images-idx3-ubyte", &imgs(n_train, 1));
    put(dir, "train-labels-idx1-ubyte.gz", &gz(&idx_labels(&(0..n_train).map(|i| i % 10).collect::<Vec<_>>())));
    put(dir, "t10k-images-idx3-ubyte.gz", &gz(&imgs(n_test, 2)));
    put(dir, "t10k-labels-idx1-ubyte", &idx_labels(&(0..n_test).map(|i| 9 - i % 10).collect::<Vec<_>>()));
}

#[test]
fn mnist_tiny_set_with_mixed_raw_and_gz_files() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), 12, 3);
    let s = load_mnist(tmp.path()).unwrap();
    assert_eq!(s.num_classes, 10);
    assert_eq!((s.train.len(), s.test.len()), (12, 3));
    assert_eq!((s.train.channels, s.train.height, s.train.width), (1, 28, 28));
    assert_eq!(s.train.labels[11], 1);
    assert_eq!(s.test.labels, vec![9, 8, 7]);
    assert_eq!(s.test.images, pseudo_random_bytes(3 * 784, 2));
    assert_eq!(load_mnist_test_only(tmp.path()).unwrap(), s.test);
}

#[test]
fn mnist_count_mismatch_bad_label_and_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist(tmp.path(), 12, 3);
    let lp = put(tmp.path(), "t10k-labels-idx1-ubyte", &idx_labels(&[1, 2]));
    let e = err_of(load_mnist(tmp.path()));
    assert!(e.contains(&lp.display().to_string()) && e.contains("2 labels") && e.contains("3 images"), "{e}");

    put(tmp.path(), "t10k-labels-idx1-ubyte", &idx_labels(&[1, 10, 2]));
    let e = err_of(load_mnist_test_only(tmp.path()));
    assert!(e.contains(&lp.display().to_string()) && e.contains("label 1 is 10"), "{e}");

    fs::remove_file(tmp.path().join("train-images-idx3-ubyte")).unwrap();
    let e = err_of(load_mnist(tmp.path()));
    assert!(e.contains("train-images-idx3-ubyte") && e.contains("--download"), "{e}");
    assert!(e.contains(&tmp.path().display().to_string()), "{e}");
}

#[test]
fn real_mnist_test_set_loads() {
    let t = load_mnist_test_only(Path::new(common::MNIST)).unwrap();
    assert_eq!(t.len(), 10_000);
    assert_eq!((t.channels, t.height, t.width), (1, 28, 28));
    assert_eq!(t.images.len(), 10_000 * 784);
    assert!(t.labels.iter().all(|&l| l < 10));
    // Well-known start of the MNIST test labels, checked independently with Python's gzip.
    assert_eq!(&t.labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    let mut counts = [0usize; 10];
    t.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    assert_eq!(t.image(0).iter().map(|&p| p as u32).sum::<u32>(), 18454);

    // Only the t10k files ship, so the full loader must name the missing training file.
    let e = err_of(load_mnist(Path::new(common::MNIST)));
    assert!(e.contains("train-images-idx3-ubyte"), "{e}");
}
