//! Direct 3×3 convolution (stride 1, padding 1) with AVX-512: one image at a time, straight
//! from a zero-padded copy of it, with no im2col matrix and no GEMM packing. These are WRN's and
//! most CNNs' hot layers (19 of WRN-28-1's 22 convolutions).
//!
//! - [`forward_image`] (widths of 16k): 16 output pixels of a row (one 512-bit vector) × 8 output channels per
//!   register block, two such vectors at once (16 accumulators), accumulated over input channels
//!   and the 9 taps; each weight is broadcast once per pair of vectors.
//! - The input gradient is the same kernel on the padded output gradient with the flipped,
//!   transposed weights.
//! - [`weight_grad_image`] (any width and stride): 16 output channels (one vector) × 24 taps per register
//!   block, each input value broadcast against the pixel's output-channel gradients.
//!
//! [`Plan::new`] says which of them apply; the caller falls back to im2col + GEMM otherwise.

use super::buffer::Uninit;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output channels per register block of the forward kernel.
const OUT_BLOCK: usize = 8;

/// Which direct kernels a convolution can use on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The forward kernel (any input channels, output channels a multiple of 8).
    pub forward: bool,
    /// The input gradient (the forward kernel with input and output channels swapped).
    pub input_grad: bool,
    /// The weight-gradient kernel (any width; input channels a multiple of 8, output channels
    /// of 16).
    pub weight_grad: bool,
    /// Whether the by-channel kernels of [`super::by_channel`] may serve what these do not.
    pub by_channel: bool,
}

impl Plan {
    /// The direct kernels that apply to a `in_channels → out_channels` convolution on images
    /// `width` wide: the row kernels need a 3×3 kernel, stride 1, padding 1 and a width of 16k;
    /// the weight gradient a 3×3 kernel with padding 1 (any stride, any width).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        stride: usize,
        pad: usize,
        width: usize,
    ) -> Self {
        let padded_3x3 = kernel == (3, 3) && pad == 1 && stride >= 1 && has_avx512();
        let shape = padded_3x3 && stride == 1 && width.is_multiple_of(16) && width > 0;
        Plan {
            by_channel: has_avx512(),
            forward: shape && out_channels.is_multiple_of(OUT_BLOCK),
            input_grad: shape && in_channels.is_multiple_of(OUT_BLOCK),
            weight_grad: padded_3x3 && (in_channels * 9).is_multiple_of(TAP_BLOCK) && out_channels.is_multiple_of(16),
        }
    }
}

/// Whether this CPU runs AVX-512F (std caches the detection; false off x86-64).
pub(super) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A reusable zero-padded copy of one image, `[C][H+2p][W+2p]`.
///
/// The zero border is written only when the geometry changes; each later image overwrites just
/// the interior (a memset of the whole buffer per image cost as much as the copy).
#[derive(Debug, Default)]
pub struct Padded {
    data: Vec<f32>,
    geometry: (usize, usize, usize, usize),
}

impl Padded {
    /// Fills the buffer from `image` `[C][H][W]` with `pad` zeros on each side.
    pub fn fill(&mut self, image: &[f32], channels: usize, height: usize, width: usize, pad: usize) -> &[f32] {
        self.fill_activated(image, channels, height, width, pad, None)
    }

    /// [`Padded::fill`] with `max(0, scale[c]·x + shift[c])` applied to each value of channel
    /// `c` when `affine` is given (an inference batch norm + ReLU read on the fly; the border
    /// stays zero, as the padding of the activation).
    pub fn fill_activated(
        &mut self,
        image: &[f32],
        channels: usize,
        height: usize,
        width: usize,
        pad: usize,
        affine: Option<&[(f32, f32)]>,
    ) -> &[f32] {
        assert_eq!(image.len(), channels * height * width, "pad: image size");
        let (wp, hp) = (width + 2 * pad, height + 2 * pad);
        if self.geometry != (channels, height, width, pad) {
            self.data.clear();
            self.data.resize(channels * hp * wp, 0.0);
            self.geometry = (channels, height, width, pad);
        }
        for c in 0..channels {
            for y in 0..height {
                let at = (c * hp + y + pad) * wp + pad;
                let (dst, src) =
                    (&mut self.data[at..at + width], &image[(c * height + y) * width..(c * height + y + 1) * width]);
                match affine {
                    None => copy_row(dst, src),
                    Some(coef) => {
                        let (scale, shift) = coef[c];
                        dst.iter_mut().zip(src).for_each(|(d, &v)| *d = (scale * v + shift).max(0.0));
                    }
                }
            }
        }
        &self.data
    }
}

