//! Caps glibc's malloc arenas at one per core (at least two) unless `MALLOC_ARENA_MAX` says
//! otherwise.
//!
//! Why: glibc gives every thread that contends for the heap an arena of its own, up to eight per
//! core, and memory freed in one arena is reused only by that arena. RocksDB's background
//! threads, tokio's workers and the blocking pool allocate and free in different arenas, so the
//! freed pieces pile up: on the 30-minute soak the node's memory outside RocksDB's cache grew
//! 44 → 52 MiB between minutes 5 and 8.5 with glibc's default, and stayed at 41 → 39 MiB with
//! two arenas (docs/benchmarks.md). The cap must be set before the first threads start.

/// Sets the cap; call first thing in `main`. The crate's one `unsafe`: glibc's tunable has no
/// safe wrapper.
#[allow(unsafe_code)]
pub fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let arenas = cores.clamp(2, 8) as libc::c_int;
        // SAFETY: mallopt only changes a tunable of the allocator; no thread allocates
        // concurrently this early, and glibc documents M_ARENA_MAX as settable at any time.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
