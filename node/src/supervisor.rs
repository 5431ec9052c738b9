//! Supervision of the node's critical tasks: fail-stop instead of a half-alive node.
//!
//! The consensus engine, the single block producer, the p2p service and the RPC server are
//! each needed for the node to do its job. If one of them panics, fails or simply ends while
//! the node is not shutting down, the node must not go on serving stale RPC: the
//! [`Supervisor`] logs one `error!` line naming the task and the panic message or error, and
//! resolves [`Supervisor::failed`], which `bttd node` and `bttd devnet` wait on beside ctrl-c;
//! they then stop the node and exit non-zero.
//!
//! Two kinds of task: those the supervisor spawns ([`Supervisor::spawn`]; their panics are
//! caught through the task's `JoinHandle`, and [`Supervisor::join`] waits for them on a clean
//! stop) and those it only watches ([`Supervisor::monitor`]: a future that resolves when a
//! service spawned elsewhere has stopped, e.g. the p2p swarm task or the RPC server; on a clean
//! stop the watcher is dropped because the node stops those services itself).

use std::fmt;
use std::future::Future;

use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle};

/// How a critical task ended while the node was not shutting down.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskFailure {
    #[error("critical task `{task}` panicked: {message}")]
    Panicked { task: &'static str, message: String },
    #[error("critical task `{task}` failed: {error}")]
    Failed { task: &'static str, error: String },
    #[error("critical task `{task}` stopped unexpectedly")]
    Ended { task: &'static str },
}

impl TaskFailure {
    /// The name of the task that failed.
    pub fn task(&self) -> &'static str {
        match self {
            TaskFailure::Panicked { task, .. }
            | TaskFailure::Failed { task, .. }
            | TaskFailure::Ended { task } => task,
        }
    }
}

/// Spawns and watches critical tasks; see the module docs.
pub struct Supervisor {
    /// True once the node is shutting down: tasks ending after that are expected.
    shutdown: watch::Receiver<bool>,
    /// The first failure (later ones are logged too, but this keeps the first).
    failure: watch::Sender<Option<TaskFailure>>,
    spawned: Vec<JoinHandle<()>>,
    monitors: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("spawned", &self.spawned.len())
            .field("monitors", &self.monitors.len())
            .field("failure", &*self.failure.borrow())
            .finish()
    }
}

impl Supervisor {
    /// `shutdown` turns true when the node is asked to stop.
    pub fn new(shutdown: watch::Receiver<bool>) -> Self {
        Self {
            shutdown,
            failure: watch::channel(None).0,
            spawned: Vec::new(),
            monitors: Vec::new(),
        }
    }

    /// Spawns a critical task. Its end before shutdown is a failure: a panic, an `Err`, or
    /// (for `Ok`) an unexpected stop.
    pub fn spawn<F, E>(&mut self, task: &'static str, future: F)
    where
        F: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + Send + 'static,
    {
        let inner = tokio::spawn(future);
        let watcher = self.watcher(task, async move {
            match inner.await {
                Ok(Ok(())) => TaskFailure::Ended { task },
                Ok(Err(error)) => TaskFailure::Failed {
                    task,
                    error: error.to_string(),
                },
                Err(join) => TaskFailure::Panicked {
                    task,
                    message: panic_message(join),
                },
            }
        });
        self.spawned.push(watcher);
    }

    /// Watches a service spawned elsewhere: `stopped` resolves when it has ended.
    pub fn monitor(
        &mut self,
        task: &'static str,
        stopped: impl Future<Output = ()> + Send + 'static,
    ) {
        let watcher = self.watcher(task, async move {
            stopped.await;
            TaskFailure::Ended { task }
        });
        self.monitors.push(watcher);
    }

    fn watcher(
        &self,
        task: &'static str,
        ended: impl Future<Output = TaskFailure> + Send + 'static,
    ) -> JoinHandle<()> {
        let shutdown = self.shutdown.clone();
        let failure = self.failure.clone();
        tokio::spawn(async move {
            let ended = ended.await;
            if *shutdown.borrow() {
                tracing::debug!(target: "bttd::node", task, "task ended during shutdown");
                return;
            }
            tracing::error!(target: "bttd::node", task, "{ended}; shutting the node down");
            failure.send_if_modified(|first| {
                if first.is_none() {
                    *first = Some(ended);
                    true
                } else {
                    false
                }
            });
        })
    }

    /// Resolves with the first failure of a critical task (never, if none fails).
    pub fn failed(&self) -> impl Future<Output = TaskFailure> + Send + 'static + use<> {
        let mut failure = self.failure.subscribe();
        async move {
            let first = match failure.wait_for(Option::is_some).await {
                Ok(first) => first.clone(),
                Err(_) => None,
            };
            match first {
                Some(first) => first,
                None => std::future::pending().await,
            }
        }
    }

