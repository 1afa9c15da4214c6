//! Loader (and tiny writer) for the official CIFAR-10 / CIFAR-100 *binary* distributions.
//!
//! A CIFAR binary file is a plain concatenation of fixed-size records: one label byte
//! (CIFAR-10) or two label bytes (CIFAR-100: coarse, fine), followed by 3072 pixel bytes
//! (1024 red, 1024 green, 1024 blue, each a row-major 32×32 plane). The record layout is
//! described by [`RecordFormat`] so that both datasets share one validating parser.
//!
//! The data can be given as a directory of `.bin` files, a directory holding the
//! extracted folder, a directory holding the downloaded `.tar.gz`, or the `.tar.gz`
//! itself; archives are streamed through gzip+tar in memory, never extracted to disk.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, Read};
use std::ops::Range;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use super::image_set::{ImageSet, Splits};
use crate::atomic::AtomicFile;

/// Official download URL of the CIFAR-10 binary archive.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";
/// MD5 of [`CIFAR10_URL`]'s archive as published on the CIFAR page, used to verify downloads.
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";
/// File name of the CIFAR-10 binary archive.
pub const CIFAR10_ARCHIVE: &str = "cifar-10-binary.tar.gz";
/// Folder inside the CIFAR-10 archive (and after extraction) holding the `.bin` files.
pub const CIFAR10_DIR: &str = "cifar-10-batches-bin";
/// CIFAR-10 training files; the training split is their concatenation in this order.
pub const CIFAR10_TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// CIFAR-10 test file.
pub const CIFAR10_TEST_FILE: &str = "test_batch.bin";
/// CIFAR-10 class names, indexed by label (the content of `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Official download URL of the CIFAR-100 binary archive.
pub const CIFAR100_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz";
/// MD5 of [`CIFAR100_URL`]'s archive as published on the CIFAR page, used to verify downloads.
pub const CIFAR100_MD5: &str = "03b5dce01913d631647c71ecec9e9cb8";
/// File name of the CIFAR-100 binary archive.
pub const CIFAR100_ARCHIVE: &str = "cifar-100-binary.tar.gz";
/// Folder inside the CIFAR-100 archive (and after extraction) holding the `.bin` files.
pub const CIFAR100_DIR: &str = "cifar-100-binary";
/// CIFAR-100 training file.
pub const CIFAR100_TRAIN_FILE: &str = "train.bin";
/// CIFAR-100 test file.
pub const CIFAR100_TEST_FILE: &str = "test.bin";

/// Pixel bytes per CIFAR image: 3 channels × 32 × 32.
pub const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// One label byte of a record: its name (for error messages) and how many classes it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelField {
    /// Human-readable name, e.g. "label" or "fine label".
    pub name: &'static str,
    /// Every valid value is `< classes`.
    pub classes: u8,
}

/// Layout of one record of a CIFAR binary file: the label bytes that precede the
/// 3072 pixel bytes, and which of them is the label we train on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordFormat {
    /// Dataset name used in error messages ("CIFAR-10").
    pub dataset: &'static str,
    /// Label bytes at the start of each record, in file order.
    pub label_fields: &'static [LabelField],
    /// Index into `label_fields` of the label stored in [`ImageSet::labels`].
    pub used_label: usize,
}

impl RecordFormat {
    /// Bytes per record: label bytes + 3072 pixel bytes (3073 for CIFAR-10, 3074 for CIFAR-100).
    pub const fn record_len(&self) -> usize {
        self.label_fields.len() + CIFAR_PIXELS
    }

    /// Number of classes of the label that is kept.
    pub const fn num_classes(&self) -> usize {
        self.label_fields[self.used_label].classes as usize
    }
}

/// CIFAR-10 records: one label byte (< 10) then 3072 pixels.
pub const CIFAR10_FORMAT: RecordFormat =
    RecordFormat { dataset: "CIFAR-10", label_fields: &[LabelField { name: "label", classes: 10 }], used_label: 0 };

/// CIFAR-100 records: coarse label byte (< 20), fine label byte (< 100), then 3072
/// pixels; the fine label is kept.
pub const CIFAR100_FORMAT: RecordFormat = RecordFormat {
    dataset: "CIFAR-100",
    label_fields: &[LabelField { name: "coarse label", classes: 20 }, LabelField { name: "fine label", classes: 100 }],
    used_label: 1,
};

/// Where a dataset's files live and how they are named.
struct Layout {
    format: RecordFormat,
    dir: &'static str,
    archive: &'static str,
    train: &'static [&'static str],
    test: &'static [&'static str],
}

impl Layout {
    fn files(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.train.iter().chain(self.test.iter()).copied()
    }
}