/// `dst.copy_from_slice(src)` for short rows, in fixed-size chunks (16, 8, 4, then single
/// floats) that compile to vector moves instead of a `memmove` call per row.
#[inline(always)]
fn copy_row(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let mut i = 0;
    while i + 16 <= dst.len() {
        let s: &[f32; 16] = src[i..i + 16].try_into().expect("16 floats");
        dst[i..i + 16].copy_from_slice(s);
        i += 16;
    }
    if i + 8 <= dst.len() {
        let s: &[f32; 8] = src[i..i + 8].try_into().expect("8 floats");
        dst[i..i + 8].copy_from_slice(s);
        i += 8;
    }
    if i + 4 <= dst.len() {
        let s: &[f32; 4] = src[i..i + 4].try_into().expect("4 floats");
        dst[i..i + 4].copy_from_slice(s);
        i += 4;
    }
    for _ in 0..3 {
        if i < dst.len() {
            dst[i] = src[i];
            i += 1;
        }
    }
}

/// Forward weights `[O, C, 3, 3]` regrouped as `[O/8][C][9][8]`: the 8 output channels of a
/// block contiguous for each input channel and tap.
pub fn pack_forward_weights(weight: &[f32], out_channels: usize, in_channels: usize) -> Vec<f32> {
    let mut packed = vec![0.0f32; weight.len()];
    for o in 0..out_channels {
        let (block, r) = (o / OUT_BLOCK, o % OUT_BLOCK);
        for c in 0..in_channels {
            for t in 0..9 {
                packed[((block * in_channels + c) * 9 + t) * OUT_BLOCK + r] = weight[(o * in_channels + c) * 9 + t];
            }
        }
    }
    packed
}

