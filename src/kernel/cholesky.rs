//! Tiled (cache-blocked) Cholesky factorization that stores only the lower triangle.
//!
//! The n×n symmetric matrix is cut into square tiles of `tile` rows; only tiles (i, j) with
//! j ≤ i are allocated, each as its own column-major buffer, so a 60,000-point kernel matrix
//! takes n²/2 entries (7.2 GB in f32) instead of n² and no single allocation is huge. The
//! factorization is the classic right-looking tile algorithm (as in PLASMA/LAPACK's blocked
//! `potrf`), with faer's dense kernels on tiles and rayon parallelism over tiles:
//!
//! ```text
//! for each group of `group` tile columns K0..K1:
//!     for k in K0..K1:                               (the panel)
//!         L_kk = chol(A_kk)                           faer llt, one tile
//!         A_ik = A_ik · L_kk⁻ᵀ        for i > k       triangular solve, parallel over i
//!         A_ij -= A_ik · A_jkᵀ        for K1 > j > k, i ≥ j   GEMM/SYRK, parallel
//!     A_ij -= Σ_{k∈K0..K1} A_ik·A_jkᵀ  for j ≥ K1, i ≥ j       the trailing update, parallel
//! ```
//!
//! Grouping `group` tile columns into one trailing update means each trailing tile is read
//! and written once per group rather than once per tile column — the update stays in cache
//! across `group` GEMMs, which divides the memory traffic (the algorithm's only non-GEMM
//! cost at this size) by `group`. Nearly all flops are in those GEMMs, which run
//! single-threaded on tiles while rayon keeps every core busy with different tiles.
//!
//! Every tile sits behind an `RwLock`: within one parallel phase the written tiles and the
//! read tiles are disjoint, so the locks never wait; they only make that argument checkable
//! by the compiler instead of by `unsafe`.

use super::cpu::clear_upper_vector_state;
use faer::dyn_stack::{MemBuffer, MemStack};
use faer::linalg::cholesky::llt::factor::{LltRegularization, cholesky_in_place, cholesky_in_place_scratch};
use faer::linalg::matmul::matmul;
use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_solve::{solve_lower_triangular_in_place, solve_upper_triangular_in_place};
use faer::prelude::{Reborrow, ReborrowMut};
use faer::{Accum, Mat, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::RwLock;

/// A floating-point type the tiled factorization works in (f32 or f64).
pub trait Real: faer::traits::RealField + Copy + Default + Send + Sync + 'static {
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;
    /// Entries of a matrix to factor smaller than this in magnitude are stored as 0: their
    /// products would be subnormal, and subnormal arithmetic is ~100× slower on x86 (measured:
    /// an f32 factorization at 3 instead of 180 GFLOP/s). Relative to a unit diagonal they are
    /// far below the type's precision (1e-18 for f32, 1e-150 for f64).
    const FLUSH_BELOW: f64;
    /// Rounds an f64 to this type.
    fn from_f64(v: f64) -> Self;
    /// Rounds an f64 to this type, as 0 if its magnitude is below [`Self::FLUSH_BELOW`].
    #[inline]
    fn from_f64_flushed(v: f64) -> Self {
        Self::from_f64(if v.abs() < Self::FLUSH_BELOW { 0.0 } else { v })
    }
    /// Widens to f64.
    fn to_f64(self) -> f64;
}

impl Real for f32 {
    const NAME: &'static str = "f32";
    const FLUSH_BELOW: f64 = 1e-18;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self as f64
    }
}

impl Real for f64 {
    const NAME: &'static str = "f64";
    const FLUSH_BELOW: f64 = 1e-150;
    #[inline]
    fn from_f64(v: f64) -> Self {
        v
    }
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
}

/// The factorization met a pivot that is not positive: the matrix is not (numerically)
/// positive definite in this precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPositiveDefinite {
    /// Row of the failing pivot.
    pub row: usize,
}

/// The lower triangle of a symmetric n×n matrix in square tiles; after [`factor`](Self::factor)
/// it holds the Cholesky factor L (K = L·Lᵀ).
#[derive(Debug)]
pub struct TiledLower<T> {
    n: usize,
    tile: usize,
    /// Tile (i, j), j ≤ i, at index i(i+1)/2 + j: `rows(i) × rows(j)`, column-major.
    tiles: Vec<RwLock<Vec<T>>>,
}

