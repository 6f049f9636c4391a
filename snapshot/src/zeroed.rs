//! Guest memory buffers: zeroed, allocated fallibly, and not touched until used.
//!
//! Why not `try_reserve` + `resize`: that writes every byte, so a snapshot that claims (or
//! a VM that really has) gigabytes of mostly-zero memory would cost that much RAM and time
//! before a single page is read. `alloc_zeroed` gets pages the kernel zero-fills on first
//! touch, and a null return is an error instead of an abort.

/// A zero-filled buffer of `len` bytes, or `None` if the allocator refused.
pub fn zeroed_buffer(len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(len).ok()?;
    // SAFETY: `layout` has a non-zero size (len > 0), as `alloc_zeroed` requires.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `ptr` comes from the global allocator with exactly the layout of a `[u8]` of
    // `len` elements (alignment 1), all `len` bytes are initialised (zeroed), and length ==
    // capacity == len, so `Vec` may own and later free it with that same layout.
    Some(unsafe { Vec::from_raw_parts(ptr, len, len) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn buffers_are_zero_and_the_right_size() {
        for len in [0, 1, 4096, 3 << 20] {
            let b = super::zeroed_buffer(len).expect("small allocations succeed");
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn an_impossible_size_is_refused_not_aborted() {
        assert!(super::zeroed_buffer(usize::MAX).is_none());
    }
}
