//! Keeping freed memory in the process. glibc's malloc serves blocks above its mmap threshold (128 KiB, raised
//! on the fly up to 32 MiB) with fresh mappings and trims the heap top as soon as 128 KiB are free there, so a
//! detection, which allocates the same tens of megabytes of activations for every image (a 1000-RoI box-head
//! input is 50 MB), gets them back from the kernel as zeroed pages each time: on a 320² Faster R-CNN ticket the
//! page clearing alone was a sixth of the profile. Raising both thresholds makes freed blocks reusable; peak
//! memory stays the same (the same blocks are reused), the process just does not hand them back between images.

/// Asks malloc to keep freed blocks for reuse (glibc); a no-op where the C library is another.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's tuning parameters; it is called before any thread starts.
    unsafe {
        // 1 GiB: blocks up to that come from the heap (glibc caps the threshold itself where it must).
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
