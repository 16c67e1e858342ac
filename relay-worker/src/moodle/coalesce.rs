//! Coalescing lookups: concurrent requests for the same Moodle function are
//! answered by one call with many ids (up to `batch_max`, gathered for at most
//! `batch_wait_ms`), so a burst of 2,000 user events costs 2,000 / batch_max
//! calls instead of 2,000.
//!
//! A [`Coalescer`] owns a background task per lookup kind. Callers
//! [`Coalescer::lookup`] an id and get that id's row (or `None` when Moodle
//! no longer has it, e.g. a deleted user), or the call's error.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::error::{CallError, MoodleError};

/// One id's answer.
pub type Answer = Result<Option<Value>, CallError>;

/// One batched call in progress: the rows Moodle gave (each with an `id`
/// field) or the call's error.
pub type BatchFuture = Pin<Box<dyn Future<Output = Result<Vec<Value>, CallError>> + Send>>;

/// Performs one batched call for the given ids.
pub type BatchCall = Arc<dyn Fn(Vec<i64>) -> BatchFuture + Send + Sync>;

struct Request {
    id: i64,
    reply: oneshot::Sender<Answer>,
}

/// Gathers lookups of one kind into batched calls.
#[derive(Clone)]
pub struct Coalescer {
    requests: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl Coalescer {
    /// Starts the batching task; it ends when every handle is dropped.
    pub fn start(call: BatchCall, batch_max: usize, batch_wait: Duration) -> Coalescer {
        let (tx, rx) = mpsc::channel(batch_max.max(1) * 4);
        tokio::spawn(run(rx, call, batch_max.max(1), batch_wait));
        Coalescer { requests: tx }
    }

    /// The row of `id`, `None` if Moodle has none.
    pub async fn lookup(&self, id: i64) -> Answer {
        let (reply, answer) = oneshot::channel();
        let stopped = || {
            Err(CallError::Moodle(MoodleError::Connect(
                "the lookup task has stopped".into(),
            )))
        };
        if self.requests.send(Request { id, reply }).await.is_err() {
            return stopped();
        }
        answer.await.unwrap_or_else(|_| stopped())
    }
}

async fn run(
    mut rx: mpsc::Receiver<Request>,
    call: BatchCall,
    batch_max: usize,
    batch_wait: Duration,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + batch_wait;
        while batch.len() < batch_max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(request)) => batch.push(request),
                Ok(None) | Err(_) => break,
            }
        }
        // A lookup whose event went back to the queue (its site paused) is
        // not asked for.
        batch.retain(|r| !r.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let mut ids: Vec<i64> = batch.iter().map(|r| r.id).collect();
        ids.sort_unstable();
        ids.dedup();
        // One call at a time per kind: the throttle inside `call` spaces them anyway.
        let result = call(ids).await;
        match result {
            Ok(rows) => {
                let by_id: HashMap<i64, Value> = rows
                    .into_iter()
                    .filter_map(|row| row.get("id").and_then(Value::as_i64).map(|id| (id, row)))
                    .collect();
                for request in batch {
                    let _ = request.reply.send(Ok(by_id.get(&request.id).cloned()));
                }
            }
            Err(error) => {
                for request in batch {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;

    fn recording(calls: Arc<Mutex<Vec<Vec<i64>>>>, fail: bool) -> BatchCall {
        Arc::new(move |ids: Vec<i64>| {
            let calls = calls.clone();
            Box::pin(async move {
                calls
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(ids.clone());
                if fail {
                    return Err(CallError::Moodle(MoodleError::Http {
                        status: 503,
                        retry_after: None,
                    }));
                }
                // Moodle leaves out ids it does not know (here: 13).
                Ok(ids
                    .into_iter()
                    .filter(|id| *id != 13)
                    .map(|id| json!({"id": id}))
                    .collect())
            })
        })
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_lookups_share_one_call_per_batch() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Coalescer::start(
            recording(calls.clone(), false),
            50,
            Duration::from_millis(200),
        );
        let lookups: Vec<_> = (1..=120)
            .map(|id| {
                let c = c.clone();
                tokio::spawn(async move { c.lookup(id).await })
            })
            .collect();
        for (i, task) in lookups.into_iter().enumerate() {
            let answer = task
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{e}"));
            let id = i as i64 + 1;
            if id == 13 {
                assert_eq!(answer, None, "an unknown id is not an error");
            } else {
                assert_eq!(answer, Some(json!({"id": id})));
            }
        }
        let calls = calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(
            calls.len(),
            3,
            "120 ids in batches of at most 50: {calls:?}"
        );
        assert!(calls.iter().all(|c| c.len() <= 50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_lookup_waits_at_most_the_batch_wait() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Coalescer::start(
            recording(calls.clone(), false),
            50,
            Duration::from_millis(200),
        );
        let started = tokio::time::Instant::now();
        assert!(c.lookup(7).await.is_ok());
        assert!(started.elapsed() <= Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_call_fails_every_lookup_in_it() {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = Coalescer::start(recording(calls, true), 50, Duration::from_millis(10));
        let (a, b) = tokio::join!(c.lookup(1), c.lookup(2));
        assert!(matches!(
            a,
            Err(CallError::Moodle(MoodleError::Http { status: 503, .. }))
        ));
        assert!(matches!(
            b,
            Err(CallError::Moodle(MoodleError::Http { status: 503, .. }))
        ));
    }
}
