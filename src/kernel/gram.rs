//! Exact Gram blocks G_ij = Σ_k p_ik·q_jk of 8-bit points (pixels), the bulk of every kernel pass.
//!
//! Pixels are integers 0..=255, so their dot products are integers, and two integer paths
//! compute them *exactly* — no rounding at all, unlike an f64 GEMM on p/255:
//!
//! - **VNNI** (x86 AVX-512 VNNI, run-time detected): `vpdpbusd` multiplies 64 unsigned by
//!   signed bytes and adds groups of four into 16 int32 lanes in one instruction, ≈ 5× the
//!   multiply-adds per cycle of f32 FMA (measured 422 G/s on one core of this machine, against
//!   86 G/s for f32). The signed operand is q − 128 ∈ [−128, 127], corrected afterwards:
//!   G_ij = Σ_k p_ik(q_jk − 128) + 128·Σ_k p_ik. Sums stay far below 2³¹ (784·255·128 ≈ 2.6·10⁷,
//!   3,072-dimensional CIFAR ≈ 10⁸). Points are packed once, when the features are made:
//!   row panels of [`MR`] points as `[k/4][MR][4]` bytes, column panels of [`NR`] points as
//!   `[k/4][NR][4]` signed bytes; a 32×8 register tile of int32 accumulators is computed per pair.
//! - **f32 chunks** (any CPU, or blocks not aligned to the panels): products of 8-bit integers
//!   summed over at most [`EXACT_CHUNK`] terms stay below 2²⁴, so an f32 GEMM per chunk of 256
//!   coordinates is exact whatever order it adds in; the chunks are summed in f64.

use super::cpu::{clear_upper_vector_state, vnni_available};
use faer::linalg::matmul::matmul;
use faer::prelude::ReborrowMut;
use faer::{Accum, Mat, MatMut, MatRef, Par};
use std::ops::Range;

/// Products of 8-bit integers summed over at most this many terms stay below 2²⁴
/// (256·255² = 16,646,400 < 16,777,216): an f32 GEMM over such a chunk is exact.
pub const EXACT_CHUNK: usize = 256;
/// Points per row panel of the VNNI layout (two 16-lane registers).
pub const MR: usize = 32;
/// Points per column panel of the VNNI layout.
pub const NR: usize = 8;

/// 8-bit points, row-major, with their exact sums and the packed copies the VNNI path uses.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelRows {
    /// Number of points.
    pub n: usize,
    /// Coordinates per point.
    pub dim: usize,
    /// `n × dim` bytes, row-major.
    pub values: Vec<u8>,
    /// Σ_k p_ik per point (exact).
    pub sums: Vec<f64>,
    /// Σ_k p_ik² per point (exact).
    pub sq_sums: Vec<f64>,
    /// Row panels of [`MR`] points, `[k/4][MR][4]` bytes each (empty without VNNI).
    packed_rows: Vec<u8>,
    /// Column panels of [`NR`] points, `[k/4][NR][4]` bytes of p − 128 (empty without VNNI).
    packed_cols: Vec<i8>,
}

impl PixelRows {
    /// Wraps `n` rows of `dim` bytes, packing them for VNNI when the CPU has it.
    pub fn new(values: Vec<u8>, n: usize, dim: usize) -> Self {
        Self::with_packing(values, n, dim, vnni_available())
    }

    /// As [`new`](Self::new), choosing whether to pack (tests compare both paths).
    ///
    /// `pack` is a request, honoured only when the CPU has the VNNI instructions
    /// ([`vnni_available`]); elsewhere the rows stay unpacked and [`gram`] takes the exact f32
    /// path, so asking for packing is safe (and gives the same values) on any CPU.
    pub fn with_packing(values: Vec<u8>, n: usize, dim: usize, pack: bool) -> Self {
        let pack = pack && vnni_available();
        assert_eq!(values.len(), n * dim, "PixelRows: {n}×{dim} needs {} bytes", n * dim);
        let row = |i: usize| &values[i * dim..(i + 1) * dim];
        let sums = (0..n).map(|i| row(i).iter().map(|&p| p as u64).sum::<u64>() as f64).collect();
        let sq_sums = (0..n).map(|i| row(i).iter().map(|&p| (p as u64) * (p as u64)).sum::<u64>() as f64).collect();
        let (mut packed_rows, mut packed_cols) = (Vec::new(), Vec::new());
        if pack {
            let k4 = dim.div_ceil(4);
            packed_rows = vec![0u8; n.div_ceil(MR) * MR * k4 * 4];
            packed_cols = vec![0i8; n.div_ceil(NR) * NR * k4 * 4];
            for i in 0..n {
                for (k, &p) in row(i).iter().enumerate() {
                    let (panel, r) = (i / MR, i % MR);
                    packed_rows[((panel * k4 + k / 4) * MR + r) * 4 + k % 4] = p;
                    let (panel, c) = (i / NR, i % NR);
                    packed_cols[((panel * k4 + k / 4) * NR + c) * 4 + k % 4] = (p as i16 - 128) as i8;
                }
            }
        }
        Self { n, dim, values, sums, sq_sums, packed_rows, packed_cols }
    }

