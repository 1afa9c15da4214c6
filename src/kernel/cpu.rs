//! Run-time CPU feature helpers shared by the kernel modules.
//!
//! They live apart from [`super::gram`] and [`super::matrix`] (and the solvers) so that every
//! module needing them depends on this leaf module only, never on each other.

/// Whether this CPU has the instructions of the exact int8 VNNI Gram path (AVX-512 F, BW and
/// VNNI; see [`super::gram`]). Always `false` off x86-64.
pub fn vnni_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Marks the upper halves of the vector registers clean (`vzeroupper`).
///
/// faer's x86 GEMM kernels (AVX-512) can return with the upper halves of the vector registers
/// dirty. Code compiled for baseline x86-64 — the elementwise loops of the kernel, glibc's
/// `exp` — then pays a state-transition penalty on every SSE instruction: measured on this
/// machine, `exp` after a faer GEMM took 123 ns instead of 3.6 ns. Call this after faer calls,
/// before scalar loops. (A no-op without AVX.)
#[inline]
pub fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the CPU supports AVX (checked just above), all `zeroupper` needs.
        unsafe { zeroupper() }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn zeroupper() {
    std::arch::x86_64::_mm256_zeroupper()
}
