//! The synchronisation primitives `slot.rs` is written against: std's here,
//! loom's in `tests/loom` (which compiles `slot.rs` against its own `sync`).
//! Only the cell differs in shape: loom's `UnsafeCell` is reached through
//! `with_mut`, so this one is too (and compiles to the plain pointer).

pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, Ordering};
pub(crate) use std::sync::Arc;

/// `std::cell::UnsafeCell` with loom's access API.
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a pointer to the value; the caller's token is what
    /// makes dereferencing it sound (see `slot.rs`).
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