    /// Bytes held for `n` points of `dim` coordinates (values plus packed copies), for plans.
    pub fn bytes(n: usize, dim: usize) -> u64 {
        (n as u64 + MR as u64) * (3 * dim as u64 + 24)
    }

    /// Whether the points hold the packed copies of the VNNI path (only ever on a CPU that
    /// has it, see [`with_packing`](Self::with_packing)).
    pub fn is_packed(&self) -> bool {
        !self.packed_rows.is_empty()
    }
}

/// Writes the exact Gram block `G = A[rows]·B[cols]ᵀ` into `out` (`|rows| × |cols|`).
pub fn gram(a: &PixelRows, rows: Range<usize>, b: &PixelRows, cols: Range<usize>, out: MatMut<'_, f64>) {
    assert_eq!(a.dim, b.dim, "gram: dimensions differ");
    assert_eq!((out.nrows(), out.ncols()), (rows.len(), cols.len()));
    #[cfg(target_arch = "x86_64")]
    if a.is_packed()
        && b.is_packed()
        && rows.start.is_multiple_of(MR)
        && cols.start.is_multiple_of(NR)
        && vnni_available()
    {
        // SAFETY: the CPU has AVX-512 F/BW/VNNI (checked just above; packing also implies it,
        // see `with_packing`) and both operands are packed.
        unsafe { vnni::gram(a, rows, b, cols, out) };
        return;
    }
    gram_f32_chunks(a, rows, b, cols, out)
}