/// One image's convolution: `out [O][H][W]` from `padded` ([`pad_image`] of `[C][H][W]`) and
/// [`pack_forward_weights`]. Requires [`Plan::forward`].
pub fn forward_image(
    padded: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    packed: &[f32],
    out_channels: usize,
    out: &mut Uninit,
) {
    assert!(padded.len() >= channels * (height + 2) * (width + 2), "direct conv: padded image size");
    assert_eq!(packed.len(), out_channels * channels * 9, "direct conv: weight size");
    assert_eq!(out.len(), out_channels * height * width, "direct conv: output size");
    assert!(width.is_multiple_of(16) && out_channels.is_multiple_of(OUT_BLOCK));
    #[cfg(target_arch = "x86_64")]
    {
        assert!(has_avx512(), "direct conv needs AVX-512");
        // SAFETY: AVX-512F is present (checked above); the asserts bound every access below.
        unsafe { forward_avx512(padded, channels, height, width, packed, out_channels, out) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("Plan::new never selects the direct kernels off x86-64")
}

/// The AVX-512 body of [`forward_image`].
///
/// # Safety
/// The CPU must support AVX-512F, and the sizes must be those [`forward_image`] asserts:
/// `padded` holds at least `channels·(height+2)·(width+2)` floats, `packed` exactly
/// `out_channels·channels·9`, `out` exactly `out_channels·height·width`, `width` is a multiple
/// of 16 and `out_channels` a multiple of `OUT_BLOCK` (the body reads and writes unchecked).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn forward_avx512(
    padded: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    packed: &[f32],
    out_channels: usize,
    out: &mut Uninit,
) {
    let wp = width + 2;
    let plane = (height + 2) * wp;
    let per_row = width / 16;
    let positions = height * per_row;
    let (x, wts, y) = (padded.as_ptr(), packed.as_ptr(), out.as_mut_ptr().cast::<f32>());
    // SAFETY (whole body): the caller checked the sizes; a vector at output (oy, ox) reads padded
    // rows oy..oy+2, columns ox..ox+17 < W+2, and writes out[o][oy][ox..ox+16].
    unsafe {
        let mut pos = 0;
        while pos < positions {
            // Two vector positions in raster order (the second may start the next row).
            let pair = pos + 1 < positions;
            let (oy0, ox0) = (pos / per_row, pos % per_row * 16);
            let next = if pair { pos + 1 } else { pos };
            let (oy1, ox1) = (next / per_row, next % per_row * 16);
            for block in 0..out_channels / OUT_BLOCK {
                let mut acc0 = [_mm512_setzero_ps(); OUT_BLOCK];
                let mut acc1 = [_mm512_setzero_ps(); OUT_BLOCK];
                let wb = wts.add(block * channels * 9 * OUT_BLOCK);
                for c in 0..channels {
                    let xc = x.add(c * plane);
                    let wc = wb.add(c * 9 * OUT_BLOCK);
                    for i in 0..3 {
                        let r0 = xc.add((oy0 + i) * wp + ox0);
                        let r1 = xc.add((oy1 + i) * wp + ox1);
                        for j in 0..3 {
                            let v0 = _mm512_loadu_ps(r0.add(j));
                            let v1 = _mm512_loadu_ps(r1.add(j));
                            let wt = wc.add((i * 3 + j) * OUT_BLOCK);
                            for r in 0..OUT_BLOCK {
                                let wv = _mm512_set1_ps(*wt.add(r));
                                acc0[r] = _mm512_fmadd_ps(v0, wv, acc0[r]);
                                acc1[r] = _mm512_fmadd_ps(v1, wv, acc1[r]);
                            }
                        }
                    }
                }
                for r in 0..OUT_BLOCK {
                    let o = block * OUT_BLOCK + r;
                    _mm512_storeu_ps(y.add((o * height + oy0) * width + ox0), acc0[r]);
                    if pair {
                        _mm512_storeu_ps(y.add((o * height + oy1) * width + ox1), acc1[r]);
                    }
                }
            }
            pos += 2;
        }
    }
}

/// Adds one image's weight gradient to `grad_weight_t`, the transposed gradient `[C·9][O]`, of
/// a 3×3 convolution with padding 1 and `stride`: `Σ_pixels x[c] at tap (i, j) · dy[o]`, from
/// `padded` (the input padded by 1, [`Padded`]) and the output gradient transposed to
/// pixel-major, `[Ho·Wo][O]`. Requires [`Plan::weight_grad`].
///
/// Vectorised over output channels (16 a vector) with 24 taps per register block: each input
/// value is broadcast and multiplied into a vector of output-channel gradients, so no horizontal
/// sums are needed and any image width works.
#[allow(clippy::too_many_arguments)]
pub fn weight_grad_image(
    padded: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    stride: usize,
    grad_out_t: &[f32],
    out_channels: usize,
    grad_weight_t: &mut [f32],
) {
    assert!(padded.len() >= channels * (height + 2) * (width + 2), "direct conv: padded image size");
    assert!(stride >= 1);
    let (out_h, out_w) = ((height - 1) / stride + 1, (width - 1) / stride + 1);
    assert_eq!(grad_out_t.len(), out_channels * out_h * out_w, "direct conv: gradient size");
    assert_eq!(grad_weight_t.len(), out_channels * channels * 9, "direct conv: weight size");
    assert!(out_channels.is_multiple_of(16) && (channels * 9).is_multiple_of(TAP_BLOCK));
    #[cfg(target_arch = "x86_64")]
    {
        assert!(has_avx512(), "direct conv needs AVX-512");
        // SAFETY: AVX-512F is present; the asserts bound every access below.
        unsafe { weight_grad_avx512(padded, channels, height, width, stride, grad_out_t, out_channels, grad_weight_t) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("Plan::new never selects the direct kernels off x86-64")
}

/// Taps per register block of the weight-gradient kernel.
const TAP_BLOCK: usize = 24;

/// The AVX-512 body of [`weight_grad_image`].
///
/// # Safety
/// The CPU must support AVX-512F, `stride ≥ 1`, and the sizes must be those
/// [`weight_grad_image`] asserts: `padded` holds at least `channels·(height+2)·(width+2)`
/// floats, `grad_out_t` exactly `out_channels·Ho·Wo`, `grad_weight_t` exactly
/// `out_channels·channels·9`, `out_channels` is a multiple of 16 and `channels·9` of
/// `TAP_BLOCK` (the body reads and writes unchecked).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn weight_grad_avx512(
    padded: &[f32],
    channels: usize,
    height: usize,
    width: usize,
    stride: usize,
    grad_out_t: &[f32],
    out_channels: usize,
    grad_weight_t: &mut [f32],
) {
    let (out_h, out_w) = ((height - 1) / stride + 1, (width - 1) / stride + 1);
    let wp = width + 2;
    let plane = (height + 2) * wp;
    let taps = channels * 9;
    let (x, dy, dw) = (padded.as_ptr(), grad_out_t.as_ptr(), grad_weight_t.as_mut_ptr());
    // SAFETY (whole body): a tap (c, i, j) at pixel (oy, ox) reads padded[c][s·oy + i][s·ox + j],
    // inside the padded image; dy and dw accesses stay inside [H·W][O] and [C·9][O].
    unsafe {
        // A block of 24 taps is 8 (channel, kernel row) pairs × the 3 kernel columns, so each
        // pixel needs 8 row pointers (fits the 16 general registers) with constant offsets j.
        const ROWS: usize = TAP_BLOCK / 3;
        for tb in (0..taps).step_by(TAP_BLOCK) {
            let base: [usize; ROWS] = std::array::from_fn(|g| {
                let k = tb + 3 * g;
                (k / 9) * plane + (k % 9 / 3) * wp
            });
            for ov in (0..out_channels).step_by(16) {
                let mut acc = [_mm512_setzero_ps(); TAP_BLOCK];
                for oy in 0..out_h {
                    let rows: [*const f32; ROWS] = std::array::from_fn(|g| x.add(base[g] + oy * stride * wp));
                    let drow = dy.add(oy * out_w * out_channels + ov);
                    for ox in 0..out_w {
                        let d = _mm512_loadu_ps(drow.add(ox * out_channels));
                        for g in 0..ROWS {
                            let r = rows[g].add(ox * stride);
                            for j in 0..3 {
                                acc[3 * g + j] = _mm512_fmadd_ps(_mm512_set1_ps(*r.add(j)), d, acc[3 * g + j]);
                            }
                        }
                    }
                }
                for (t, a) in acc.iter().enumerate() {
                    let dst = dw.add((tb + t) * out_channels + ov);
                    _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), *a));
                }
            }
        }
    }
}

