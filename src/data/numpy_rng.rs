//! A bit-exact re-implementation of numpy's legacy `np.random.RandomState`
//! stream (MT19937), restricted to the calls the label-corruption demo makes.
//!
//! The PyTorch demo we reproduce corrupts labels with
//! `np.random.RandomState(12345)`, `rng.rand(n)` and `rng.choice(k, m)`.
//! To obtain the very same corrupted labels (and therefore comparable
//! experiments) we must replay numpy's legacy generator bit for bit:
//!
//! * seeding with an integer is Matsumoto–Nishimura `init_genrand`
//!   (numpy's `mt19937_seed`), *not* `init_by_array` and *not* the
//!   `SeedSequence` seeding of the modern `np.random.MT19937`;
//! * `rand` is `genrand_res53`: two 32-bit draws `a`, `b` combined as
//!   `((a >> 5) * 2^26 + (b >> 6)) / 2^53`;
//! * `randint(0, high)` (and hence `choice(high, size)` with `replace=True`,
//!   `p=None`) uses legacy *masked rejection sampling* on 32-bit draws:
//!   draw `next_u32() & mask` until the value is `<= high - 1`, where `mask`
//!   is the smallest all-ones bit pattern covering `high - 1`.
//!
//! Everything here was checked against numpy 2.4.6 (see the unit tests and
//! `tools/numpy_labels.py`).

/// Number of 32-bit words in the MT19937 state.
const N: usize = 624;
/// MT19937 shift offset.
const M: usize = 397;
/// MT19937 twist matrix constant.
const MATRIX_A: u32 = 0x9908_b0df;
/// Most significant bit of a word.
const UPPER_MASK: u32 = 0x8000_0000;
/// Low 31 bits of a word.
const LOWER_MASK: u32 = 0x7fff_ffff;

/// numpy's legacy `RandomState` generator (MT19937 with `init_genrand`
/// seeding).
///
/// It exists so that data-set label corruption reproduces the Python demo
/// bit for bit; it is not meant as a general-purpose RNG (use the crate's
/// ChaCha generators for that).
#[derive(Clone)]
pub struct NumpyRandomState {
    /// The 624-word Mersenne Twister state.
    state: [u32; N],
    /// Index of the next word of `state` to temper and return; `N` means the
    /// state must be regenerated first.
    pos: usize,
}

impl std::fmt::Debug for NumpyRandomState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The full 624-word state is noise in debug output.
        f.debug_struct("NumpyRandomState").field("pos", &self.pos).finish_non_exhaustive()
    }
}

impl NumpyRandomState {
    /// Creates the generator numpy builds for `np.random.RandomState(seed)`
    /// with an integer seed.
    ///
    /// numpy accepts integer seeds in `[0, 2^32 - 1]` and feeds them to
    /// `init_genrand`, which is what this does, so every `u32` seed maps to
    /// the same stream as in numpy.
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; N];
        state[0] = seed;
        for i in 1..N {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(i as u32);
        }
        Self { state, pos: N }
    }

    /// Regenerates the whole state block (the MT19937 "twist").
    fn twist(&mut self) {
        let mt = &mut self.state;
        for i in 0..N {
            let y = (mt[i] & UPPER_MASK) | (mt[(i + 1) % N] & LOWER_MASK);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            mt[i] = mt[(i + M) % N] ^ (y >> 1) ^ mag;
        }
        self.pos = 0;
    }

    /// Returns the next raw 32-bit MT19937 output (numpy's `next_uint32`).
    ///
    /// This is the primitive every other draw is built from; it equals
    /// `RandomState(seed).randint(0, 2**32, dtype=np.uint32)` drawn in order.
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= N {
            self.twist();
        }
        let mut y = self.state[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Returns one uniform double in `[0, 1)` exactly like numpy's legacy
    /// `rand()` / `random_sample()` (53-bit `genrand_res53`).
    ///
    /// Consumes two 32-bit outputs: `a >> 5` supplies the high 27 bits and
    /// `b >> 6` the low 26 bits of the 53-bit mantissa.
    pub fn random_f64(&mut self) -> f64 {
        let a = self.next_u32() >> 5;
        let b = self.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) / 9_007_199_254_740_992.0
    }

    /// Returns one integer uniform in `[0, high)` exactly like numpy's legacy
    /// `randint(0, high)` with the default `int64` dtype.
    ///
    /// numpy's bulk `randint(0, high, size=k)` and `choice(high, k)` draw
    /// their values one after another with this very procedure (verified
    /// against numpy: no buffering differs for 32-bit ranges), so calling
    /// this `k` times reproduces them. The algorithm is masked rejection
    /// sampling: with `rng = high - 1` and `mask` the smallest `2^j - 1 >=
    /// rng`, draw `next_u32() & mask` until it is `<= rng`.
    ///
    /// Special case mirrored from numpy: `high == 1` returns 0 *without
    /// consuming* any output.
    ///
    /// # Panics
    ///
    /// Panics if `high == 0` (numpy raises `ValueError: high <= 0`).
    pub fn randint_below(&mut self, high: u32) -> u32 {
        assert!(high > 0, "randint_below: high must be positive (numpy: high <= 0)");
        let rng = high - 1;
        if rng == 0 {
            return 0;
        }
        let mask = gen_mask(rng);
        loop {
            let value = self.next_u32() & mask;
            if value <= rng {
                return value;
            }
        }
    }
}

