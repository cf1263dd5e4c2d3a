//! `aya::Pod` for the types kernel and userspace exchange through maps,
//! with the `user` feature only (the kernel side has no aya).

/// Declares types as plain old data for aya. Every type given must be
/// `#[repr(C)]` with explicit padding, so that every bit pattern is a
/// valid value.
macro_rules! impl_pod {
    ($($t:ty),+ $(,)?) => {
        $(
            #[cfg(feature = "user")]
            // SAFETY: repr(C), padding explicit, every bit pattern valid.
            unsafe impl aya::Pod for $t {}
        )+
    };
}

pub(crate) use impl_pod;