const CIFAR10_LAYOUT: Layout = Layout {
    format: CIFAR10_FORMAT,
    dir: CIFAR10_DIR,
    archive: CIFAR10_ARCHIVE,
    train: &CIFAR10_TRAIN_FILES,
    test: &[CIFAR10_TEST_FILE],
};

const CIFAR100_LAYOUT: Layout = Layout {
    format: CIFAR100_FORMAT,
    dir: CIFAR100_DIR,
    archive: CIFAR100_ARCHIVE,
    train: &[CIFAR100_TRAIN_FILE],
    test: &[CIFAR100_TEST_FILE],
};

/// Load CIFAR-10 (50,000 train / 10,000 test images with the official files) from `path`,
/// which may be (a) a directory with the six `.bin` files, (b) a directory containing
/// `cifar-10-batches-bin/`, (c) a directory containing `cifar-10-binary.tar.gz`, or
/// (d) that archive itself. Every file is validated (size, label range) before use.
pub fn load_cifar10(path: &Path) -> Result<Splits> {
    load(path, &CIFAR10_LAYOUT)
}

/// Load CIFAR-100 with its fine (100-class) labels from `path`, accepting the same four
/// forms as [`load_cifar10`] with `train.bin`/`test.bin`, `cifar-100-binary/` and
/// `cifar-100-binary.tar.gz`.
pub fn load_cifar100(path: &Path) -> Result<Splits> {
    load(path, &CIFAR100_LAYOUT)
}

fn load(path: &Path, layout: &Layout) -> Result<Splits> {
    let name = layout.format.dataset;
    if path.is_file() {
        return load_archive(path, layout);
    }
    if !path.is_dir() {
        bail!(
            "{}: no such file or directory (expected a {name} directory or {}); pass --download to fetch {name}",
            path.display(),
            layout.archive
        );
    }
    let sub = path.join(layout.dir);
    let archive = path.join(layout.archive);
    if layout.files().any(|f| path.join(f).exists()) {
        load_dir(path, layout)
    } else if sub.is_dir() {
        load_dir(&sub, layout)
    } else if archive.is_file() {
        load_archive(&archive, layout)
    } else {
        let first = layout.files().next().unwrap_or_default();
        bail!(
            "{}: file not found (searched directory {}, its subdirectory {}/ and archive {}); pass --download to fetch {name}",
            path.join(first).display(),
            path.display(),
            layout.dir,
            layout.archive
        );
    }
}

/// Form (a)/(b): the `.bin` files sit directly in `dir`.
fn load_dir(dir: &Path, layout: &Layout) -> Result<Splits> {
    // Check presence of everything first so a missing file is reported before any big read.
    for f in layout.files() {
        let p = dir.join(f);
        if !p.is_file() {
            bail!(
                "{}: file not found (searched directory {}); pass --download to fetch {}",
                p.display(),
                dir.display(),
                layout.format.dataset
            );
        }
    }
    let read_all = |names: &[&str]| -> Result<ImageSet> {
        let sets = names.iter().map(|f| read_bin_file(&dir.join(f), &layout.format)).collect::<Result<Vec<_>>>()?;
        Ok(concat(sets))
    };
    Ok(Splits {
        train: read_all(layout.train)?,
        test: read_all(layout.test)?,
        num_classes: layout.format.num_classes(),
    })
}

/// Read and validate one `.bin` file from disk.
fn read_bin_file(path: &Path, format: &RecordFormat) -> Result<ImageSet> {
    let source = path.display().to_string();
    let len = fs::metadata(path).map_err(|e| anyhow!("{source}: cannot stat file: {e}"))?.len();
    check_size(&source, len, format)?;
    let bytes = fs::read(path).map_err(|e| anyhow!("{source}: cannot read file: {e}"))?;
    parse_records(&source, &bytes, format)
}