/// Smallest bit mask of the form `2^j - 1` that is `>= max` (numpy's
/// `gen_mask`), used by the masked rejection sampler.
fn gen_mask(max: u32) -> u32 {
    let mut mask = max;
    mask |= mask >> 1;
    mask |= mask >> 2;
    mask |= mask >> 4;
    mask |= mask >> 8;
    mask |= mask >> 16;
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    // All reference values below were produced with numpy 2.4.6, e.g.
    // `np.random.RandomState(5489).randint(0, 2**32, size=5, dtype=np.uint32)`.

    #[test]
    fn raw_outputs_seed_5489() {
        let mut r = NumpyRandomState::new(5489);
        let got: Vec<u32> = (0..5).map(|_| r.next_u32()).collect();
        assert_eq!(got, [3499211612, 581869302, 3890346734, 3586334585, 545404204]);
    }

    #[test]
    fn raw_outputs_seed_12345() {
        let mut r = NumpyRandomState::new(12345);
        let got: Vec<u32> = (0..5).map(|_| r.next_u32()).collect();
        assert_eq!(got, [3992670690, 3823185381, 1358822685, 561383553, 789925284]);
    }

    #[test]
    fn raw_outputs_extreme_seeds() {
        let mut r = NumpyRandomState::new(0);
        let got: Vec<u32> = (0..5).map(|_| r.next_u32()).collect();
        assert_eq!(got, [2357136044, 2546248239, 3071714933, 3626093760, 2588848963]);
        let mut r = NumpyRandomState::new(u32::MAX);
        let got: Vec<u32> = (0..5).map(|_| r.next_u32()).collect();
        assert_eq!(got, [419326371, 479346978, 3918654476, 2416749639, 3388880820]);
    }

    #[test]
    fn rand_matches_numpy() {
        // np.random.RandomState(s).rand(3), printed with repr (round-trips exactly).
        let mut r = NumpyRandomState::new(12345);
        let got: Vec<f64> = (0..3).map(|_| r.random_f64()).collect();
        assert_eq!(got, [0.9296160928171479, 0.3163755545817859, 0.18391881167709445]);
        let mut r = NumpyRandomState::new(5489);
        let got: Vec<f64> = (0..3).map(|_| r.random_f64()).collect();
        assert_eq!(got, [0.8147236863931789, 0.9057919370756192, 0.12698681629350606]);
    }

    #[test]
    fn randint_matches_numpy() {
        // np.random.RandomState(12345).randint(0, 10, size=10)
        let mut r = NumpyRandomState::new(12345);
        let got: Vec<u32> = (0..10).map(|_| r.randint_below(10)).collect();
        assert_eq!(got, [2, 5, 1, 4, 9, 5, 2, 1, 6, 1]);
        // np.random.RandomState(5489).randint(0, 10, size=10)
        let mut r = NumpyRandomState::new(5489);
        let got: Vec<u32> = (0..10).map(|_| r.randint_below(10)).collect();
        assert_eq!(got, [6, 9, 5, 1, 3, 5, 4, 0, 7, 4]);
    }

    #[test]
    fn choice_matches_numpy() {
        // np.random.RandomState(12345).choice(256, 10) and .choice(100, 10)
        let mut r = NumpyRandomState::new(12345);
        let got: Vec<u32> = (0..10).map(|_| r.randint_below(256)).collect();
        assert_eq!(got, [226, 229, 29, 129, 164, 169, 254, 126, 101, 34]);
        let mut r = NumpyRandomState::new(12345);
        let got: Vec<u32> = (0..10).map(|_| r.randint_below(100)).collect();
        assert_eq!(got, [98, 29, 1, 36, 41, 34, 29, 1, 59, 14]);
    }

    #[test]
    fn widest_range_matches_numpy() {
        // np.random.RandomState(12345).randint(0, 2**32 - 1, size=3)
        let mut r = NumpyRandomState::new(12345);
        let got: Vec<u32> = (0..3).map(|_| r.randint_below(u32::MAX)).collect();
        assert_eq!(got, [3992670690, 3823185381, 1358822685]);
    }

    #[test]
    fn high_one_consumes_nothing() {
        // numpy: RandomState(3).choice(1, 5) leaves the stream untouched.
        let mut a = NumpyRandomState::new(3);
        for _ in 0..5 {
            assert_eq!(a.randint_below(1), 0);
        }
        let mut b = NumpyRandomState::new(3);
        assert_eq!(a.next_u32(), b.next_u32());
        assert_eq!(b.next_u32(), a.next_u32());
    }

    #[test]
    fn state_regenerates_past_one_block() {
        // Crossing the 624-word boundary many times must keep agreeing with
        // numpy: np.random.RandomState(5489).randint(0, 2**32, size=10000,
        // dtype=np.uint32)[-1] == 4123659995 (also the C++ std::mt19937 check).
        let mut r = NumpyRandomState::new(5489);
        let mut last = 0;
        for _ in 0..10_000 {
            last = r.next_u32();
        }
        assert_eq!(last, 4123659995);
    }

    #[test]
    fn mask_is_smallest_cover() {
        assert_eq!(gen_mask(1), 1);
        assert_eq!(gen_mask(9), 15);
        assert_eq!(gen_mask(255), 255);
        assert_eq!(gen_mask(256), 511);
        assert_eq!(gen_mask(u32::MAX - 1), u32::MAX);
    }
}
