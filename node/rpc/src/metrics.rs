//! Counts calls per method (`bttd_rpc_calls_total{method}`), batch members included. Names
//! that are not registered methods are counted as "unknown" so a client cannot grow the
//! label set without bound.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::types::Request;

#[derive(Debug, Clone)]
pub(crate) struct CallMetrics<S> {
    inner: S,
    known: Arc<HashSet<String>>,
}

impl<S> CallMetrics<S> {
    pub fn new(inner: S, known: Arc<HashSet<String>>) -> Self {
        Self { inner, known }
    }

    fn count(&self, method: &str) {
        let label = if self.known.contains(method) {
            method.to_owned()
        } else {
            "unknown".to_owned()
        };
        metrics::counter!("bttd_rpc_calls_total", "method" => label).increment(1);
    }
}

impl<S> RpcServiceT for CallMetrics<S>
where
    S: RpcServiceT + Send + Sync + Clone + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(
        &self,
        request: Request<'a>,
    ) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        self.count(request.method_name());
        let inner = self.inner.clone();
        async move { inner.call(request).await }
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        for entry in batch.iter().flatten() {
            if let BatchEntry::Call(request) = entry {
                self.count(request.method_name());
            }
        }
        let inner = self.inner.clone();
        async move { inner.batch(batch).await }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        let inner = self.inner.clone();
        async move { inner.notification(n).await }
    }
}
