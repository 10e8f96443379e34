//! The thread that advances the engine's epoch, which is what lets a timeout stop a guest
//! spinning in a loop.
//!
//! It parks between ticks and is woken to stop, so dropping the engine does not wait
//! for the rest of a tick (up to 10 ms added to every `tessera run` exit when it slept).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: wasmtime::Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("tessera-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    let mut next = Instant::now() + tick;
                    loop {
                        // Parking may end early (an unpark, or spuriously): tick only when due.
                        let now = Instant::now();
                        if now < next {
                            std::thread::park_timeout(next - now);
                        }
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        if Instant::now() >= next {
                            engine.increment_epoch();
                            next += tick;
                        }
                    }
                }
            })
            .expect("cannot start the epoch thread");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
