//! MNIST-like digits made from real ones by random affine distortions, for experiments that
//! need more points than the data at hand (the shared MNIST copy has only its 10,000 test
//! digits; the kernel experiment wants 60,000 training points).
//!
//! Digit k of the output is source digit `k mod n` (n = number of sources); the first n are the
//! sources unchanged, every later one a distortion with its own random parameters: rotation
//! within ±12°, independent x/y scaling within ±10 %, shear within ±0.15 and translation within
//! ±2 pixels, about the image centre, resampled bilinearly and rounded to 8 bits — the classic
//! augmentations that keep a digit a digit. The label is the source's. Parameters are drawn
//! from the `Synthetic` stream of the seed, so the output is reproducible.

use super::image_set::ImageSet;
use crate::rng::{self, Purpose};
use rand::Rng;

/// `count` digits from the 1-channel images of `sources` (see the module docs).
///
/// Panics if `sources` is empty or has more than one channel (programming errors).
pub fn distorted_digits(sources: &ImageSet, count: usize, seed: u64) -> ImageSet {
    assert!(!sources.is_empty(), "distorted_digits needs at least one source digit");
    assert_eq!(sources.channels, 1, "distorted_digits works on 1-channel images");
    let mut rng = rng::stream(seed, Purpose::Synthetic, 0);
    let (h, w) = (sources.height, sources.width);
    let mut images = Vec::with_capacity(count * h * w);
    let mut labels = Vec::with_capacity(count);
    for k in 0..count {
        let src = k % sources.len();
        labels.push(sources.labels[src]);
        if k < sources.len() {
            images.extend_from_slice(sources.image(src));
            continue;
        }
        let angle = rng.random_range(-12.0f64..12.0).to_radians();
        let (sx, sy) = (rng.random_range(0.9..1.1), rng.random_range(0.9..1.1));
        let shear = rng.random_range(-0.15..0.15);
        let (tx, ty) = (rng.random_range(-2.0..2.0), rng.random_range(-2.0..2.0));
        // Forward map A = R·Shear·S; sample the source at A⁻¹·(p − c − t) + c.
        let (c, s) = (angle.cos(), angle.sin());
        let a = [[c * sx, (c * shear - s) * sy], [s * sx, (s * shear + c) * sy]];
        let det = a[0][0] * a[1][1] - a[0][1] * a[1][0];
        let inv = [[a[1][1] / det, -a[0][1] / det], [-a[1][0] / det, a[0][0] / det]];
        let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
        let image = sources.image(src);
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as f64 - cx - tx, y as f64 - cy - ty);
                let u = inv[0][0] * dx + inv[0][1] * dy + cx;
                let v = inv[1][0] * dx + inv[1][1] * dy + cy;
                images.push(bilinear(image, h, w, u, v).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    ImageSet { images, labels, channels: 1, height: h, width: w }
}

/// The image (`h × w`, row-major) at real position (u = column, v = row); 0 outside.
fn bilinear(image: &[u8], h: usize, w: usize, u: f64, v: f64) -> f64 {
    let (u0, v0) = (u.floor(), v.floor());
    let (fu, fv) = (u - u0, v - v0);
    let at = |yy: f64, xx: f64| -> f64 {
        if yy < 0.0 || xx < 0.0 || yy >= h as f64 || xx >= w as f64 {
            0.0
        } else {
            image[yy as usize * w + xx as usize] as f64
        }
    };
    let top = at(v0, u0) * (1.0 - fu) + at(v0, u0 + 1.0) * fu;
    let bottom = at(v0 + 1.0, u0) * (1.0 - fu) + at(v0 + 1.0, u0 + 1.0) * fu;
    top * (1.0 - fv) + bottom * fv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> ImageSet {
        // Two 8×8 "digits": a vertical and a horizontal bar.
        let mut images = vec![0u8; 2 * 64];
        for i in 0..8 {
            images[i * 8 + 3] = 255;
            images[64 + 3 * 8 + i] = 255;
        }
        ImageSet { images, labels: vec![1, 7], channels: 1, height: 8, width: 8 }
    }

    #[test]
    fn cycles_sources_keeps_labels_and_is_reproducible() {
        let s = sources();
        let out = distorted_digits(&s, 7, 3);
        assert_eq!(out.len(), 7);
        assert_eq!(out.labels, vec![1, 7, 1, 7, 1, 7, 1]);
        assert_eq!(out.image(0), s.image(0));
        assert_eq!(out.image(1), s.image(1));
        assert_ne!(out.image(2), s.image(0), "later copies are distorted");
        assert_ne!(out.image(2), out.image(4), "each with its own parameters");
        assert_eq!(out, distorted_digits(&s, 7, 3));
        assert_ne!(out, distorted_digits(&s, 7, 4));
        // Ink is roughly preserved (scale within ±10 %, little leaves the frame).
        let ink = |img: &[u8]| img.iter().map(|&p| p as f64).sum::<f64>();
        for k in 2..7 {
            let ratio = ink(out.image(k)) / ink(s.image(k % 2));
            assert!((0.6..1.4).contains(&ratio), "digit {k}: ink ratio {ratio}");
        }
    }

    #[test]
    fn bilinear_interpolates_and_pads_with_zero() {
        let img = [0u8, 100, 200, 255];
        assert_eq!(bilinear(&img, 2, 2, 0.5, 0.0), 50.0);
        assert_eq!(bilinear(&img, 2, 2, 0.0, 0.5), 100.0);
        assert_eq!(bilinear(&img, 2, 2, -5.0, 0.0), 0.0);
        assert_eq!(bilinear(&img, 2, 2, 1.0, 1.0), 255.0);
    }
}
