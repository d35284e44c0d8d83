//! The cache's background work (early refreshes of hot entries), counted so that a test can
//! wait until none is running and then assert what was, or was not, recomputed, instead of
//! sleeping and hoping a slow recomputation has shown itself.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

/// Spawns tasks and knows how many are running.
#[derive(Default)]
pub struct Background {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    running: AtomicUsize,
    idle: Notify,
}

/// Decrements the count when the task ends, however it ends (panics included).
struct Running(Arc<State>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Background {
    /// Runs `task` on the runtime, counted until it ends.
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, task: F) {
        self.state.running.fetch_add(1, Ordering::AcqRel);
        let running = Running(Arc::clone(&self.state));
        tokio::spawn(async move {
            let _running = running;
            task.await;
        });
    }

    /// Returns once no task spawned here is running.
    pub async fn idle(&self) {
        loop {
            let notified = self.state.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state.running.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    #[tokio::test]
    async fn idle_waits_for_running_tasks() {
        let background = Background::default();
        background.idle().await; // nothing running
        let (release, released) = oneshot::channel::<()>();
        let (done_tx, mut done) = oneshot::channel::<()>();
        background.spawn(async move {
            let _ = released.await;
            let _ = done_tx.send(());
        });
        let waiting = background.idle();
        tokio::pin!(waiting);
        // Not idle while the task is held.
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        release.send(()).unwrap();
        waiting.await;
        assert!(done.try_recv().is_ok(), "the task had finished");
    }
}