/// The f32-chunk path (see the module docs).
fn gram_f32_chunks(a: &PixelRows, rows: Range<usize>, b: &PixelRows, cols: Range<usize>, mut out: MatMut<'_, f64>) {
    let dim = a.dim;
    let as_f32 = |p: &PixelRows, r: &Range<usize>| -> Vec<f32> {
        p.values[r.start * dim..r.end * dim].iter().map(|&v| v as f32).collect()
    };
    let (x, z) = (as_f32(a, &rows), as_f32(b, &cols));
    let mut part = Mat::<f32>::zeros(rows.len(), cols.len());
    for c0 in (0..dim).step_by(EXACT_CHUNK) {
        let kc = EXACT_CHUNK.min(dim - c0);
        let lhs =
            MatRef::from_row_major_slice_with_stride(&x[c0..(rows.len() - 1) * dim + c0 + kc], rows.len(), kc, dim);
        let rhs =
            MatRef::from_row_major_slice_with_stride(&z[c0..(cols.len() - 1) * dim + c0 + kc], cols.len(), kc, dim);
        matmul(part.as_mut(), Accum::Replace, lhs, rhs.transpose(), 1.0f32, Par::Seq);
        clear_upper_vector_state();
        for j in 0..cols.len() {
            let src = part.col(j).try_as_col_major().expect("contiguous column").as_slice();
            let dst = out.rb_mut().col_mut(j).try_as_col_major_mut().expect("contiguous column").as_slice_mut();
            if c0 == 0 {
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d = s as f64);
            } else {
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s as f64);
            }
        }
    }
    if dim == 0 {
        out.fill(0.0);
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::{MR, NR, PixelRows};
    use faer::MatMut;
    use faer::prelude::ReborrowMut;
    use std::arch::x86_64::*;
    use std::ops::Range;

    /// acc (MR×NR int32, column-major) = Σ over k4 groups of a-panel × b-panel.
    ///
    /// # Safety
    ///
    /// The caller must guarantee that the CPU supports AVX-512 F, BW and VNNI, that `a` is
    /// valid for reads of `k4·MR·4` bytes and `b` for reads of `k4·NR·4` bytes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn tile(k4: usize, a: *const u8, b: *const i8, acc: &mut [i32; MR * NR]) {
        let mut lo = [_mm512_setzero_si512(); NR];
        let mut hi = [_mm512_setzero_si512(); NR];
        for k in 0..k4 {
            // SAFETY: k < k4, so the reads stay within the lengths the caller guarantees.
            let (a0, a1) = unsafe {
                (
                    _mm512_loadu_si512(a.add(k * MR * 4) as *const _),
                    _mm512_loadu_si512(a.add(k * MR * 4 + 64) as *const _),
                )
            };
            for j in 0..NR {
                // SAFETY: as above; the four bytes of column j at group k.
                let bj = _mm512_set1_epi32(unsafe { (b.add((k * NR + j) * 4) as *const i32).read_unaligned() });
                lo[j] = _mm512_dpbusd_epi32(lo[j], a0, bj);
                hi[j] = _mm512_dpbusd_epi32(hi[j], a1, bj);
            }
        }
        for j in 0..NR {
            // SAFETY: acc holds MR·NR int32; column j is acc[j·MR..(j+1)·MR].
            unsafe {
                _mm512_storeu_si512(acc.as_mut_ptr().add(j * MR) as *mut _, lo[j]);
                _mm512_storeu_si512(acc.as_mut_ptr().add(j * MR + 16) as *mut _, hi[j]);
            }
        }
    }

    /// The VNNI Gram block (see the module docs); `rows.start % MR == 0`, `cols.start % NR == 0`.
    ///
    /// # Safety
    ///
    /// The caller must guarantee that the CPU supports AVX-512 F, BW and VNNI and that `a` and
    /// `b` are packed ([`PixelRows::is_packed`]). Out-of-range blocks panic (every panel is
    /// sliced with bounds checks before the unchecked reads).
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn gram(
        a: &PixelRows,
        rows: Range<usize>,
        b: &PixelRows,
        cols: Range<usize>,
        mut out: MatMut<'_, f64>,
    ) {
        let k4 = a.dim.div_ceil(4);
        let mut acc = [0i32; MR * NR];
        for c0 in (cols.start..cols.end).step_by(NR) {
            let bp = &b.packed_cols[(c0 / NR) * k4 * NR * 4..(c0 / NR + 1) * k4 * NR * 4];
            let nc = NR.min(cols.end - c0);
            for r0 in (rows.start..rows.end).step_by(MR) {
                let ap = &a.packed_rows[(r0 / MR) * k4 * MR * 4..(r0 / MR + 1) * k4 * MR * 4];
                // SAFETY: the panels hold exactly k4·MR·4 and k4·NR·4 bytes (slices above).
                unsafe { tile(k4, ap.as_ptr(), bp.as_ptr(), &mut acc) };
                let nr = MR.min(rows.end - r0);
                for c in 0..nc {
                    let col =
                        out.rb_mut().col_mut(c0 - cols.start + c).try_as_col_major_mut().expect("contiguous column");
                    let dst = &mut col.as_slice_mut()[r0 - rows.start..r0 - rows.start + nr];
                    let sums = &a.sums[r0..r0 + nr];
                    for ((d, &s), &v) in dst.iter_mut().zip(sums).zip(&acc[c * MR..c * MR + nr]) {
                        *d = v as f64 + 128.0 * s;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    /// `n` rows of `dim` random bytes, row 0 all 255 (the largest sums).
    fn bytes(n: usize, dim: usize, seed: u64) -> Vec<u8> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n * dim).map(|i| if i < dim { 255 } else { rng.random::<u8>() }).collect()
    }

    #[test]
    fn both_paths_are_exact() {
        for dim in [1, 3, 255, 256, 257, 784, 3072] {
            let (na, nb) = (70, 45);
            let (va, vb) = (bytes(na, dim, 1), bytes(nb, dim, 2));
            // Without VNNI a packing request falls back to the f32 path (still exact).
            for pack in [false, true] {
                let a = PixelRows::with_packing(va.clone(), na, dim, pack);
                let b = PixelRows::with_packing(vb.clone(), nb, dim, pack);
                // Aligned blocks (VNNI when packed) and a ragged one (always f32 chunks).
                for (rows, cols) in [(0..70, 0..45), (32..70, 8..40), (3..70, 1..45)] {
                    let mut g = Mat::<f64>::zeros(rows.len(), cols.len());
                    gram(&a, rows.clone(), &b, cols.clone(), g.as_mut());
                    for (gi, i) in rows.clone().enumerate() {
                        for (gj, j) in cols.clone().enumerate() {
                            let want: u64 = (0..dim).map(|k| va[i * dim + k] as u64 * vb[j * dim + k] as u64).sum();
                            assert_eq!(g[(gi, gj)], want as f64, "dim {dim} pack {pack} ({i},{j})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn packing_is_only_done_where_the_cpu_has_vnni() {
        let p = PixelRows::with_packing(bytes(40, 16, 3), 40, 16, true);
        assert_eq!(p.is_packed(), vnni_available());
        assert!(!PixelRows::with_packing(bytes(40, 16, 3), 40, 16, false).is_packed());
    }

    #[test]
    fn sums_are_exact() {
        let p = PixelRows::with_packing(vec![255, 1, 2, 3], 2, 2, false);
        assert_eq!((p.sums.clone(), p.sq_sums.clone()), (vec![256.0, 5.0], vec![65026.0, 13.0]));
    }
}