/// Index of tile (i, j), j ≤ i, in the packed lower-triangle order.
#[inline]
fn packed(i: usize, j: usize) -> usize {
    debug_assert!(j <= i);
    i * (i + 1) / 2 + j
}

impl<T: Real> TiledLower<T> {
    /// Bytes [`zeros`](Self::zeros) allocates for an n×n matrix in tiles of `tile` rows.
    pub fn bytes(n: usize, tile: usize) -> u64 {
        let full = (n / tile) as u64;
        let last = (n % tile) as u64;
        let t = tile as u64;
        // full×full tiles of the triangle, the last (short) tile row, and its diagonal tile.
        let entries = full * (full + 1) / 2 * t * t + full * last * t + last * last;
        entries * size_of::<T>() as u64
    }

    /// An all-zero matrix of order `n` in tiles of `tile` rows (`tile ≥ 1`). Fails (rather than
    /// aborting) if the allocator refuses.
    pub fn zeros(n: usize, tile: usize) -> anyhow::Result<Self> {
        assert!(tile > 0, "tile size must be positive");
        let nt = n.div_ceil(tile);
        let mut tiles = Vec::with_capacity(nt * (nt + 1) / 2);
        for i in 0..nt {
            for j in 0..=i {
                let len = Self::span(n, tile, i).len() * Self::span(n, tile, j).len();
                tiles.push(RwLock::new(super::memory::try_zeroed::<T>(len, "the kernel matrix tiles")?));
            }
        }
        Ok(Self { n, tile, tiles })
    }

    /// Copies the lower triangle of the dense symmetric `a` (tests, small problems).
    pub fn from_dense(a: MatRef<'_, T>, tile: usize) -> Self {
        assert_eq!(a.nrows(), a.ncols(), "from_dense: matrix must be square");
        let mut out = Self::zeros(a.nrows(), tile).expect("small matrix");
        out.par_tiles_mut().for_each(|(ri, rj, mut t)| {
            t.copy_from(a.submatrix(ri.start, rj.start, ri.len(), rj.len()));
        });
        out
    }

    /// Order of the matrix.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Rows per tile.
    pub fn tile(&self) -> usize {
        self.tile
    }

    /// Number of tile rows (= tile columns).
    pub fn num_tiles(&self) -> usize {
        self.n.div_ceil(self.tile)
    }

    fn span(n: usize, tile: usize, i: usize) -> Range<usize> {
        i * tile..((i + 1) * tile).min(n)
    }

    /// Matrix rows covered by tile row `i`.
    pub fn rows(&self, i: usize) -> Range<usize> {
        Self::span(self.n, self.tile, i)
    }

