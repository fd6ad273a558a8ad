//! The process allocator of respack's binaries (respack-web, respackd, and xtask, where the
//! benchmarks run the store in-process): linking this crate (`use respack_allocator as _;`)
//! makes mimalloc the global allocator; respackd also calls [`return_freed_memory_promptly`].
//!
//! mimalloc serves Rust's allocations and, through its `override` feature, those of the C code
//! linked in (the bundled SQLite): with glibc's malloc, allocation was about a quarter of the
//! CPU time of a sweep batch or a usage group (`cargo xtask bench sweep|deduct`, README
//! Performance).

use std::ffi::c_long;

use libmimalloc_sys::mi_option_t;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc 3's `mi_option_purge_delay` (its position in `mi_option_e`, `mimalloc.h`; the Rust
/// bindings name no constant for it).
const MI_OPTION_PURGE_DELAY: mi_option_t = 15;

/// How long freed memory stays committed before mimalloc returns it to the OS.
const PURGE_DELAY_MS: c_long = 10;

/// Returns freed memory to the OS within [`PURGE_DELAY_MS`] instead of mimalloc 3's default
/// second: for respackd, whose RSS has a budget (100 MB). A sweep frees a batch's rows,
/// statements and mails as it builds the next; held for a second they made the peak RSS 90–104
/// MB at a million packs, returned within 10 ms 72–79 MB, the sweep's speed unchanged within the
/// noise (`cargo xtask bench sweep`, 2026-12-01). Not for respack-web: the usage path, which
/// frees a group's rows as fast, recorded ~9 % fewer records per second with it. Safe to call
/// at any time, and again.
#[allow(unsafe_code)]
pub fn return_freed_memory_promptly() {
    // SAFETY: sets one of mimalloc's process-wide options, which it allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn the_purge_delay_that_defaults_to_a_second_is_shortened() {
        // Only mimalloc 3's purge delay defaults to 1000 ms: the constant names the right option.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads a process-wide option.
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000);
        }
        return_freed_memory_promptly();
        // SAFETY: as above.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }, PURGE_DELAY_MS);
    }
}
