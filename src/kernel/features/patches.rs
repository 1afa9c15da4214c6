//! Image patches as matrix rows (im2col), the one layout both feature maps convolve through:
//! a convolution of one image with F filters is then a single GEMM (positions × patch) ·
//! (patch × F).

/// The shape of one image: channels × height × width (channel-major, as [`crate::data::image_set::ImageSet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Colour channels.
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

/// How square `size`×`size` patches are taken: every `stride` pixels, from the image padded
/// by `pad` zeros on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchGrid {
    /// Patch side in pixels.
    pub size: usize,
    /// Step between patches.
    pub stride: usize,
    /// Zeros added around the image.
    pub pad: usize,
}

impl PatchGrid {
    /// Patch positions along an axis of `len` pixels (0 when the patch does not fit).
    pub fn positions(self, len: usize) -> usize {
        let padded = len + 2 * self.pad;
        if padded < self.size { 0 } else { (padded - self.size) / self.stride + 1 }
    }

    /// Values in one patch of an image of `channels` channels.
    pub fn patch_len(self, channels: usize) -> usize {
        channels * self.size * self.size
    }

    /// Writes every patch of `image` (C×H×W values) as one row of `out` (row-major,
    /// positions × patch, positions in raster order, each patch channel-major then raster).
    pub fn extract(self, image: &[f32], shape: Shape, out: &mut [f32]) {
        let (oh, ow) = (self.positions(shape.height), self.positions(shape.width));
        let plen = self.patch_len(shape.channels);
        debug_assert_eq!(image.len(), shape.channels * shape.height * shape.width);
        debug_assert_eq!(out.len(), oh * ow * plen);
        for (pos, row) in out.chunks_exact_mut(plen).enumerate() {
            let (py, px) = ((pos / ow) * self.stride, (pos % ow) * self.stride);
            let mut k = 0;
            for c in 0..shape.channels {
                let plane = &image[c * shape.height * shape.width..(c + 1) * shape.height * shape.width];
                for dy in 0..self.size {
                    let y = (py + dy) as isize - self.pad as isize;
                    for dx in 0..self.size {
                        let x = (px + dx) as isize - self.pad as isize;
                        let inside = (0..shape.height as isize).contains(&y) && (0..shape.width as isize).contains(&x);
                        row[k] = if inside { plane[y as usize * shape.width + x as usize] } else { 0.0 };
                        k += 1;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_follow_the_padded_raster() {
        // A 2-channel 3×4 image with values c·100 + y·10 + x.
        let shape = Shape { channels: 2, height: 3, width: 4 };
        let image: Vec<f32> = (0..24).map(|i| ((i / 12) * 100 + (i % 12 / 4) * 10 + i % 4) as f32).collect();
        let grid = PatchGrid { size: 2, stride: 2, pad: 1 };
        assert_eq!((grid.positions(3), grid.positions(4)), (2, 3));
        let mut out = vec![0.0; 2 * 3 * grid.patch_len(2)];
        grid.extract(&image, shape, &mut out);
        // First patch: rows -1..1, cols -1..1 → only (0,0) inside.
        assert_eq!(&out[..8], &[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0]);
        // Position (1, 1): rows 1..3, cols 1..3.
        let p = &out[4 * 8..5 * 8];
        assert_eq!(p, &[11.0, 12.0, 21.0, 22.0, 111.0, 112.0, 121.0, 122.0]);
        assert_eq!(PatchGrid { size: 6, stride: 1, pad: 0 }.positions(32), 27);
        assert_eq!(PatchGrid { size: 9, stride: 1, pad: 0 }.positions(8), 0);
    }
}
