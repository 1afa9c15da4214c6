//! Reader for the IDX format of MNIST (`*-idx3-ubyte` images, `*-idx1-ubyte` labels).
//!
//! An IDX file is a big-endian header — magic `0x00000803` (u8 data, 3 dimensions) for
//! images or `0x00000801` (u8 data, 1 dimension) for labels, then one u32 per dimension —
//! followed by exactly the product of the dimensions in bytes. Files may be gzipped (as
//! distributed) or raw (as extracted); the gzip magic `1f 8b` decides. Decompression is
//! streamed and bounded by the header, so a malformed file cannot exhaust memory.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use flate2::read::GzDecoder;

use super::image_set::{ImageSet, Splits};

/// Base URL of the MNIST mirror the `.gz` files are downloaded from (append a file name).
pub const MNIST_BASE_URL: &str = "https://storage.googleapis.com/cvdf-datasets/mnist/";
/// Training images file (raw name; the download is this plus `.gz`).
pub const MNIST_TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// Training labels file (raw name; the download is this plus `.gz`).
pub const MNIST_TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// Test images file (raw name; the download is this plus `.gz`).
pub const MNIST_TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// Test labels file (raw name; the download is this plus `.gz`).
pub const MNIST_TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
/// MD5 of `train-images-idx3-ubyte.gz`.
pub const MNIST_TRAIN_IMAGES_MD5: &str = "f68b3c2dcbeaaa9fbdd348bbdeb94873";
/// MD5 of `train-labels-idx1-ubyte.gz`.
pub const MNIST_TRAIN_LABELS_MD5: &str = "d53e105ee54ea40749a09fcbcd1e9432";
/// MD5 of `t10k-images-idx3-ubyte.gz`.
pub const MNIST_TEST_IMAGES_MD5: &str = "9fb629c4189551a2d022fa330f9573f3";
/// MD5 of `t10k-labels-idx1-ubyte.gz`.
pub const MNIST_TEST_LABELS_MD5: &str = "ec29112dd5afa0611ce80d1b7f02629c";
/// The four MNIST downloads as (`.gz` file name, MD5), for a downloader to iterate:
/// URL = [`MNIST_BASE_URL`] + name.
pub const MNIST_FILES: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte.gz", MNIST_TRAIN_IMAGES_MD5),
    ("train-labels-idx1-ubyte.gz", MNIST_TRAIN_LABELS_MD5),
    ("t10k-images-idx3-ubyte.gz", MNIST_TEST_IMAGES_MD5),
    ("t10k-labels-idx1-ubyte.gz", MNIST_TEST_LABELS_MD5),
];

/// IDX magic of an unsigned-byte, 3-dimensional array (images).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// IDX magic of an unsigned-byte, 1-dimensional array (labels).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Number of MNIST classes (digits 0–9).
const MNIST_CLASSES: u8 = 10;

/// Read an IDX image file (gzipped or raw) and return `(count, rows, cols, pixels)`,
/// the pixels being `count × rows × cols` bytes, row-major per image.
///
/// Fails, naming the file, on a wrong magic number, a payload shorter ("truncated")
/// or longer than the header says, or an unreadable/corrupt gzip stream.
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    let (dims, data) = read_idx(path, IDX_IMAGES_MAGIC, 3, "images")?;
    Ok((dims[0], dims[1], dims[2], data))
}

/// Read an IDX label file (gzipped or raw) and return one byte per label.
///
/// Fails, naming the file, on a wrong magic number or a payload of the wrong length.
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let (_, data) = read_idx(path, IDX_LABELS_MAGIC, 1, "labels")?;
    Ok(data)
}

/// Open `path`, transparently gunzipping it when it starts with the gzip magic.
fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| anyhow!("{shown}: cannot open: {e}"))?;
    let mut reader = BufReader::new(file);
    let is_gz = reader.fill_buf().map_err(|e| anyhow!("{shown}: cannot read: {e}"))?.starts_with(&[0x1f, 0x8b]);
    Ok(if is_gz { Box::new(GzDecoder::new(reader)) } else { Box::new(reader) })
}

/// Read until `buf` is full or EOF; returns the number of bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Parse header and payload of an IDX file with the given magic and rank.
fn read_idx(path: &Path, magic: u32, rank: usize, what: &str) -> Result<(Vec<usize>, Vec<u8>)> {
    let shown = path.display();
    let mut r = open_maybe_gz(path)?;
    let io = |e: std::io::Error| anyhow!("{shown}: cannot read (corrupt gzip or I/O error): {e}");

    let header_len = 4 * (1 + rank);
    let mut header = vec![0u8; header_len];
    let got = read_full(&mut r, &mut header).map_err(io)?;
    if got < 4 {
        bail!("{shown}: truncated, file has {got} bytes, too short for an IDX header");
    }
    let be = |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let found = be(0);
    if found != magic {
        bail!("{shown}: bad magic number 0x{found:08x}, expected 0x{magic:08x} (IDX {what} file)");
    }
    if got < header_len {
        bail!("{shown}: truncated, IDX header needs {header_len} bytes but the file has {got}");
    }
    let dims: Vec<usize> = (0..rank).map(|d| be(4 + 4 * d) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| anyhow!("{shown}: header dimensions {dims:?} overflow"))?;

    // Read at most one byte beyond the expected payload to detect trailing data.
    let mut data = Vec::with_capacity(expected.min(1 << 28));
    r.take(expected as u64 + 1).read_to_end(&mut data).map_err(io)?;
    if data.len() < expected {
        bail!("{shown}: truncated, payload has {} bytes but the header {dims:?} needs {expected}", data.len());
    }
    if data.len() > expected {
        bail!("{shown}: payload is longer than the {expected} bytes the header {dims:?} declares");
    }
    Ok((dims, data))
}

