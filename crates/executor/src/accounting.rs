//! What one invocation cost, measured the same way for every entry point.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// What one invocation cost, recorded the same way for every trigger.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accounting {
    /// Wall-clock time from slot to end.
    pub wall: Duration,
    /// Time the invocation ran on a thread: instantiation, guest code and the host calls
    /// it made, but not time spent waiting for I/O, a timer or a slot (what serverless
    /// platforms bill as CPU time).
    pub cpu: Duration,
    /// Peak bytes of memories and tables.
    pub peak_memory: u64,
    /// Instructions (fuel) used, when metered.
    pub fuel_used: Option<u64>,
}

/// Runs `inner`, adding the time each of its polls takes to `*cpu`. A poll is the only
/// time an async invocation is on a thread, so this measures its CPU time with two clock
/// reads per poll (a few per invocation), where a call hook would read the clock on every
/// guest-host transition.
pub(crate) struct OnCpu<'a, F> {
    inner: Pin<&'a mut F>,
    cpu: &'a mut Duration,
}

impl<'a, F: Future> OnCpu<'a, F> {
    pub(crate) fn new(inner: Pin<&'a mut F>, cpu: &'a mut Duration) -> Self {
        Self { inner, cpu }
    }
}

impl<F: Future> Future for OnCpu<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let started = Instant::now();
        let poll = self.inner.as_mut().poll(cx);
        *self.cpu += started.elapsed();
        poll
    }
}

/// The CPU time of an invocation that another task reads while it may still run: HTTP
/// writes its access-log line when the response ends, which can be before the instance
/// does. Measured like [`Accounting::cpu`].
#[derive(Debug, Clone, Default)]
pub struct SharedCpu(Arc<AtomicU64>);

impl SharedCpu {
    /// The CPU time counted so far.
    pub fn get(&self) -> Duration {
        Duration::from_nanos(self.0.load(Ordering::Relaxed))
    }

    /// Runs `inner`, adding the time each of its polls takes. `inner` is `Unpin` so that
    /// nothing is moved on the way: box a large future.
    pub fn measure<F: Future + Unpin>(self, inner: F) -> impl Future<Output = F::Output> {
        let mut inner = inner;
        std::future::poll_fn(move |cx| {
            let started = Instant::now();
            let poll = Pin::new(&mut inner).poll(cx);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.0.fetch_add(nanos, Ordering::Relaxed);
            poll
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiting_is_not_counted_and_work_is() {
        let mut cpu = Duration::ZERO;
        let mut waits = std::pin::pin!(tokio::time::sleep(Duration::from_millis(50)));
        OnCpu::new(waits.as_mut(), &mut cpu).await;
        assert!(cpu < Duration::from_millis(10), "a sleep counted {cpu:?} of CPU time");

        let mut cpu = Duration::ZERO;
        let mut works = std::pin::pin!(async {
            let until = Instant::now() + Duration::from_millis(30);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        });
        OnCpu::new(works.as_mut(), &mut cpu).await;
        assert!(cpu >= Duration::from_millis(30), "30 ms of spinning counted {cpu:?}");
    }

    #[tokio::test]
    async fn shared_cpu_time_is_readable_while_the_work_goes_on() {
        let shared = SharedCpu::default();
        let (spun, spun_rx) = tokio::sync::oneshot::channel();
        let work = shared.clone().measure(Box::pin(async move {
            let until = Instant::now() + Duration::from_millis(30);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            let _ = spun.send(());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }));
        let task = tokio::spawn(work);
        spun_rx.await.unwrap();
        tokio::task::yield_now().await;
        let midway = shared.get();
        assert!(midway >= Duration::from_millis(30), "30 ms of spinning counted {midway:?} before the work ended");
        task.await.unwrap();
        assert!(shared.get() < Duration::from_millis(45), "a 50 ms sleep counted: {:?}", shared.get());
    }
}
