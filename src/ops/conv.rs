//! 2-D convolution on contiguous NCHW `f32` slices: forward, input gradient and weight gradient.
//!
//! Each image is one task (rayon over the batch, one single-threaded GEMM per image), so the
//! im2col buffer of an image (at most `C·kh·kw × Ho·Wo` floats, ≈ 0.6 MB for WRN-28-1) stays in
//! the core's L2 cache between being written and being multiplied. burn-flex instead builds the
//! columns of the whole batch and runs one large GEMM, which streams them through memory.
//!
//! Shapes follow PyTorch: input `[N, C, H, W]`, weight `[O, C, kh, kw]`, output `[N, O, Ho, Wo]`
//! with `Ho = (H + 2·pad − kh) / stride + 1`. A weight is read as the `[O, K]` matrix
//! (`K = C·kh·kw`) whose column index matches the row index of the im2col matrix.

use super::buffer::{self, Uninit};
use super::by_channel::ByChannel;
use super::direct::{self, Padded, Plan};
use rayon::prelude::*;

/// The geometry of one convolution (square kernel, same stride and padding on both axes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Batch size N.
    pub batch: usize,
    /// Input channels C.
    pub in_channels: usize,
    /// Input height H.
    pub height: usize,
    /// Input width W.
    pub width: usize,
    /// Output channels O.
    pub out_channels: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Stride on both axes.
    pub stride: usize,
    /// Zero padding on all four sides.
    pub pad: usize,
}

impl ConvGeometry {
    /// Output height Ho.
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.pad - self.kernel_h) / self.stride + 1
    }

    /// Output width Wo.
    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.pad - self.kernel_w) / self.stride + 1
    }

    /// Output pixels per image, Ho·Wo (the GEMM's long side).
    fn pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Inner dimension K = C·kh·kw.
    fn depth(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }

    /// Floats of one input image.
    fn image_len(&self) -> usize {
        self.in_channels * self.height * self.width
    }

    /// Floats of one output image.
    fn out_image_len(&self) -> usize {
        self.out_channels * self.pixels()
    }

    /// The direct kernels that apply to this convolution on this CPU.
    fn direct_plan(&self) -> Plan {
        Plan::new(
            self.in_channels,
            self.out_channels,
            (self.kernel_h, self.kernel_w),
            self.stride,
            self.pad,
            self.width,
        )
    }

    /// Whether the columns are the image itself (1×1, stride 1, no padding): no im2col.
    fn is_pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride == 1 && self.pad == 0
    }
}