/// Form (c)/(d): stream the members out of the `.tar.gz` without touching the disk.
fn load_archive(archive: &Path, layout: &Layout) -> Result<Splits> {
    let format = &layout.format;
    let shown = archive.display();
    let file = File::open(archive).map_err(|e| anyhow!("{shown}: cannot open archive: {e}"))?;
    let bad = |e: std::io::Error| {
        anyhow!(
            "{shown}: cannot read archive, corrupt or truncated gzip/tar stream ({e}); delete it and re-run with --download"
        )
    };
    let wanted: Vec<&'static str> = layout.files().collect();
    let mut found: HashMap<&'static str, ImageSet> = HashMap::new();
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let member = entry.path().map_err(bad)?.into_owned();
        let Some(name) = match_member(&member, layout.dir, &wanted) else {
            continue;
        };
        let source = format!("{shown} (member {})", member.display());
        let size = entry.size();
        check_size(&source, size, format)?;
        let mut bytes = Vec::with_capacity(size.min(1 << 30) as usize);
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| anyhow!("{source}: cannot read member, archive truncated or corrupt ({e})"))?;
        if bytes.len() as u64 != size {
            bail!(
                "{source}: truncated, got {} of {size} bytes; delete the archive and re-run with --download",
                bytes.len()
            );
        }
        found.insert(name, parse_records(&source, &bytes, format)?);
        if found.len() == wanted.len() {
            break;
        }
    }
    let mut take = |names: &[&'static str]| -> Result<ImageSet> {
        let mut sets = Vec::with_capacity(names.len());
        for n in names {
            let set = found.remove(n).ok_or_else(|| {
                anyhow!(
                    "{shown}: member {}/{n} not found; the archive is incomplete or not {} (delete it and re-run with --download)",
                    layout.dir,
                    format.dataset
                )
            })?;
            sets.push(set);
        }
        Ok(concat(sets))
    };
    Ok(Splits { train: take(layout.train)?, test: take(layout.test)?, num_classes: format.num_classes() })
}