/// `dir/name` if it exists, else `dir/name.gz` if that exists, else an error naming
/// both candidates and hinting at `--download`.
fn find_idx(dir: &Path, name: &str) -> Result<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    bail!(
        "{}: file not found, nor {name} (searched directory {}); pass --download to fetch MNIST",
        gz.display(),
        dir.display()
    )
}

/// Load one images/labels pair into a 1-channel [`ImageSet`], checking that the counts
/// agree and every label is a digit.
fn load_pair(dir: &Path, images: &str, labels: &str) -> Result<ImageSet> {
    let ipath = find_idx(dir, images)?;
    let lpath = find_idx(dir, labels)?;
    let (n, rows, cols, pixels) = read_idx_images(&ipath)?;
    let labs = read_idx_labels(&lpath)?;
    if labs.len() != n {
        bail!("{}: has {} labels but {} has {n} images", lpath.display(), labs.len(), ipath.display());
    }
    if let Some(i) = labs.iter().position(|&l| l >= MNIST_CLASSES) {
        bail!(
            "{}: label {i} is {}, expected < {MNIST_CLASSES}; the file is corrupt or not MNIST",
            lpath.display(),
            labs[i]
        );
    }
    Ok(ImageSet { images: pixels, labels: labs, channels: 1, height: rows, width: cols })
}

/// Load MNIST (60,000 train / 10,000 test 28×28 grey images) from `dir`, which holds the
/// four IDX files, each either raw or with a `.gz` suffix.
pub fn load_mnist(dir: &Path) -> Result<Splits> {
    Ok(Splits {
        train: load_pair(dir, MNIST_TRAIN_IMAGES, MNIST_TRAIN_LABELS)?,
        test: load_pair(dir, MNIST_TEST_IMAGES, MNIST_TEST_LABELS)?,
        num_classes: MNIST_CLASSES as usize,
    })
}

/// The bytes of a raw IDX image file holding the 1-channel images of `set`.
///
/// Fails if the images have more than one channel or a dimension exceeds `u32`.
pub fn idx_images_bytes(set: &ImageSet) -> Result<Vec<u8>> {
    if set.channels != 1 {
        bail!("IDX image files hold 1-channel images, not {} channels", set.channels);
    }
    let dim = |v: usize| u32::try_from(v).map_err(|_| anyhow!("IDX dimension {v} exceeds u32"));
    let mut out = Vec::with_capacity(16 + set.images.len());
    for word in [IDX_IMAGES_MAGIC, dim(set.len())?, dim(set.height)?, dim(set.width)?] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&set.images);
    Ok(out)
}

/// The bytes of a raw IDX label file.
pub fn idx_labels_bytes(labels: &[u8]) -> Result<Vec<u8>> {
    let n = u32::try_from(labels.len()).map_err(|_| anyhow!("{} labels exceed u32", labels.len()))?;
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(labels);
    Ok(out)
}

/// Writes `splits` into `dir` as the four raw (uncompressed) MNIST IDX files, each
/// atomically, creating `dir` if needed — the counterpart of [`load_mnist`].
pub fn write_mnist(dir: &Path, splits: &Splits) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow!("{}: cannot create directory: {e}", dir.display()))?;
    for (set, images, labels) in
        [(&splits.train, MNIST_TRAIN_IMAGES, MNIST_TRAIN_LABELS), (&splits.test, MNIST_TEST_IMAGES, MNIST_TEST_LABELS)]
    {
        crate::atomic::write_atomic(&dir.join(images), &idx_images_bytes(set)?)?;
        crate::atomic::write_atomic(&dir.join(labels), &idx_labels_bytes(&set.labels)?)?;
    }
    Ok(())
}

/// Load only the MNIST test split (the `t10k-*` pair, raw or `.gz`) from `dir`; useful
/// for evaluation or when only the test files are present.
pub fn load_mnist_test_only(dir: &Path) -> Result<ImageSet> {
    load_pair(dir, MNIST_TEST_IMAGES, MNIST_TEST_LABELS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_load_back() {
        let set = |n: usize, h: usize, w: usize| ImageSet {
            images: (0..n * h * w).map(|v| (v * 37 % 256) as u8).collect(),
            labels: (0..n).map(|i| (i % 10) as u8).collect(),
            channels: 1,
            height: h,
            width: w,
        };
        let splits = Splits { train: set(5, 3, 4), test: set(2, 3, 4), num_classes: 10 };
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), &splits).unwrap();
        let back = load_mnist(dir.path()).unwrap();
        assert_eq!((back.train, back.test), (splits.train, splits.test));
        let rgb = ImageSet { channels: 3, ..set(1, 2, 2) };
        assert!(idx_images_bytes(&rgb).unwrap_err().to_string().contains("1-channel"));
    }
}