    /// Every stored tile as (rows, columns, mutable view), in parallel — to fill the matrix.
    /// Diagonal tiles are full squares; only their lower triangle is ever read.
    pub fn par_tiles_mut(&mut self) -> impl ParallelIterator<Item = (Range<usize>, Range<usize>, MatMut<'_, T>)> + '_ {
        let nt = self.num_tiles();
        let coords: Vec<(usize, usize)> = (0..nt).flat_map(|i| (0..=i).map(move |j| (i, j))).collect();
        let (n, tile) = (self.n, self.tile);
        self.tiles.par_iter_mut().zip(coords).map(move |(lock, (i, j))| {
            let (ri, rj) = (Self::span(n, tile, i), Self::span(n, tile, j));
            let buf = lock.get_mut().expect("tile lock poisoned");
            let view = MatMut::from_column_major_slice_mut(buf.as_mut_slice(), ri.len(), rj.len());
            (ri, rj, view)
        })
    }

    /// Runs `f` on a read view of tile (i, j), j ≤ i.
    fn with_tile<R>(&self, i: usize, j: usize, f: impl FnOnce(MatRef<'_, T>) -> R) -> R {
        let guard = self.tiles[packed(i, j)].read().expect("tile lock poisoned");
        f(MatRef::from_column_major_slice(guard.as_slice(), self.rows(i).len(), self.rows(j).len()))
    }

    /// Runs `f` on a write view of tile (i, j), j ≤ i.
    fn with_tile_mut<R>(&self, i: usize, j: usize, f: impl FnOnce(MatMut<'_, T>) -> R) -> R {
        let mut guard = self.tiles[packed(i, j)].write().expect("tile lock poisoned");
        let (r, c) = (self.rows(i).len(), self.rows(j).len());
        f(MatMut::from_column_major_slice_mut(guard.as_mut_slice(), r, c))
    }

    /// Floating-point operations of the factorization (≈ n³/3), the total of the progress
    /// reported by [`factor`](Self::factor).
    pub fn factor_flops(&self) -> u64 {
        let nt = self.num_tiles();
        let r: Vec<u64> = (0..nt).map(|i| self.rows(i).len() as u64).collect();
        let mut total = 0;
        for k in 0..nt {
            total += r[k] * r[k] * r[k] / 3;
            for i in k + 1..nt {
                total += r[i] * r[k] * r[k];
                for j in k + 1..=i {
                    total += if i == j { r[j] * r[j] * r[k] } else { 2 * r[i] * r[j] * r[k] };
                }
            }
        }
        total
    }

    /// Factors the matrix in place into its Cholesky factor L, parallel over tiles, calling
    /// `progress(flops)` as tile operations finish. `group` tile columns share one trailing
    /// update (see the module docs); `group = 1` is the plain right-looking algorithm.
    pub fn factor(&mut self, group: usize, progress: &(dyn Fn(u64) + Sync)) -> Result<(), NotPositiveDefinite> {
        let nt = self.num_tiles();
        let group = group.max(1);
        let this = &*self;
        let mut k0 = 0;
        while k0 < nt {
            let k1 = (k0 + group).min(nt);
            for k in k0..k1 {
                this.factor_diagonal(k, progress)?;
                (k + 1..nt).into_par_iter().for_each(|i| this.solve_panel_tile(i, k, progress));
                let panel: Vec<(usize, usize)> = (k + 1..k1).flat_map(|j| (j..nt).map(move |i| (i, j))).collect();
                panel.par_iter().for_each(|&(i, j)| this.update_tile(i, j, k..k + 1, progress));
            }
            let trailing: Vec<(usize, usize)> = (k1..nt).flat_map(|j| (j..nt).map(move |i| (i, j))).collect();
            trailing.par_iter().for_each(|&(i, j)| this.update_tile(i, j, k0..k1, progress));
            k0 = k1;
        }
        clear_upper_vector_state();
        Ok(())
    }

    /// L_kk = chol(A_kk) with faer's dense Cholesky (reads the lower triangle only).
    fn factor_diagonal(&self, k: usize, progress: &(dyn Fn(u64) + Sync)) -> Result<(), NotPositiveDefinite> {
        let r = self.rows(k).len();
        let result = self.with_tile_mut(k, k, |a| {
            let mut mem = MemBuffer::new(cholesky_in_place_scratch::<T>(r, Par::Seq, Default::default()));
            cholesky_in_place(a, LltRegularization::default(), Par::Seq, MemStack::new(&mut mem), Default::default())
        });
        progress((r * r * r / 3) as u64);
        result.map(|_| ()).map_err(|e| match e {
            faer::linalg::cholesky::llt::factor::LltError::NonPositivePivot { index } => {
                NotPositiveDefinite { row: k * self.tile + index }
            }
        })
    }

    /// A_ik = A_ik · L_kk⁻ᵀ (i > k): solves L_kk · A_ikᵀ = A_ikᵀ.
    fn solve_panel_tile(&self, i: usize, k: usize, progress: &(dyn Fn(u64) + Sync)) {
        self.with_tile(k, k, |l| {
            self.with_tile_mut(i, k, |a| solve_lower_triangular_in_place(l, a.transpose_mut(), Par::Seq));
        });
        let (ri, rk) = (self.rows(i).len() as u64, self.rows(k).len() as u64);
        progress(ri * rk * rk);
    }

    /// A_ij -= Σ_{k∈ks} A_ik·A_jkᵀ (j ≤ i); only the lower triangle when i = j.
    fn update_tile(&self, i: usize, j: usize, ks: Range<usize>, progress: &(dyn Fn(u64) + Sync)) {
        let minus_one = T::from_f64(-1.0);
        self.with_tile_mut(i, j, |mut a| {
            for k in ks.clone() {
                self.with_tile(i, k, |aik| {
                    if i == j {
                        triangular::matmul(
                            a.rb_mut(),
                            BlockStructure::TriangularLower,
                            Accum::Add,
                            aik,
                            BlockStructure::Rectangular,
                            aik.transpose(),
                            BlockStructure::Rectangular,
                            minus_one,
                            Par::Seq,
                        );
                    } else {
                        self.with_tile(j, k, |ajk| {
                            matmul(a.rb_mut(), Accum::Add, aik, ajk.transpose(), minus_one, Par::Seq)
                        });
                    }
                });
            }
        });
        let (ri, rj) = (self.rows(i).len() as u64, self.rows(j).len() as u64);
        let rk: u64 = ks.map(|k| self.rows(k).len() as u64).sum();
        progress(if i == j { rj * rj * rk } else { 2 * ri * rj * rk });
    }

    /// Solves L·Lᵀ·x = b in place (`rhs` is n × m, b on entry, x on exit), after
    /// [`factor`](Self::factor): a forward then a backward tile substitution, parallel over
    /// the tiles of each step.
    pub fn solve_in_place(&self, rhs: MatMut<'_, T>) {
        assert_eq!(rhs.nrows(), self.n, "solve_in_place: rhs has {} rows for order {}", rhs.nrows(), self.n);
        let nt = self.num_tiles();
        let minus_one = T::from_f64(-1.0);
        let mut blocks: Vec<MatMut<'_, T>> = Vec::with_capacity(nt);
        let mut rest = rhs;
        for i in 0..nt {
            let (head, tail) = rest.split_at_row_mut(self.rows(i).len());
            blocks.push(head);
            rest = tail;
        }
        // Forward: L·y = b.
        for k in 0..nt {
            self.with_tile(k, k, |l| solve_lower_triangular_in_place(l, blocks[k].rb_mut(), Par::Seq));
            let (head, tail) = blocks.split_at_mut(k + 1);
            let yk = head[k].rb();
            tail.par_iter_mut().enumerate().for_each(|(o, bi)| {
                self.with_tile(k + 1 + o, k, |lik| matmul(bi.rb_mut(), Accum::Add, lik, yk, minus_one, Par::Seq));
            });
        }
        // Backward: Lᵀ·x = y.
        for k in (0..nt).rev() {
            self.with_tile(k, k, |l| solve_upper_triangular_in_place(l.transpose(), blocks[k].rb_mut(), Par::Seq));
            let (head, tail) = blocks.split_at_mut(k);
            let xk = tail[0].rb();
            head.par_iter_mut().enumerate().for_each(|(i, bi)| {
                self.with_tile(k, i, |lki| matmul(bi.rb_mut(), Accum::Add, lki.transpose(), xk, minus_one, Par::Seq));
            });
        }
        clear_upper_vector_state();
    }

    /// The stored lower triangle as a dense matrix, zero above the diagonal (tests).
    pub fn to_dense_lower(&self) -> Mat<T> {
        let mut out = Mat::<T>::zeros(self.n, self.n);
        for i in 0..self.num_tiles() {
            for j in 0..=i {
                let (ri, rj) = (self.rows(i), self.rows(j));
                self.with_tile(i, j, |t| {
                    out.as_mut().submatrix_mut(ri.start, rj.start, ri.len(), rj.len()).copy_from(t)
                });
            }
        }
        for j in 0..self.n {
            for i in 0..j {
                out[(i, j)] = T::from_f64(0.0);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faer::Side;
    use rand::Rng;
    use rand_chacha::ChaCha8Rng;
    use rand_core::SeedableRng;

    /// A random SPD matrix B·Bᵀ/n + I/2 (condition number of a few tens).
    fn random_spd(n: usize, seed: u64) -> Mat<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let b = Mat::from_fn(n, n, |_, _| rng.random::<f64>() - 0.5);
        let mut a = &b * b.transpose() * (1.0 / n as f64);
        for i in 0..n {
            a[(i, i)] += 0.5;
        }
        a
    }

    #[test]
    fn packed_sizes() {
        for (n, tile) in [(10, 3), (9, 3), (1, 4), (100, 7), (64, 64), (65, 64)] {
            let m = TiledLower::<f64>::zeros(n, tile).unwrap();
            let stored: usize = m.tiles.iter().map(|t| t.read().unwrap().len()).sum();
            assert_eq!(TiledLower::<f64>::bytes(n, tile), stored as u64 * 8, "n={n} tile={tile}");
        }
    }

    #[test]
    fn matches_dense_faer_cholesky_f64() {
        for (n, tile, group) in
            [(1, 4, 1), (7, 3, 2), (50, 16, 1), (97, 16, 3), (130, 32, 4), (200, 64, 2), (64, 64, 4)]
        {
            let a = random_spd(n, n as u64);
            let want = a.llt(Side::Lower).unwrap().L().to_owned();
            let mut tiled = TiledLower::from_dense(a.as_ref(), tile);
            let done = std::sync::atomic::AtomicU64::new(0);
            tiled
                .factor(group, &|f| {
                    done.fetch_add(f, std::sync::atomic::Ordering::Relaxed);
                })
                .unwrap();
            assert_eq!(done.into_inner(), tiled.factor_flops());
            let got = tiled.to_dense_lower();
            let err = (&got - &want).norm_max();
            assert!(err < 1e-12, "n={n} tile={tile} group={group}: max |L - L_faer| = {err:e}");
        }
    }

    #[test]
    fn matches_dense_faer_cholesky_f32_and_solves() {
        let n = 150;
        let a = random_spd(n, 5);
        let a32 = Mat::<f32>::from_fn(n, n, |i, j| a[(i, j)] as f32);
        let want = a32.llt(Side::Lower).unwrap().L().to_owned();
        let mut tiled = TiledLower::from_dense(a32.as_ref(), 40);
        tiled.factor(2, &|_| {}).unwrap();
        assert!((&tiled.to_dense_lower() - &want).norm_max() < 1e-5);
        let x_true = Mat::<f64>::from_fn(n, 3, |i, j| ((i + 7 * j) as f64).cos());
        let b = &a * &x_true;
        let mut x = Mat::<f32>::from_fn(n, 3, |i, j| b[(i, j)] as f32);
        tiled.solve_in_place(x.as_mut());
        let err = (0..n)
            .flat_map(|i| (0..3).map(move |j| (i, j)))
            .map(|(i, j)| (x[(i, j)] as f64 - x_true[(i, j)]).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-4, "f32 solve error {err:e}");
    }

    #[test]
    fn solve_matches_dense_f64() {
        for (n, tile) in [(33, 8), (100, 100), (101, 25)] {
            let a = random_spd(n, 11);
            let mut tiled = TiledLower::from_dense(a.as_ref(), tile);
            tiled.factor(3, &|_| {}).unwrap();
            let b = Mat::<f64>::from_fn(n, 4, |i, j| ((i * 4 + j) as f64).sin());
            let mut x = b.clone();
            tiled.solve_in_place(x.as_mut());
            let resid = (&a * &x - &b).norm_max();
            assert!(resid < 1e-12, "n={n} tile={tile}: residual {resid:e}");
        }
    }

    #[test]
    fn reports_the_failing_pivot() {
        let n = 40;
        let mut a = random_spd(n, 3);
        // Make row/column 29 a copy of 28 with a smaller diagonal: (e28 − e29)ᵀ·A·(e28 − e29)
        // = −0.1, so the leading 29×29 block is still SPD and pivot 29 is negative.
        for j in 0..n {
            a[(29, j)] = a[(28, j)];
        }
        for i in 0..n {
            a[(i, 29)] = a[(i, 28)];
        }
        a[(29, 29)] = a[(28, 28)] - 0.1;
        let mut tiled = TiledLower::from_dense(a.as_ref(), 8);
        assert_eq!(tiled.factor(2, &|_| {}), Err(NotPositiveDefinite { row: 29 }));
    }

    #[test]
    fn upper_triangle_of_diagonal_tiles_is_never_read() {
        let n = 45;
        let a = random_spd(n, 9);
        let mut garbage = a.clone();
        for j in 0..n {
            for i in 0..j {
                garbage[(i, j)] = 1e30;
            }
        }
        let mut t1 = TiledLower::from_dense(a.as_ref(), 10);
        let mut t2 = TiledLower::from_dense(garbage.as_ref(), 10);
        t1.factor(2, &|_| {}).unwrap();
        t2.factor(2, &|_| {}).unwrap();
        assert_eq!(t1.to_dense_lower(), t2.to_dense_lower());
    }
}
