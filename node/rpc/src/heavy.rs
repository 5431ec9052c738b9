//! The pool that runs heavy requests: eth_call, eth_estimateGas, eth_getLogs (and
//! eth_getFilterLogs), debug_trace* and channel_listBy*.
//!
//! Why a pool of its own: jsonrpsee's `blocking` methods run on tokio's blocking pool, which
//! the node shares with everything else that blocks (RocksDB reads of sync and the engine,
//! execution, fsync) and which grows to 512 threads, so a client could occupy the machine
//! with a few hundred simultaneous traces. Here heavy requests run on `max-concurrent-heavy`
//! threads of their own; at most [`QUEUE_PER_THREAD`] per thread wait behind them, and a
//! request beyond that is refused at once (-32005, "too many heavy requests"), so the node
//! keeps serving everything else and a client learns to back off.
//!
//! A panicking job is a bug of ours, never the client's: the panic hook reports it, the
//! worker thread stops and the caller gets an internal error.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::error::{RpcResult, internal, limit_exceeded};

/// Requests that may wait for a thread, per thread.
pub(crate) const QUEUE_PER_THREAD: usize = 8;

type Job = Box<dyn FnOnce() + Send>;

/// Threads running heavy requests; see the module docs.
#[derive(Debug)]
pub(crate) struct HeavyPool {
    jobs: SyncSender<Job>,
    threads: usize,
}

impl HeavyPool {
    /// Starts `threads` (at least 1) worker threads; they exit when the pool is dropped.
    pub(crate) fn start(threads: usize) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (jobs, queue) = sync_channel::<Job>(threads.saturating_mul(QUEUE_PER_THREAD));
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("rpc-heavy-{i}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Self { jobs, threads })
    }

    /// Runs `job` on a pool thread, or refuses it when the pool and its queue are full.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> RpcResult<T> + Send + 'static,
    ) -> RpcResult<T> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone (connection closed); nothing to tell then.
            let _ = answer.send(job());
        });
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("bttd_rpc_heavy_refused_total").increment(1);
                return Err(limit_exceeded(format!(
                    "too many heavy requests (eth_call, eth_estimateGas, eth_getLogs, traces, channel lists) in progress: {} running and {} waiting (max-concurrent-heavy); retry later",
                    self.threads,
                    self.threads.saturating_mul(QUEUE_PER_THREAD)
                )));
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(internal("the heavy-request pool has stopped"));
            }
        }
        answered
            .await
            .map_err(|_| internal("a heavy request failed (see the node's log)"))?
    }
}

/// A worker: runs jobs until the pool is dropped.
fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        // Hold the lock only to take a job, never while running it.
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            // Another worker panicked while holding the lock (it cannot: recv does not panic).
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[tokio::test]
    async fn runs_jobs_and_refuses_beyond_the_queue() {
        let pool = Arc::new(HeavyPool::start(1).unwrap());
        assert_eq!(pool.run(|| Ok(41 + 1)).await.unwrap(), 42);

        // Occupy the only thread, fill its queue, and the next request is refused.
        let release = Arc::new(Barrier::new(2));
        let started = Arc::new(Barrier::new(2));
        let blocker = {
            let (pool, release, started) = (pool.clone(), release.clone(), started.clone());
            tokio::spawn(async move {
                pool.run(move || {
                    started.wait();
                    release.wait();
                    Ok(())
                })
                .await
            })
        };
        tokio::task::spawn_blocking({
            let started = started.clone();
            move || started.wait()
        })
        .await
        .unwrap();
        let waiting: Vec<_> = (0..QUEUE_PER_THREAD)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.run(move || Ok(i)).await })
            })
            .collect();
        // One yield of this (current-thread) test lets every spawned request reach the queue.
        tokio::task::yield_now().await;
        let refused = pool.run(|| Ok(0)).await.unwrap_err();
        assert_eq!(refused.code(), -32005);
        assert!(
            refused.message().contains("max-concurrent-heavy"),
            "{refused:?}"
        );

        tokio::task::spawn_blocking(move || release.wait())
            .await
            .unwrap();
        blocker.await.unwrap().unwrap();
        for (i, w) in waiting.into_iter().enumerate() {
            assert_eq!(w.await.unwrap().unwrap(), i);
        }
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_internal_error() {
        let pool = HeavyPool::start(2).unwrap();
        let err = pool
            .run::<()>(|| panic!("a bug of ours"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), -32603);
        // The other thread still serves.
        assert_eq!(pool.run(|| Ok(7)).await.unwrap(), 7);
    }
}
