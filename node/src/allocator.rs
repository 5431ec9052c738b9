//! The process's allocator: jemalloc, for Rust and for RocksDB's C++ alike (its `malloc` is
//! the process's `malloc`), set to hand freed memory back to the kernel within a second.
//!
//! Why not glibc's malloc: RocksDB's block cache evicts and refills blocks of a few KiB all the
//! time, from threads that glibc puts in different arenas, and glibc returns free memory to the
//! kernel only from the top of a heap. On the 30-minute soak (docs/benchmarks.md, issue 11) the
//! node's resident memory kept rising with every owner of memory within its bound: capping the
//! arenas, fixing the mmap threshold and calling `malloc_trim` every 10 s slowed that to about
//! 0.4 MiB a minute, half of it free memory held between live chunks, but did not stop it.
//! jemalloc sorts allocations into size classes within page-aligned slabs, so freed memory comes
//! back as whole pages, and its background thread returns them on a decay curve without waiting
//! for the next allocation. With it the soak's RSS stayed flat from minute 10 to 30 of the load
//! (slope -0.01 MiB a minute). RocksDB's own docs recommend it, and reth ships with it.
//!
//! The options:
//! - `dirty_decay_ms:1000`: freed pages leave within about a second (jemalloc's default: 10 s).
//! - `muzzy_decay_ms:0`: purged pages are released at once (`MADV_DONTNEED`), not lazily with
//!   `MADV_FREE`, whose pages still count as resident until the kernel is short of memory.
//! - `oversize_threshold:131072`: requests of 128 KiB or more (compaction's read-ahead and
//!   write buffers, large memtable blocks) come from an arena that returns them as soon as they
//!   are freed, as glibc's mmap threshold did. Without it, samples of the soak's RSS 30 s
//!   apart differed by up to 6 MiB as compactions came and went; with it, by up to 4.
//!
//! `MALLOC_CONF` in the environment is read after these and overrides them.

#![allow(unsafe_code)]

use std::ffi::c_char;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, which it reads at its first allocation, before `main`.
// SAFETY: jemalloc reads this symbol (unprefixed: the crate's `malloc` is the process's) once,
// as a NUL-terminated string that lives for the whole process.
#[unsafe(no_mangle)]
#[allow(non_upper_case_globals)]
static malloc_conf: Option<&'static c_char> = Some(unsafe {
    &*c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,oversize_threshold:131072"
        .as_ptr()
});
