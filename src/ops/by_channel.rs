//! Direct convolution vectorised over output channels (AVX-512), for any kernel size, stride
//! and padding when the output channels are a multiple of 16: each input value is broadcast and
//! multiplied into vectors of 16 output channels' weights. It serves the layers the row kernel of
//! [`super::direct`] cannot (small images such as WRN's 8×8 group, strided and 1×1
//! convolutions) without an im2col matrix.
//!
//! The result is pixel-major, `[Ho·Wo][O]`; the caller transposes it into NCHW. [`ByChannel`]
//! holds what one call prepares once for all its images.

use super::conv::ConvGeometry;
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output vectors × pixels per register block for this many output channels: 12–24
/// accumulators, and few enough pixels that their offsets stay in general registers.
fn block(out_channels: usize) -> (usize, usize) {
    match out_channels {
        o if o.is_multiple_of(64) => (4, 6),
        o if o.is_multiple_of(32) => (2, 8),
        _ => (1, 12),
    }
}

/// Whether the kernel applies to `g` (of which it reads one image at a time) on this CPU.
pub fn supported(g: &ConvGeometry) -> bool {
    let pixels = g.out_h() * g.out_w();
    g.out_channels.is_multiple_of(16)
        && g.out_channels > 0
        && pixels >= block(g.out_channels).1
        && super::direct::has_avx512()
}

/// Floats of one zero-padded input image, `[C][H+2p][W+2p]`.
fn padded_len(g: &ConvGeometry) -> usize {
    g.in_channels * (g.height + 2 * g.pad) * (g.width + 2 * g.pad)
}

/// The kernel prepared for one convolution call: transposed weights and the offsets of every
/// tap and output pixel in the padded image, computed once for all images.
pub struct ByChannel {
    g: ConvGeometry,
    weight_t: Vec<f32>,
    taps: Vec<usize>,
    pixels: Vec<usize>,
}

impl ByChannel {
    /// The kernel for `g` with `weight` `[O][C][kh][kw]`, or `None` if it does not apply
    /// ([`supported`]).
    pub fn new(g: &ConvGeometry, weight: &[f32]) -> Option<Self> {
        if !supported(g) {
            return None;
        }
        assert_eq!(
            weight.len(),
            g.in_channels * g.kernel_h * g.kernel_w * g.out_channels,
            "by-channel conv: weight size"
        );
        let wp = g.width + 2 * g.pad;
        let plane = (g.height + 2 * g.pad) * wp;
        let taps = (0..g.in_channels * g.kernel_h * g.kernel_w)
            .map(|k| {
                let (c, r) = (k / (g.kernel_h * g.kernel_w), k % (g.kernel_h * g.kernel_w));
                c * plane + (r / g.kernel_w) * wp + r % g.kernel_w
            })
            .collect();
        let pixels =
            (0..g.out_h() * g.out_w()).map(|p| (p / g.out_w()) * g.stride * wp + (p % g.out_w()) * g.stride).collect();
        Some(Self { g: *g, weight_t: transpose_weights(weight, g.out_channels), taps, pixels })
    }

    /// The zero-padded copy of one input image this kernel reads (activated on the way when
    /// `affine` is given, see [`super::direct::Padded::fill_activated`]).
    pub fn pad_image<'a>(
        &self,
        image: &[f32],
        affine: Option<&[(f32, f32)]>,
        buf: &'a mut super::direct::Padded,
    ) -> &'a [f32] {
        let g = &self.g;
        buf.fill_activated(image, g.in_channels, g.height, g.width, g.pad, affine)
    }

    /// `out_t [Ho·Wo][O]` of one image from `padded` ([`ByChannel::pad_image`]).
    pub fn forward_image(&self, padded: &[f32], out_t: &mut [f32]) {
        let g = &self.g;
        assert_eq!(padded.len(), padded_len(g), "by-channel conv: padded image size");
        assert_eq!(out_t.len(), g.out_h() * g.out_w() * g.out_channels, "by-channel conv: output size");
        let (taps, pixels, weight_t) = (&self.taps, &self.pixels, &self.weight_t);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: AVX-512F is present (new() checked supported()); every tap offset plus pixel
        // offset lies inside the padded image, and the output and weight sizes were checked.
        unsafe {
            match block(g.out_channels) {
                (4, 6) => kernel::<4, 6>(padded, taps, pixels, weight_t, g.out_channels, out_t),
                (2, 8) => kernel::<2, 8>(padded, taps, pixels, weight_t, g.out_channels, out_t),
                _ => kernel::<1, 12>(padded, taps, pixels, weight_t, g.out_channels, out_t),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (taps, pixels, weight_t);
            unreachable!("supported() is false off x86-64")
        }
    }
}

/// Weights `[O][C][kh][kw]` transposed to `[C·kh·kw][O]`.
fn transpose_weights(weight: &[f32], out_channels: usize) -> Vec<f32> {
    let taps = weight.len() / out_channels;
    let mut t = vec![0.0f32; weight.len()];
    for o in 0..out_channels {
        for k in 0..taps {
            t[k * out_channels + o] = weight[o * taps + k];
        }
    }
    t
}

/// `OV` vectors of output channels × `PB` pixels per register block.
///
/// # Safety
/// The CPU must support AVX-512F. Every `taps[k] + pixels[q]` must be an index into `x`;
/// `weight_t` must hold `taps.len()·out_channels` floats and `out_t` `pixels.len()·out_channels`;
/// `out_channels` must be a multiple of `16·OV` and `pixels.len() ≥ PB` (the body reads and
/// writes unchecked). [`ByChannel::new`] and [`ByChannel::forward_image`] establish all this.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const OV: usize, const PB: usize>(
    x: &[f32],
    taps: &[usize],
    pixels: &[usize],
    weight_t: &[f32],
    out_channels: usize,
    out_t: &mut [f32],
) {
    let (xp, wp, yp) = (x.as_ptr(), weight_t.as_ptr(), out_t.as_mut_ptr());
    let n = pixels.len();
    // SAFETY (whole body): offsets were built inside the padded image; weight rows have
    // `out_channels` floats and og + 16·OV ≤ out_channels; output rows likewise.
    unsafe {
        for og in (0..out_channels).step_by(16 * OV) {
            let mut start = 0;
            while start < n {
                // The last block overlaps the previous one rather than running short.
                let first = start.min(n - PB);
                let po: [usize; PB] = std::array::from_fn(|q| pixels[first + q]);
                let mut acc = [[_mm512_setzero_ps(); OV]; PB];
                for (k, &tap) in taps.iter().enumerate() {
                    let wk = wp.add(k * out_channels + og);
                    let w: [__m512; OV] = std::array::from_fn(|v| _mm512_loadu_ps(wk.add(16 * v)));
                    let xk = xp.add(tap);
                    for q in 0..PB {
                        let b = _mm512_set1_ps(*xk.add(po[q]));
                        for v in 0..OV {
                            acc[q][v] = _mm512_fmadd_ps(b, w[v], acc[q][v]);
                        }
                    }
                }
                for (q, row) in acc.iter().enumerate() {
                    for (v, a) in row.iter().enumerate() {
                        _mm512_storeu_ps(yp.add((first + q) * out_channels + og + 16 * v), *a);
                    }
                }
                start += PB;
            }
        }
    }
}
