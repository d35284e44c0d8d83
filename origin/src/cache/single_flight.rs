//! Single flight: concurrent misses on one key share one computation.
//!
//! The computation runs in its own task, so a leader whose client disconnects does not cancel
//! it for the followers, and the task removes its own entry when done (after storing the
//! value), so a finished computation is never handed out again.

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

type Flight<T> = Shared<BoxFuture<'static, T>>;

/// The in-flight computations, by key.
pub struct SingleFlight<T: Clone> {
    // A std mutex: held only to look up or insert, never across an await.
    flights: Arc<Mutex<HashMap<String, Flight<T>>>>,
}

impl<T: Clone + Send + Sync + 'static> Default for SingleFlight<T> {
    fn default() -> Self {
        SingleFlight {
            flights: Arc::default(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> SingleFlight<T> {
    /// Runs `compute` unless a computation for `key` is already running, in which case its
    /// result is awaited instead. Returns the result and whether this call waited on another
    /// (`collapsed`).
    pub async fn run<F>(&self, key: &str, compute: F) -> (T, bool)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let (flight, collapsed) = self.join(key, compute);
        (flight.await, collapsed)
    }

    /// Joins the flight of `key`, starting it with `compute` if none is running: the returned
    /// future gives its result, and the flag says whether another call leads it. Joining is
    /// done when this returns, before the future is awaited.
    pub fn join<F>(&self, key: &str, compute: F) -> (impl Future<Output = T> + use<T, F>, bool)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut flights = self.flights.lock().expect("single-flight lock poisoned");
        match flights.get(key) {
            Some(flight) => (flight.clone(), true),
            None => {
                let registry = Arc::clone(&self.flights);
                let owned_key = key.to_owned();
                let task = tokio::spawn(async move {
                    let out = compute.await;
                    registry
                        .lock()
                        .expect("single-flight lock poisoned")
                        .remove(&owned_key);
                    out
                });
                let flight: Flight<T> = async move {
                    match task.await {
                        Ok(out) => out,
                        Err(join) => std::panic::resume_unwind(join.into_panic()),
                    }
                }
                .boxed()
                .shared();
                flights.insert(key.to_owned(), flight.clone());
                (flight, false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_calls_compute_once() {
        let flights = Arc::new(SingleFlight::<u32>::default());
        let runs = Arc::new(AtomicUsize::new(0));
        let calls = (0..20).map(|_| {
            let flights = Arc::clone(&flights);
            let runs = Arc::clone(&runs);
            async move {
                flights
                    .run("k", async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        7
                    })
                    .await
            }
        });
        let results = futures::future::join_all(calls).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(results.iter().all(|(v, _)| *v == 7));
        assert_eq!(
            results.iter().filter(|(_, collapsed)| !collapsed).count(),
            1
        );
        // Finished flights are forgotten: the next call computes again.
        let (v, collapsed) = flights.run("k", async { 8 }).await;
        assert_eq!((v, collapsed), (8, false));
    }
}