    /// The first failure so far, if any.
    pub fn failure(&self) -> Option<TaskFailure> {
        self.failure.borrow().clone()
    }

    /// On a clean stop (after `shutdown` turned true): waits for the spawned tasks to finish
    /// and drops the monitors (the node stops the services they watch itself).
    pub async fn join(self) {
        for monitor in &self.monitors {
            monitor.abort();
        }
        for task in self.spawned {
            let _ = task.await;
        }
    }
}

/// The message a task panicked with (`panic!("...")` payloads are `&str` or `String`).
pub fn panic_message(error: JoinError) -> String {
    if !error.is_panic() {
        return "cancelled".to_string();
    }
    let payload = error.into_panic();
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_string()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn first_failure(supervisor: &Supervisor) -> TaskFailure {
        tokio::time::timeout(Duration::from_secs(5), supervisor.failed())
            .await
            .expect("a failure is reported")
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported_with_its_name_and_message() {
        let (_tx, rx) = watch::channel(false);
        let mut supervisor = Supervisor::new(rx);
        supervisor.spawn("consensus", async {
            if true {
                panic!("decided block 7 does not execute");
            }
            Ok::<(), String>(())
        });
        let failure = first_failure(&supervisor).await;
        assert_eq!(
            failure,
            TaskFailure::Panicked {
                task: "consensus",
                message: "decided block 7 does not execute".into()
            }
        );
        assert_eq!(
            failure.to_string(),
            "critical task `consensus` panicked: decided block 7 does not execute"
        );
    }

    #[tokio::test]
    async fn an_error_or_an_unexpected_end_is_a_failure() {
        let (_tx, rx) = watch::channel(false);
        let mut supervisor = Supervisor::new(rx);
        supervisor.spawn("producer", async { Err::<(), _>("disk full") });
        assert_eq!(
            first_failure(&supervisor).await,
            TaskFailure::Failed {
                task: "producer",
                error: "disk full".into()
            }
        );

        let (_tx, rx) = watch::channel(false);
        let mut supervisor = Supervisor::new(rx);
        supervisor.monitor("p2p network", async {});
        assert_eq!(
            first_failure(&supervisor).await,
            TaskFailure::Ended {
                task: "p2p network"
            }
        );
    }

    #[tokio::test]
    async fn tasks_ending_on_shutdown_are_not_failures_and_join_waits_for_them() {
        let (tx, rx) = watch::channel(false);
        let mut supervisor = Supervisor::new(rx.clone());
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = finished.clone();
        let mut stop = rx;
        supervisor.spawn("producer", async move {
            let _ = stop.changed().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok::<(), String>(())
        });
        supervisor.monitor("rpc", std::future::pending());
        let failed = supervisor.failed();
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            let pending = supervisor.failure();
            assert_eq!(pending, None);
            supervisor.join().await;
        })
        .await
        .expect("join returns");
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
        assert!(
            tokio::time::timeout(Duration::from_millis(100), failed)
                .await
                .is_err(),
            "no failure on a clean stop"
        );
    }
}
