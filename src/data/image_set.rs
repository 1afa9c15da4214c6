//! In-memory labelled image sets, the common output of every dataset loader.
//!
//! Pixels are kept as raw `u8` in the layout the CIFAR binary format uses on disk
//! (channel-major per image: all of channel 0, then channel 1, ...), so loaders can
//! copy records without reshuffling and consumers normalise/convert as they see fit.

/// A labelled set of 8-bit images stored channel-major per image (C×H×W, as in the CIFAR binary format).
///
/// Invariant (upheld by the loaders in this module tree): `images.len() == labels.len() * channels * height * width`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// Pixel bytes of all images, one image after another, each image C×H×W.
    pub images: Vec<u8>,
    /// One class label per image.
    pub labels: Vec<u8>,
    /// Number of colour channels (3 for CIFAR, 1 for MNIST).
    pub channels: usize,
    /// Image height in pixels.
    pub height: usize,
    /// Image width in pixels.
    pub width: usize,
}

impl ImageSet {
    /// Number of images (= number of labels) in the set.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the set holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of bytes of one image: channels × height × width.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Pixel bytes (C×H×W) of image `i`.
    ///
    /// Panics if `i >= self.len()`, like slice indexing: an out-of-range index is a
    /// programming error, not bad user data.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[i * n..(i + 1) * n]
    }

    /// A copy of the first `n` images and labels (all of them if `n >= self.len()`),
    /// used to train/evaluate on subsets without reloading the data.
    pub fn take(&self, n: usize) -> ImageSet {
        let n = n.min(self.len());
        ImageSet {
            images: self.images[..n * self.image_len()].to_vec(),
            labels: self.labels[..n].to_vec(),
            channels: self.channels,
            height: self.height,
            width: self.width,
        }
    }
}

/// Train and test splits of one dataset.
#[derive(Debug, Clone)]
pub struct Splits {
    /// Training images and labels.
    pub train: ImageSet,
    /// Held-out test images and labels.
    pub test: ImageSet,
    /// Number of classes; every label is `< num_classes`.
    pub num_classes: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> ImageSet {
        ImageSet { images: (0..24).collect(), labels: vec![0, 1, 2], channels: 2, height: 2, width: 2 }
    }

    #[test]
    fn accessors() {
        let s = set();
        assert_eq!(s.len(), 3);
        assert!(!s.is_empty());
        assert_eq!(s.image_len(), 8);
        assert_eq!(s.image(1), &(8..16).collect::<Vec<u8>>()[..]);
    }

    #[test]
    fn take_prefix_and_clamps() {
        let s = set();
        let t = s.take(2);
        assert_eq!(t.len(), 2);
        assert_eq!(t.images, (0..16).collect::<Vec<u8>>());
        assert_eq!(t.labels, vec![0, 1]);
        assert_eq!(s.take(10), s);
        assert!(s.take(0).is_empty());
    }
}
