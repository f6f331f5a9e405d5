//! A spawned task that ends with its owner.

use tokio::task::JoinHandle;

/// Aborts the task when dropped, so a stopped owner leaves nothing running behind.
pub struct AbortOnDrop<T>(pub JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
