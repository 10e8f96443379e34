//! Instance slots, one pool per process for every entry point, with backpressure: when
//! every slot is busy, invocations wait in a bounded queue for up to a deadline instead of
//! failing at once. Only a full queue or an expired wait is refused (HTTP answers 503 with
//! `Retry-After`; a Redis message or a cron tick waits its turn the same way).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Slots for running instances plus a bounded waiting line.
pub struct InstanceSlots {
    slots: Arc<Semaphore>,
    total: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    max_wait: Duration,
}

/// Why an invocation was not given a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The waiting line is full.
    QueueFull,
    /// No slot freed up within the deadline.
    Timeout,
}

impl InstanceSlots {
    /// `slots` instances at once, `max_waiting` more waiting up to `max_wait` each.
    pub fn new(slots: usize, max_waiting: usize, max_wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            total: slots,
            waiting: AtomicUsize::new(0),
            max_waiting,
            max_wait,
        }
    }

    /// Slots held now.
    pub fn in_use(&self) -> usize {
        self.total.saturating_sub(self.slots.available_permits())
    }

    /// Invocations waiting for a slot now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Waits for a slot; the permit frees it when dropped.
    pub async fn admit(&self) -> Result<OwnedSemaphorePermit, Rejected> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Rejected::QueueFull);
        }
        let result = tokio::time::timeout(self.max_wait, self.slots.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match result {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Rejected::Timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_then_rejects_past_the_queue() {
        let a = Arc::new(InstanceSlots::new(1, 1, Duration::from_millis(200)));
        let first = a.admit().await.unwrap();
        let waiter = tokio::spawn({
            let a = a.clone();
            async move { a.admit().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(a.admit().await.unwrap_err(), Rejected::QueueFull);
        drop(first);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        let _held = a.admit().await.unwrap();
        assert_eq!(a.admit().await.unwrap_err(), Rejected::Timeout);
    }
}