/// `[rows][cols]` → `[cols][rows]` into `out`: 16×16 blocks in AVX-512 registers where the
/// sizes allow, element by element otherwise.
pub fn transpose(src: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    assert_eq!(out.len(), rows * cols, "transpose: output size");
    // SAFETY: out holds rows·cols floats; only floats are written.
    unsafe { transpose_raw(src, rows, cols, out.as_mut_ptr()) }
}

/// [`transpose`] into an unwritten output, which it writes completely.
pub fn transpose_uninit(src: &[f32], rows: usize, cols: usize, out: &mut Uninit) {
    assert_eq!(out.len(), rows * cols, "transpose: output size");
    // SAFETY: out holds rows·cols elements, all of which are written below.
    unsafe { transpose_raw(src, rows, cols, out.as_mut_ptr().cast::<f32>()) }
}

/// [`transpose`] of the `rows × cols` matrix `src` into the raw output `out`.
///
/// # Safety
/// `out` must be valid for writes of `rows·cols` floats (suitably aligned) that do not overlap
/// `src`. (The AVX-512 path is taken only after a run-time check of the CPU.)
unsafe fn transpose_raw(src: &[f32], rows: usize, cols: usize, out: *mut f32) {
    assert_eq!(src.len(), rows * cols, "transpose: size");
    #[cfg(target_arch = "x86_64")]
    if rows.is_multiple_of(16) && cols.is_multiple_of(16) && has_avx512() {
        for r in (0..rows).step_by(16) {
            for c in (0..cols).step_by(16) {
                // SAFETY: AVX-512F is present; the 16×16 block at (r, c) lies inside both
                // matrices since rows and cols are multiples of 16.
                unsafe { transpose_16x16(src.as_ptr().add(r * cols + c), cols, out.add(c * rows + r), rows) };
            }
        }
        return;
    }
    for r in 0..rows {
        for c in 0..cols {
            // SAFETY: c·rows + r < rows·cols.
            unsafe { out.add(c * rows + r).write(src[r * cols + c]) };
        }
    }
}