/// Column-major view of a matrix for [`matmul`]: element (i, j) sits at `ptr[i·rs + j·cs]`.
#[derive(Clone, Copy)]
struct View {
    ptr: *const f32,
    rs: isize,
    cs: isize,
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)` on one thread, with arbitrary strides.
///
/// # Safety
/// Every pointer must address its whole matrix under the given strides (`lhs` and `rhs` valid
/// for reads, `dst` for reads and writes of every element), and `dst` must not alias `lhs` or
/// `rhs`.
#[allow(clippy::too_many_arguments)]
unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: View,
    rhs: View,
) {
    // SAFETY: forwarded from the caller; `gemm` computes dst = alpha·dst + beta·lhs·rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            dst_cs,
            dst_rs,
            accumulate,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Row stride of the column matrices: a power-of-two stride (1024 floats = 4 KiB at 32×32)
/// puts the rows the GEMM packs together into the same L1 cache set, so rows are padded.
fn leading_dim(pixels: usize) -> usize {
    pixels + 16
}

/// Writes the im2col matrix of one image with row stride `ld`: row `(c·kh + i)·kw + j`, column
/// `oy·Wo + ox` holds `x[c, oy·s + i − pad, ox·s + j − pad]`, or 0 in the padding.
fn im2col(g: &ConvGeometry, image: &[f32], col: &mut [f32], ld: usize) {
    let (oh, ow, p) = (g.out_h(), g.out_w(), g.pixels());
    let plane = g.height * g.width;
    for c in 0..g.in_channels {
        let src = &image[c * plane..(c + 1) * plane];
        for i in 0..g.kernel_h {
            for j in 0..g.kernel_w {
                let row = (c * g.kernel_h + i) * g.kernel_w + j;
                let dst = &mut col[row * ld..row * ld + p];
                for oy in 0..oh {
                    let out = &mut dst[oy * ow..(oy + 1) * ow];
                    let iy = (oy * g.stride + i) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.height as isize {
                        zero(out);
                        continue;
                    }
                    let line = &src[iy as usize * g.width..(iy as usize + 1) * g.width];
                    let shift = j as isize - g.pad as isize;
                    if g.stride == 1 {
                        // ox + shift must lie in [0, W): a contiguous run with zero ends.
                        let lo = (-shift).clamp(0, ow as isize) as usize;
                        let hi = (g.width as isize - shift).clamp(lo as isize, ow as isize) as usize;
                        zero(&mut out[..lo]);
                        if hi > lo {
                            let from = (lo as isize + shift) as usize;
                            // A plain loop, not copy_from_slice: rows are short (8–32 floats)
                            // and a memmove call per row cost more than the copy.
                            for (o, &v) in out[lo..hi].iter_mut().zip(&line[from..from + (hi - lo)]) {
                                *o = v;
                            }
                        }
                        zero(&mut out[hi..]);
                    } else {
                        for (ox, v) in out.iter_mut().enumerate() {
                            let ix = (ox * g.stride) as isize + shift;
                            *v = if ix >= 0 && ix < g.width as isize { line[ix as usize] } else { 0.0 };
                        }
                    }
                }
            }
        }
    }
}

/// Sets a short slice to zero without a memset call.
#[inline(always)]
fn zero(v: &mut [f32]) {
    for x in v {
        *x = 0.0;
    }
}

/// Adds the im2col-shaped gradient `col` (row stride `ld`) back onto the image gradient (the
/// adjoint of [`im2col`]).
fn col2im_add(g: &ConvGeometry, col: &[f32], ld: usize, image: &mut [f32]) {
    let (oh, ow, p) = (g.out_h(), g.out_w(), g.pixels());
    let plane = g.height * g.width;
    for c in 0..g.in_channels {
        let dst = &mut image[c * plane..(c + 1) * plane];
        for i in 0..g.kernel_h {
            for j in 0..g.kernel_w {
                let row = (c * g.kernel_h + i) * g.kernel_w + j;
                let src = &col[row * ld..row * ld + p];
                for oy in 0..oh {
                    let iy = (oy * g.stride + i) as isize - g.pad as isize;
                    if iy < 0 || iy >= g.height as isize {
                        continue;
                    }
                    let line = &mut dst[iy as usize * g.width..(iy as usize + 1) * g.width];
                    for (ox, v) in src[oy * ow..(oy + 1) * ow].iter().enumerate() {
                        let ix = (ox * g.stride + j) as isize - g.pad as isize;
                        if ix >= 0 && ix < g.width as isize {
                            line[ix as usize] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Forward convolution without bias: returns `[N, O, Ho, Wo]`.
pub fn conv2d_forward(g: &ConvGeometry, input: &[f32], weight: &[f32]) -> Vec<f32> {
    forward(g, input, weight, Fused::default(), g.direct_plan())
}

/// What a forward convolution can absorb of its neighbours.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fused<'a> {
    /// Added to the output (a residual block's shortcut), image by image while in cache.
    pub residual: Option<&'a [f32]>,
    /// Per input channel `(scale, shift)`: the convolution reads `max(0, scale·x + shift)`
    /// instead of `x` (an inference batch norm + ReLU), never materialising the activation.
    pub input_affine: Option<&'a [(f32, f32)]>,
}

/// [`conv2d_forward`] with a residual and/or an input activation folded in (see [`Fused`]).
pub fn conv2d_forward_fused(g: &ConvGeometry, input: &[f32], weight: &[f32], fused: Fused<'_>) -> Vec<f32> {
    if let Some(residual) = fused.residual {
        assert_eq!(residual.len(), g.batch * g.out_image_len(), "conv2d: residual size");
    }
    if let Some(affine) = fused.input_affine {
        assert_eq!(affine.len(), g.in_channels, "conv2d: one input affine per channel");
    }
    forward(g, input, weight, fused, g.direct_plan())
}

/// [`conv2d_forward_fused`] with the choice of direct kernels made by the caller (tests compare
/// both).
fn forward(g: &ConvGeometry, input: &[f32], weight: &[f32], fused: Fused<'_>, plan: Plan) -> Vec<f32> {
    assert_eq!(input.len(), g.batch * g.image_len(), "conv2d: input size");
    assert_eq!(weight.len(), g.out_channels * g.depth(), "conv2d: weight size");
    let mut output = buffer::uninit(g.batch * g.out_image_len());
    let (p, k, o) = (g.pixels(), g.depth(), g.out_channels);
    let ld = if g.is_pointwise() { p } else { leading_dim(p) };
    let col_len = if g.is_pointwise() || plan.forward { 0 } else { k * ld };
    let packed = if plan.forward { direct::pack_forward_weights(weight, o, g.in_channels) } else { Vec::new() };
    let by_channel = if !plan.forward && plan.by_channel { ByChannel::new(g, weight) } else { None };
    let (residual, affine) = (fused.residual, fused.input_affine);
    let wptr = weight.as_ptr() as usize;
    let len = g.out_image_len();
    output.par_chunks_mut(len).zip(input.par_chunks(g.image_len())).enumerate().for_each_init(
        || (vec![0.0f32; if by_channel.is_some() { 0 } else { col_len }], Padded::default(), Vec::new()),
        |(col, padded, out_t), (n, (out, image))| {
            let out: &mut [f32] = if plan.forward {
                let padded = padded.fill_activated(image, g.in_channels, g.height, g.width, 1, affine);
                direct::forward_image(padded, g.in_channels, g.height, g.width, &packed, o, out);
                // SAFETY: forward_image wrote the whole image.
                unsafe { buffer::assume_init_mut(out) }
            } else if let Some(kernel) = &by_channel {
                let padded = kernel.pad_image(image, affine, padded);
                out_t.resize(len, 0.0);
                kernel.forward_image(padded, out_t);
                direct::transpose_uninit(out_t, p, o, out);
                // SAFETY: transpose_uninit wrote the whole image.
                unsafe { buffer::assume_init_mut(out) }
            } else {
                // The GEMM path reads the activation from a copy of the image.
                let activated;
                let image: &[f32] = match affine {
                    Some(coef) => {
                        let plane = g.height * g.width;
                        activated = (0..image.len())
                            .map(|i| (coef[i / plane].0 * image[i] + coef[i / plane].1).max(0.0))
                            .collect::<Vec<f32>>();
                        &activated
                    }
                    None => image,
                };
                let cols: &[f32] = if g.is_pointwise() {
                    image
                } else {
                    im2col(g, image, col, ld);
                    col
                };
                // outᵀ (P×O) = colsᵀ (P×K) · Wᵀ (K×O): the long side P is the GEMM's m. gemm
                // does not promise to leave dst unread, so it gets initialised memory.
                let out = buffer::zeroed(out);
                let lhs = View { ptr: cols.as_ptr(), rs: 1, cs: ld as isize };
                let rhs = View { ptr: wptr as *const f32, rs: 1, cs: k as isize };
                // SAFETY: cols is K×P (stride ld), weight O×K, out O×P, all disjoint.
                unsafe { matmul(p, o, k, out.as_mut_ptr(), 1, p as isize, false, lhs, rhs) };
                out
            };
            if let Some(residual) = residual {
                out.iter_mut().zip(&residual[n * len..(n + 1) * len]).for_each(|(y, r)| *y += r);
            }
        },
    );
    // SAFETY: each image's output was written whole by one of the three kernels above.
    unsafe { buffer::assume_init(output) }
}

/// Images whose weight gradients one task sums before the tasks' sums are added in order.
const IMAGES_PER_TASK: usize = 8;

/// Per-thread buffers of [`conv2d_backward`].
struct Scratch {
    /// im2col of the input image (K × ld).
    col: Vec<f32>,
    /// im2col of the output gradient for the transposed convolution.
    tcol: Vec<f32>,
    /// The output gradient of one image, rows padded to `ld`.
    dy: Vec<f32>,
    /// This thread's share of the weight gradient, `[O, K]`.
    dw: Vec<f32>,
    /// The zero-padded input image for the direct kernels.
    padded_x: Padded,
    /// The zero-padded output gradient for the direct input-gradient kernels.
    padded_dy: Padded,
    /// The output gradient of one image, pixel-major `[P][O]`, for the direct weight gradient.
    dy_t: Vec<f32>,
    /// The direct kernel's share of the weight gradient, transposed: `[K][O]`.
    dw_t: Vec<f32>,
}

impl Scratch {
    /// This task's weight gradient `[O, K]`: the GEMM path's, or the direct kernel's transposed
    /// back (a call uses one path for all its images).
    fn take_weight_grad(&self, o: usize, k: usize) -> Vec<f32> {
        if self.dw_t.is_empty() {
            return self.dw.clone();
        }
        let mut dw = vec![0.0f32; o * k];
        direct::transpose(&self.dw_t, k, o, &mut dw);
        dw
    }
}

/// Input gradient and weight gradient of [`conv2d_forward`] given the output gradient
/// `[N, O, Ho, Wo]`: returns `(dx [N, C, H, W], dw [O, C, kh, kw])`.
///
/// Stride-1 convolutions get their input gradient as the convolution of the output gradient with
/// the flipped, transposed kernel (a GEMM with inner dimension O·kh·kw); strided ones through
/// the column gradient and [`col2im_add`].
pub fn conv2d_backward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    grad_out: &[f32],
    need_input_grad: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    backward(g, input, weight, grad_out, need_input_grad, g.direct_plan())
}

/// [`conv2d_backward`] with the choice of direct kernels made by the caller.
fn backward(
    g: &ConvGeometry,
    input: &[f32],
    weight: &[f32],
    grad_out: &[f32],
    need_input_grad: bool,
    plan: Plan,
) -> (Option<Vec<f32>>, Vec<f32>) {
    assert_eq!(input.len(), g.batch * g.image_len(), "conv2d backward: input size");
    assert_eq!(grad_out.len(), g.batch * g.out_image_len(), "conv2d backward: gradient size");
    let (p, k, o) = (g.pixels(), g.depth(), g.out_channels);
    let plane = g.height * g.width;
    let ld = leading_dim(p);
    // Stride-1 input gradient: dx = conv(dy, flipped Wᵀ, pad kh−1−pad), a forward convolution.
    let transposed =
        (need_input_grad && g.stride == 1 && !g.is_pointwise() && g.pad < g.kernel_h && g.kernel_h == g.kernel_w)
            .then(|| {
                let tg = ConvGeometry {
                    batch: g.batch,
                    in_channels: o,
                    height: g.out_h(),
                    width: g.out_w(),
                    out_channels: g.in_channels,
                    kernel_h: g.kernel_h,
                    kernel_w: g.kernel_w,
                    stride: 1,
                    pad: g.kernel_h - 1 - g.pad,
                };
                (tg, flip_transpose(g, weight))
            })
            .filter(|(tg, _)| tg.out_h() == g.height && tg.out_w() == g.width);
    let tld = leading_dim(plane);
    let tcol_len = transposed.as_ref().map_or(0, |(tg, _)| tg.depth() * tld);
    let mut grad_in = if need_input_grad { buffer::uninit(g.batch * g.image_len()) } else { Vec::new() };
    let wptr = weight.as_ptr() as usize;
    // Direct input gradient: the forward kernel on dy with the flipped, transposed weights.
    let packed_t = match &transposed {
        Some((_, wt)) if plan.input_grad => direct::pack_forward_weights(wt, g.in_channels, o),
        _ => Vec::new(),
    };
    // Otherwise, for stride 1, the by-channel kernel on dy with the flipped, transposed weights.
    let by_channel_t = transposed
        .as_ref()
        .filter(|_| packed_t.is_empty() && plan.by_channel)
        .and_then(|(tg, wt)| ByChannel::new(tg, wt));
    let gemm_weight_grad = |s: &mut Scratch, image: &[f32], dy: &[f32]| {
        // The image's columns, and its output gradient, with padded rows (see leading_dim).
        let (cols, cld): (&[f32], usize) = if g.is_pointwise() {
            (image, p)
        } else {
            im2col(g, image, &mut s.col, ld);
            (&s.col, ld)
        };
        for r in 0..o {
            s.dy[r * ld..r * ld + p].copy_from_slice(&dy[r * p..(r + 1) * p]);
        }
        // dwᵀ (K×O) += cols (K×P) · dyᵀ (P×O).
        let lhs = View { ptr: cols.as_ptr(), rs: cld as isize, cs: 1 };
        let rhs = View { ptr: s.dy.as_ptr(), rs: 1, cs: ld as isize };
        // SAFETY: cols K×P, dy O×P, dw O×K (thread-local), disjoint.
        unsafe { matmul(k, o, p, s.dw.as_mut_ptr(), 1, k as isize, true, lhs, rhs) };
    };
    let gemm_input_grad = |s: &mut Scratch, dy: &[f32], dx: &mut Uninit| {
        if let Some((tg, wt)) = &transposed {
            im2col(tg, dy, &mut s.tcol, tld);
            let lhs = View { ptr: s.tcol.as_ptr(), rs: 1, cs: tld as isize };
            let rhs = View { ptr: wt.as_ptr(), rs: 1, cs: tg.depth() as isize };
            // SAFETY: tcol (O·kh·kw)×HW, wt C×(O·kh·kw), dx C×HW, disjoint.
            unsafe {
                matmul(
                    plane,
                    g.in_channels,
                    tg.depth(),
                    buffer::zeroed(dx).as_mut_ptr(),
                    1,
                    plane as isize,
                    false,
                    lhs,
                    rhs,
                )
            };
        } else {
            // dcols (K×P) = Wᵀ (K×O) · dy (O×P), then scattered back (or dx itself for 1×1).
            for r in 0..o {
                s.dy[r * ld..r * ld + p].copy_from_slice(&dy[r * p..(r + 1) * p]);
            }
            let lhs = View { ptr: wptr as *const f32, rs: 1, cs: k as isize };
            let rhs = View { ptr: s.dy.as_ptr(), rs: ld as isize, cs: 1 };
            if g.is_pointwise() {
                // SAFETY: weight O×C, dy O×HW, dx C×HW, disjoint.
                unsafe { matmul(k, p, o, buffer::zeroed(dx).as_mut_ptr(), p as isize, 1, false, lhs, rhs) };
            } else {
                // SAFETY: weight O×K, dy O×P, col K×P (thread-local), disjoint.
                unsafe { matmul(k, p, o, s.col.as_mut_ptr(), ld as isize, 1, false, lhs, rhs) };
                col2im_add(g, &s.col, ld, buffer::zeroed(dx));
            }
        }
    };
    let per_image = |s: &mut Scratch, image: &[f32], dy: &[f32], dx: Option<&mut Uninit>| {
        if plan.weight_grad {
            let padded = s.padded_x.fill(image, g.in_channels, g.height, g.width, 1);
            s.dy_t.resize(o * p, 0.0);
            direct::transpose(dy, o, p, &mut s.dy_t);
            direct::weight_grad_image(padded, g.in_channels, g.height, g.width, g.stride, &s.dy_t, o, &mut s.dw_t);
        } else {
            gemm_weight_grad(s, image, dy);
        }
        let Some(dx) = dx else { return };
        if !packed_t.is_empty() {
            let padded = s.padded_dy.fill(dy, o, g.height, g.width, 1);
            direct::forward_image(padded, o, g.height, g.width, &packed_t, g.in_channels, dx);
            return;
        }
        if let Some(kernel) = &by_channel_t {
            let padded = kernel.pad_image(dy, None, &mut s.padded_dy);
            s.dy_t.resize(g.image_len(), 0.0);
            kernel.forward_image(padded, &mut s.dy_t);
            direct::transpose_uninit(&s.dy_t, plane, g.in_channels, dx);
            return;
        }
        gemm_input_grad(s, dy, dx);
    };
    // Buffers only for the GEMM paths this call takes.
    let gemm_dx = need_input_grad && packed_t.is_empty() && by_channel_t.is_none();
    let gemm_cols = !plan.weight_grad || (gemm_dx && transposed.is_none());
    let init = || Scratch {
        col: vec![0.0f32; if gemm_cols { k * ld } else { 0 }],
        tcol: vec![0.0f32; if gemm_dx { tcol_len } else { 0 }],
        dy: vec![0.0f32; if gemm_cols { o * ld } else { 0 }],
        dw: vec![0.0f32; o * k],
        padded_x: Padded::default(),
        padded_dy: Padded::default(),
        dy_t: Vec::new(),
        dw_t: vec![0.0f32; if plan.weight_grad { o * k } else { 0 }],
    };
    // The weight gradient is summed per fixed group of images, then the groups in order, so
    // the result does not depend on how rayon split the work (runs are reproducible).
    let group = IMAGES_PER_TASK;
    let partials: Vec<Vec<f32>> = if need_input_grad {
        grad_in
            .par_chunks_mut(group * g.image_len())
            .zip(input.par_chunks(group * g.image_len()))
            .zip(grad_out.par_chunks(group * g.out_image_len()))
            .map_init(init, |s, ((dx, images), dys)| {
                s.dw.fill(0.0);
                s.dw_t.fill(0.0);
                for ((dx, image), dy) in
                    dx.chunks_mut(g.image_len()).zip(images.chunks(g.image_len())).zip(dys.chunks(g.out_image_len()))
                {
                    per_image(s, image, dy, Some(dx));
                }
                s.take_weight_grad(o, k)
            })
            .collect()
    } else {
        input
            .par_chunks(group * g.image_len())
            .zip(grad_out.par_chunks(group * g.out_image_len()))
            .map_init(init, |s, (images, dys)| {
                s.dw.fill(0.0);
                s.dw_t.fill(0.0);
                for (image, dy) in images.chunks(g.image_len()).zip(dys.chunks(g.out_image_len())) {
                    per_image(s, image, dy, None);
                }
                s.take_weight_grad(o, k)
            })
            .collect()
    };
    let mut grad_weight = vec![0.0f32; o * k];
    for part in partials {
        grad_weight.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
    // SAFETY: with need_input_grad, every image's dx was written whole by one of the paths of
    // per_image (direct, by-channel, or zeroed and then written by GEMM or col2im).
    (need_input_grad.then(|| unsafe { buffer::assume_init(grad_in) }), grad_weight)
}

/// `wt[c, o, i, j] = w[o, c, kh−1−i, kw−1−j]`: the kernel of the transposed convolution.
fn flip_transpose(g: &ConvGeometry, weight: &[f32]) -> Vec<f32> {
    let (kh, kw, c_in, o) = (g.kernel_h, g.kernel_w, g.in_channels, g.out_channels);
    let mut wt = vec![0.0f32; weight.len()];
    for oc in 0..o {
        for c in 0..c_in {
            for i in 0..kh {
                for j in 0..kw {
                    wt[((c * o + oc) * kh + i) * kw + j] =
                        weight[((oc * c_in + c) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
                }
            }
        }
    }
    wt
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct-loop reference convolution.
    fn naive(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f32> {
        let (oh, ow) = (g.out_h(), g.out_w());
        let mut y = vec![0.0f32; g.batch * g.out_channels * oh * ow];
        for n in 0..g.batch {
            for o in 0..g.out_channels {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = 0.0f64;
                        for c in 0..g.in_channels {
                            for i in 0..g.kernel_h {
                                for j in 0..g.kernel_w {
                                    let iy = (oy * g.stride + i) as isize - g.pad as isize;
                                    let ix = (ox * g.stride + j) as isize - g.pad as isize;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < g.height && (ix as usize) < g.width {
                                        let xv = x[((n * g.in_channels + c) * g.height + iy as usize) * g.width
                                            + ix as usize];
                                        let wv = w[((o * g.in_channels + c) * g.kernel_h + i) * g.kernel_w + j];
                                        s += (xv * wv) as f64;
                                    }
                                }
                            }
                        }
                        y[((n * g.out_channels + o) * oh + oy) * ow + ox] = s as f32;
                    }
                }
            }
        }
        y
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn geometries() -> Vec<ConvGeometry> {
        let g = |batch, in_channels, height, width, out_channels, k, stride, pad| ConvGeometry {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel_h: k,
            kernel_w: k,
            stride,
            pad,
        };
        vec![
            g(3, 4, 7, 6, 5, 3, 1, 1),
            g(2, 3, 8, 8, 6, 3, 2, 1),
            g(2, 5, 6, 6, 4, 1, 1, 0),
            g(2, 5, 7, 7, 4, 1, 2, 0),
            g(1, 2, 9, 9, 3, 5, 1, 2),
            g(2, 3, 9, 8, 2, 3, 1, 0),
            // Padding wider than the image (a 5×5 "same" kernel on 1×1 and 2×3 inputs).
            g(2, 3, 1, 1, 4, 5, 1, 2),
            g(1, 2, 2, 3, 3, 5, 1, 2),
        ]
    }

    #[test]
    fn forward_matches_direct_loops() {
        for (s, g) in geometries().iter().enumerate() {
            let x = values(g.batch * g.image_len(), s as u32);
            let w = values(g.out_channels * g.depth(), 100 + s as u32);
            let (got, want) = (conv2d_forward(g, &x, &w), naive(g, &x, &w));
            for (a, b) in got.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "{g:?}: {a} vs {b}");
            }
        }
    }

    /// The gradients are the adjoints: <dy, conv(x + dx)> − <dy, conv(x)> is linear, so check
    /// Σ dy·conv(e_i) against each gradient entry by finite linear probing.
    #[test]
    fn backward_is_the_adjoint_of_forward() {
        for (s, g) in geometries().iter().enumerate() {
            let x = values(g.batch * g.image_len(), 7 + s as u32);
            let w = values(g.out_channels * g.depth(), 200 + s as u32);
            let dy = values(g.batch * g.out_image_len(), 300 + s as u32);
            let (dx, dw) = conv2d_backward(g, &x, &w, &dy, true);
            let dx = dx.unwrap();
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| (p * q) as f64).sum::<f64>();
            // Convolution is bilinear: <dy, conv(u, w)> = <dx_of(dy), u> for any u, likewise for w.
            let u = values(x.len(), 400 + s as u32);
            let lhs = dot(&dy, &conv2d_forward(g, &u, &w));
            let rhs = dot(&dx, &u);
            assert!((lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()), "{g:?} dx: {lhs} vs {rhs}");
            let v = values(w.len(), 500 + s as u32);
            let lhs = dot(&dy, &conv2d_forward(g, &x, &v));
            let rhs = dot(&dw, &v);
            assert!((lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()), "{g:?} dw: {lhs} vs {rhs}");
            let (none, dw2) = conv2d_backward(g, &x, &w, &dy, false);
            assert!(none.is_none());
            assert_eq!(dw, dw2);
        }
    }

    /// The direct AVX-512 kernels against the im2col + GEMM path (and the direct loops), on
    /// shapes where each of them applies.
    #[test]
    fn direct_kernels_match_the_gemm_path() {
        let g = |batch, in_channels, height, width, out_channels| ConvGeometry {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel_h: 3,
            kernel_w: 3,
            stride: 1,
            pad: 1,
        };
        let none = Plan { forward: false, input_grad: false, weight_grad: false, by_channel: false };
        let strided = |batch, in_channels, size, out_channels, k, stride, pad| ConvGeometry {
            batch,
            in_channels,
            height: size,
            width: size,
            out_channels,
            kernel_h: k,
            kernel_w: k,
            stride,
            pad,
        };
        let shapes = [
            g(3, 8, 5, 16, 8),
            g(2, 16, 4, 32, 16),
            g(2, 3, 3, 16, 8),
            g(2, 4, 2, 16, 12),
            g(1, 8, 6, 48, 24),
            // By-channel kernels: small images, strides, 1×1, 16/32/64 output channels.
            g(2, 16, 8, 8, 16),
            g(2, 32, 6, 7, 64),
            strided(2, 8, 8, 32, 3, 2, 1),
            strided(2, 8, 9, 16, 3, 2, 1),
            strided(2, 16, 10, 16, 1, 2, 0),
            strided(2, 3, 9, 48, 3, 1, 0),
        ];
        let mut used = [false; 3];
        for (s, g) in shapes.iter().enumerate() {
            let plan = g.direct_plan();
            if !direct::has_avx512() {
                assert_eq!(plan, none, "no direct kernels without AVX-512");
                continue;
            }
            used = [used[0] | plan.forward, used[1] | plan.input_grad, used[2] | plan.weight_grad];
            let x = values(g.batch * g.image_len(), 600 + s as u32);
            let w = values(g.out_channels * g.depth(), 700 + s as u32);
            let dy = values(g.batch * g.out_image_len(), 800 + s as u32);
            let close = |a: &[f32], b: &[f32], what: &str| {
                assert_eq!(a.len(), b.len());
                for (p, q) in a.iter().zip(b) {
                    assert!((p - q).abs() < 1e-4 * (1.0 + q.abs()), "{g:?} {what}: {p} vs {q}");
                }
            };
            let plain = Fused::default();
            close(&forward(g, &x, &w, plain, plan), &forward(g, &x, &w, plain, none), "forward");
            close(&forward(g, &x, &w, plain, plan), &naive(g, &x, &w), "forward vs loops");
            // Residual and input activation folded in, against doing them separately.
            let coef: Vec<(f32, f32)> =
                (0..g.in_channels).map(|c| (0.5 + c as f32 * 0.25, 0.1 - c as f32 * 0.05)).collect();
            let plane = g.height * g.width;
            let activated: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, &v)| (coef[(i / plane) % g.in_channels].0 * v + coef[(i / plane) % g.in_channels].1).max(0.0))
                .collect();
            let want: Vec<f32> = naive(g, &activated, &w).iter().zip(&dy).map(|(a, b)| a + b).collect();
            let fused = Fused { residual: Some(&dy), input_affine: Some(&coef) };
            close(&forward(g, &x, &w, fused, plan), &want, "forward fused");
            close(&forward(g, &x, &w, fused, none), &want, "forward fused, GEMM path");
            let (dx, dw) = backward(g, &x, &w, &dy, true, plan);
            let (dx_ref, dw_ref) = backward(g, &x, &w, &dy, true, none);
            close(&dx.unwrap(), &dx_ref.unwrap(), "input gradient");
            close(&dw, &dw_ref, "weight gradient");
        }
        if direct::has_avx512() {
            assert_eq!(used, [true; 3], "every direct kernel was exercised");
        }
    }
}
