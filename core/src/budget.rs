//! Byte budgets: how much row data may wait between the binlog reader, the dispatcher and
//! the apply workers, or between a chunk's reader and writer. Counts alone do not bound
//! memory: 20,000 rows of 32 MB blobs are 640 GB. A claim waits until its bytes fit; one
//! larger than the whole budget waits for all of it, so a huge row still passes, alone.

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of read transactions waiting for the dispatcher.
pub const READ_QUEUE_BYTES: usize = 32 << 20;
/// Bytes of changes waiting in the apply workers' queues (all workers together).
pub const APPLY_QUEUE_BYTES: usize = 32 << 20;
/// Bytes of a chunk's batches waiting for its writer.
pub const COPY_QUEUE_BYTES: usize = 8 << 20;

#[derive(Clone)]
pub struct ByteBudget {
    bytes: Arc<Semaphore>,
    cap: usize,
}

/// Bytes held until dropped.
pub type Claim = OwnedSemaphorePermit;

impl ByteBudget {
    pub fn new(cap: usize) -> ByteBudget {
        ByteBudget {
            bytes: Arc::new(Semaphore::new(cap)),
            cap,
        }
    }

    pub async fn claim(&self, bytes: usize) -> Claim {
        let n = bytes.clamp(1, self.cap) as u32;
        self.bytes
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the budget's semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn claims_wait_for_bytes_and_a_huge_claim_passes_alone() {
        let b = ByteBudget::new(100);
        let a = b.claim(60).await;
        // 60 + 60 > 100: waits until the first is released.
        let waiting = tokio::time::timeout(Duration::from_millis(50), b.claim(60)).await;
        assert!(waiting.is_err());
        drop(a);
        let c = b.claim(60).await;
        drop(c);
        // Larger than the budget: takes all of it.
        let huge = b.claim(1 << 30).await;
        assert!(tokio::time::timeout(Duration::from_millis(50), b.claim(1))
            .await
            .is_err());
        drop(huge);
        let _last = b.claim(1).await;
    }
}
