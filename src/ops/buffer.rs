//! Output buffers that a kernel writes completely before anything reads them.
//!
//! Zero-filling a fresh output first would cost one more pass over memory per operation (about
//! a tenth of a WRN step), while creating `&mut [f32]` over uninitialised memory is undefined
//! behaviour in Rust. So outputs start as `MaybeUninit<f32>`, kernels write them through raw
//! pointers or `MaybeUninit::write`, and [`assume_init`] turns the finished buffer into a
//! `Vec<f32>`.

use std::mem::{ManuallyDrop, MaybeUninit};

/// A slice of output not yet written.
pub type Uninit = [MaybeUninit<f32>];

/// A buffer of `len` unwritten floats.
pub fn uninit(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    // SAFETY: MaybeUninit<f32> needs no initialisation.
    unsafe { v.set_len(len) };
    v
}

/// The finished buffer as floats.
///
/// # Safety
/// The caller must guarantee that every element of `buffer` has been written.
pub unsafe fn assume_init(buffer: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut buffer = ManuallyDrop::new(buffer);
    // SAFETY: same allocation, layout and length; MaybeUninit<f32> has f32's layout, and the
    // caller guarantees every element is initialised.
    unsafe { Vec::from_raw_parts(buffer.as_mut_ptr().cast::<f32>(), buffer.len(), buffer.capacity()) }
}

/// Writes zeros over `out` and returns it as initialised floats (for kernels that accumulate).
pub fn zeroed(out: &mut Uninit) -> &mut [f32] {
    for x in out.iter_mut() {
        x.write(0.0);
    }
    // SAFETY: every element was just written.
    unsafe { assume_init_mut(out) }
}

/// A fully written slice as floats.
///
/// # Safety
/// The caller must guarantee that every element of `out` has been written.
pub unsafe fn assume_init_mut(out: &mut Uninit) -> &mut [f32] {
    // SAFETY: MaybeUninit<f32> has f32's layout; the caller guarantees initialisation.
    unsafe { &mut *(out as *mut Uninit as *mut [f32]) }
}