/// If `member` is `<...>/<dir>/<one of wanted>`, return that wanted file name.
fn match_member(member: &Path, dir: &str, wanted: &[&'static str]) -> Option<&'static str> {
    let file = member.file_name()?.to_str()?;
    let parent = member.parent()?.file_name()?.to_str()?;
    if parent != dir {
        return None;
    }
    wanted.iter().copied().find(|w| *w == file)
}

/// Reject sizes that cannot hold a whole number of records (empty or truncated files).
fn check_size(source: &str, len: u64, format: &RecordFormat) -> Result<()> {
    let rec = format.record_len() as u64;
    if len == 0 {
        bail!("{source}: file is empty (expected {} records of {rec} bytes)", format.dataset);
    }
    if !len.is_multiple_of(rec) {
        bail!(
            "{source}: size {len} bytes is not a multiple of {rec} ({} record size); the file is truncated or corrupt",
            format.dataset
        );
    }
    Ok(())
}

/// Parse a buffer of concatenated records in `format` into 3×32×32 images.
///
/// `source` names where the bytes came from and is put at the start of every error
/// message. Fails if the buffer is empty or not a whole number of records, or if any
/// label byte is out of range (the message gives the record index).
pub fn parse_records(source: &str, bytes: &[u8], format: &RecordFormat) -> Result<ImageSet> {
    check_size(source, bytes.len() as u64, format)?;
    let rec = format.record_len();
    let n = bytes.len() / rec;
    let skip = format.label_fields.len();
    let mut images = Vec::with_capacity(n * CIFAR_PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, record) in bytes.chunks_exact(rec).enumerate() {
        for (field, &value) in format.label_fields.iter().zip(record) {
            if value >= field.classes {
                bail!(
                    "{source}: record {i} has {} {value}, expected < {}; the file is corrupt or not {}",
                    field.name,
                    field.classes,
                    format.dataset
                );
            }
        }
        labels.push(record[format.used_label]);
        images.extend_from_slice(&record[skip..]);
    }
    Ok(ImageSet { images, labels, channels: 3, height: 32, width: 32 })
}

/// Concatenate image sets of identical geometry, in order.
fn concat(sets: Vec<ImageSet>) -> ImageSet {
    let mut it = sets.into_iter();
    let mut out =
        it.next().unwrap_or(ImageSet { images: Vec::new(), labels: Vec::new(), channels: 3, height: 32, width: 32 });
    for s in it {
        out.images.extend_from_slice(&s.images);
        out.labels.extend_from_slice(&s.labels);
    }
    out
}

/// Write `splits` as a genuine CIFAR-10 binary archive (`cifar-10-binary.tar.gz` with
/// `cifar-10-batches-bin/data_batch_{1..5}.bin`, `test_batch.bin`, `batches.meta.txt`)
/// so that [`load_cifar10`] and other CIFAR-10 readers accept it.
///
/// `dir_or_file` is an existing directory (the archive is created inside it under the
/// official name) or the archive path itself. The training images are split into five
/// consecutive, nearly equal batches, so loading gives back exactly `splits`. Requires
/// 3×32×32 images, labels < 10, at least 5 training images and 1 test image. Used by
/// tests and for exporting small synthetic datasets; the file is written through
/// [`AtomicFile`] (a `.part` sibling, fsynced and renamed), so a failure never leaves a
/// half-written archive.
pub fn write_cifar10_archive(dir_or_file: &Path, splits: &Splits) -> Result<()> {
    let dest = if dir_or_file.is_dir() { dir_or_file.join(CIFAR10_ARCHIVE) } else { dir_or_file.to_path_buf() };
    let shown = dest.display();
    for (split, set) in [("train", &splits.train), ("test", &splits.test)] {
        if (set.channels, set.height, set.width) != (3, 32, 32) {
            bail!(
                "{shown}: cannot write {split} split of {}x{}x{} images, CIFAR-10 needs 3x32x32",
                set.channels,
                set.height,
                set.width
            );
        }
        if set.images.len() != set.len() * CIFAR_PIXELS {
            bail!(
                "{shown}: {split} split has {} pixel bytes for {} labels, expected {} per image",
                set.images.len(),
                set.len(),
                CIFAR_PIXELS
            );
        }
        if let Some(i) = set.labels.iter().position(|&l| l >= 10) {
            bail!("{shown}: {split} image {i} has label {}, CIFAR-10 needs < 10", set.labels[i]);
        }
    }
    if splits.train.len() < CIFAR10_TRAIN_FILES.len() || splits.test.is_empty() {
        bail!(
            "{shown}: need at least 5 train images and 1 test image to write CIFAR-10, got {} and {}",
            splits.train.len(),
            splits.test.len()
        );
    }

    let file = AtomicFile::with_suffix(&dest, ".part")?;
    write_archive_to(file, splits)
}

/// Writes the archive into `file` and commits it (dropping it uncommitted on any error).
fn write_archive_to(file: AtomicFile, splits: &Splits) -> Result<()> {
    let shown = file.temp_path().display().to_string();
    let io = |e: std::io::Error| anyhow!("{shown}: cannot write archive: {e}");
    let gz = GzEncoder::new(file, Compression::default());
    let mut tar = tar::Builder::new(gz);

    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_mtime(0);
    dir.set_size(0);
    tar.append_data(&mut dir, format!("{CIFAR10_DIR}/"), std::io::empty()).map_err(io)?;

    let n = splits.train.len();
    let k = CIFAR10_TRAIN_FILES.len();
    let mut members: Vec<(&str, Vec<u8>)> = CIFAR10_TRAIN_FILES
        .iter()
        .enumerate()
        .map(|(b, name)| (*name, encode_cifar10(&splits.train, b * n / k..(b + 1) * n / k)))
        .collect();
    members.push((CIFAR10_TEST_FILE, encode_cifar10(&splits.test, 0..splits.test.len())));
    let meta: String = CIFAR10_CLASSES.iter().map(|c| format!("{c}\n")).collect();
    members.push(("batches.meta.txt", meta.into_bytes()));

    for (name, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, format!("{CIFAR10_DIR}/{name}"), data.as_slice()).map_err(io)?;
    }
    let gz = tar.into_inner().map_err(io)?;
    gz.finish().map_err(io)?.commit()
}

/// CIFAR-10 records (label byte + pixels) for images `range` of `set`.
fn encode_cifar10(set: &ImageSet, range: Range<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(range.len() * CIFAR10_FORMAT.record_len());
    for i in range {
        out.push(set.labels[i]);
        out.extend_from_slice(set.image(i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lengths() {
        assert_eq!(CIFAR10_FORMAT.record_len(), 3073);
        assert_eq!(CIFAR100_FORMAT.record_len(), 3074);
        assert_eq!(CIFAR10_FORMAT.num_classes(), 10);
        assert_eq!(CIFAR100_FORMAT.num_classes(), 100);
    }

    #[test]
    fn parse_keeps_fine_label_and_pixels() {
        let mut rec = vec![19u8, 99];
        rec.extend((0..CIFAR_PIXELS).map(|i| (i % 251) as u8));
        let set = parse_records("x", &rec, &CIFAR100_FORMAT).unwrap();
        assert_eq!(set.labels, vec![99]);
        assert_eq!(set.images, rec[2..].to_vec());
        let mut bad = rec.clone();
        bad[0] = 20;
        let e = parse_records("x.bin", &bad, &CIFAR100_FORMAT).unwrap_err().to_string();
        assert!(e.contains("x.bin") && e.contains("record 0") && e.contains("coarse label 20"), "{e}");
    }

    #[test]
    fn member_matching() {
        let w = ["a.bin", "b.bin"];
        assert_eq!(match_member(Path::new("d/a.bin"), "d", &w), Some("a.bin"));
        assert_eq!(match_member(Path::new("./d/b.bin"), "d", &w), Some("b.bin"));
        assert_eq!(match_member(Path::new("a.bin"), "d", &w), None);
        assert_eq!(match_member(Path::new("e/a.bin"), "d", &w), None);
        assert_eq!(match_member(Path::new("d/c.bin"), "d", &w), None);
    }
}
