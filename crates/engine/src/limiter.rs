//! Memory accounting per instance: all linear memories and tables together count against
//! one limit (Spin and Wasmtime limit each memory alone), and the peak is recorded for the
//! access log.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::ResourceLimiter;

/// Bytes one table element costs the host (a pointer).
const TABLE_ELEMENT_BYTES: usize = 8;

/// Which limit an instance ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    /// Memories and tables together would exceed `max_instance_memory`.
    Memory {
        /// The limit in bytes.
        limit: u64,
        /// What the instance asked to hold in total.
        requested: u64,
    },
    /// A table would grow past the most elements a table may hold (the pool's slot size,
    /// fixed by the engine).
    TableElements {
        /// The most elements a table may hold.
        limit: usize,
    },
}

/// A `wasmtime::ResourceLimiter` over one instance's memories and tables together.
#[derive(Debug)]
pub struct InstanceLimiter {
    limit: u64,
    used: u64,
    peak: Arc<AtomicU64>,
    hit: Option<LimitHit>,
}

impl InstanceLimiter {
    /// A limiter allowing `limit` bytes.
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: 0,
            peak: Arc::new(AtomicU64::new(0)),
            hit: None,
        }
    }

    /// The highest total reached so far, readable after the store is gone.
    pub fn peak_handle(&self) -> Arc<AtomicU64> {
        self.peak.clone()
    }

    /// Publishes the peak to `handle` from now on (starting with the peak so far).
    pub fn publish_peak_to(&mut self, handle: Arc<AtomicU64>) {
        handle.fetch_max(self.peak.load(Ordering::Relaxed), Ordering::Relaxed);
        self.peak = handle;
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The first limit the instance ran into, if any.
    pub fn hit(&self) -> Option<LimitHit> {
        self.hit
    }

    fn grow(&mut self, current: usize, desired: usize) -> bool {
        let requested = self.used - current as u64 + desired as u64;
        if requested > self.limit {
            self.hit.get_or_insert(LimitHit::Memory {
                limit: self.limit,
                requested,
            });
            return false;
        }
        self.used = requested;
        self.peak.fetch_max(requested, Ordering::Relaxed);
        true
    }
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(self.grow(current, desired))
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if let Some(limit) = maximum.filter(|m| desired > *m) {
            self.hit.get_or_insert(LimitHit::TableElements { limit });
            return Ok(false);
        }
        Ok(self.grow(current * TABLE_ELEMENT_BYTES, desired * TABLE_ELEMENT_BYTES))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_share_one_limit() {
        let mut l = InstanceLimiter::new(1000);
        assert!(l.memory_growing(0, 600, None).unwrap());
        assert!(l.table_growing(0, 40, None).unwrap()); // 320 bytes
        assert_eq!(l.used(), 920);
        assert!(!l.memory_growing(600, 700, None).unwrap());
        assert_eq!(l.hit(), Some(LimitHit::Memory { limit: 1000, requested: 1020 }));
        assert!(l.memory_growing(600, 680, None).unwrap());
        assert_eq!(l.peak_handle().load(Ordering::Relaxed), 1000);
    }

    #[test]
    fn a_table_past_its_slot_is_refused_and_named() {
        let mut l = InstanceLimiter::new(1 << 30);
        assert!(!l.table_growing(10, 300, Some(200)).unwrap());
        assert_eq!(l.hit(), Some(LimitHit::TableElements { limit: 200 }));
    }
}
