//! The process allocator of respack's binaries (respack-web, respackd, and xtask, where the
//! benchmarks run the store in-process): linking this crate makes mimalloc the global
//! allocator, and [`init`], called first thing in `main`, tunes it.
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
/// second. A sweep frees a batch's rows, statements and mails as the next is built; held for a
/// second they made respackd's peak RSS 90–104 MB at a million packs (its budget is 100 MB),
/// returned within 10 ms 72–79 MB, with no measurable change in speed (`cargo xtask bench
/// sweep`, 2026-12-01). Call it first thing in `main`; calling it again does no harm.
#[allow(unsafe_code)]
pub fn init() {
    // SAFETY: sets one of mimalloc's process-wide options, which it allows at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)]
    fn init_shortens_the_purge_delay_of_the_option_that_defaults_to_a_second() {
        // Only mimalloc 3's purge delay defaults to 1000 ms: the constant names the right option.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: reads a process-wide option.
            assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }, 1000);
        }
        init();
        // SAFETY: as above.
        assert_eq!(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) }, PURGE_DELAY_MS);
    }
}