/// Transposes the 16×16 block at `src` (row stride `ss`) into `dst` (row stride `ds`).
///
/// # Safety
/// The CPU must support AVX-512F; `src` must be valid for reads of 16 rows of 16 floats at
/// stride `ss`, and `dst` valid for writes of 16 rows of 16 floats at stride `ds`, not
/// overlapping `src`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose_16x16(src: *const f32, ss: usize, dst: *mut f32, ds: usize) {
    // SAFETY: the caller guarantees 16 rows of 16 floats at both places.
    unsafe {
        let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(src.add(i * ss)));
        // Interleave 32-bit elements of row pairs, then 64-bit pairs of those.
        let t: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (r[i / 2 * 2], r[i / 2 * 2 + 1]);
            if i % 2 == 0 { _mm512_unpacklo_ps(a, b) } else { _mm512_unpackhi_ps(a, b) }
        });
        let u: [__m512; 16] = std::array::from_fn(|i| {
            // Within each group of four t's: (t0, t2) and (t1, t3), low then high.
            let g = i / 4 * 4;
            let (a, b) = match i % 4 {
                0 | 1 => (t[g], t[g + 2]),
                _ => (t[g + 1], t[g + 3]),
            };
            let (a, b) = (_mm512_castps_pd(a), _mm512_castps_pd(b));
            _mm512_castpd_ps(if i % 2 == 0 { _mm512_unpacklo_pd(a, b) } else { _mm512_unpackhi_pd(a, b) })
        });
        // Now u[4k + m] holds, in each 128-bit lane l, column 4l + m of rows 4k..4k+3.
        // Gather the lanes: v[m + 4·half + 8·pair] combines u of rows 0–7 or 8–15.
        let v: [__m512; 16] = std::array::from_fn(|i| {
            let (m, high, pair) = (i % 4, (i / 4) % 2 == 1, i / 8);
            let (a, b) = (u[8 * pair + m], u[8 * pair + 4 + m]);
            if high { _mm512_shuffle_f32x4::<0xdd>(a, b) } else { _mm512_shuffle_f32x4::<0x88>(a, b) }
        });
        let w: [__m512; 16] = std::array::from_fn(|i| {
            let (a, b) = (v[i % 8], v[8 + i % 8]);
            if i < 8 { _mm512_shuffle_f32x4::<0x88>(a, b) } else { _mm512_shuffle_f32x4::<0xdd>(a, b) }
        });
        for (i, row) in w.iter().enumerate() {
            _mm512_storeu_ps(dst.add(i * ds), *row);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_matches_the_definition() {
        for (rows, cols) in [(16, 16), (32, 48), (16, 1024), (5, 7), (64, 64)] {
            let src: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let mut out = vec![0.0; rows * cols];
            transpose(&src, rows, cols, &mut out);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(out[c * rows + r], src[r * cols + c], "{rows}×{cols} at ({r}, {c})");
                }
            }
        }
    }
}
