//! Compiled components shared by every load of the same bytes while any load holds one:
//! a thousand copies of an app then run one copy of the machine code and one memory image
//! per module, so the pooling allocator's slot affinity and the CPU's caches serve all
//! of them (bench/analysis.md, "Many apps in one host").

use crate::CompiledFrom;
use anyhow::Result;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// SHA-256 of a component's bytes.
pub(crate) type Digest = [u8; 32];

/// Loaded values by digest, held weakly: the last holder dropping its `Arc` frees the code.
pub(crate) struct SharedLoads<T> {
    by_digest: Mutex<HashMap<Digest, Arc<Mutex<Weak<T>>>>>,
}

impl<T> Default for SharedLoads<T> {
    fn default() -> Self {
        Self { by_digest: Mutex::default() }
    }
}

impl<T> SharedLoads<T> {
    /// The live value for `digest`, or the one `load` makes. Loads of one digest wait for
    /// each other, so concurrent deploys of the same bytes compile once.
    pub(crate) fn get_or_load(&self, digest: Digest, load: impl FnOnce() -> Result<(T, CompiledFrom)>) -> Result<(Arc<T>, CompiledFrom)> {
        let slot = {
            let mut map = self.by_digest.lock().unwrap_or_else(|e| e.into_inner());
            // Forget entries whose code nobody holds and nobody is loading.
            map.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.try_lock().map_or(true, |weak| weak.strong_count() > 0));
            map.entry(digest).or_default().clone()
        };
        let mut weak = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(value) = weak.upgrade() {
            return Ok((value, CompiledFrom::Shared));
        }
        let (value, from) = load()?;
        let value = Arc::new(value);
        *weak = Arc::downgrade(&value);
        Ok((value, from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_shared_while_held_and_loaded_again_once_dropped() {
        let loads: SharedLoads<String> = SharedLoads::default();
        let mut made = 0;
        let mut load = || {
            made += 1;
            Ok((format!("code {made}"), CompiledFrom::Source))
        };
        let (first, from) = loads.get_or_load([1; 32], &mut load).unwrap();
        assert_eq!(from, CompiledFrom::Source);
        let (second, from) = loads.get_or_load([1; 32], &mut load).unwrap();
        assert_eq!(from, CompiledFrom::Shared);
        assert!(Arc::ptr_eq(&first, &second));
        let (other, _) = loads.get_or_load([2; 32], &mut load).unwrap();
        assert_eq!(*other, "code 2", "other bytes get their own load");
        drop((first, second));
        let (again, from) = loads.get_or_load([1; 32], &mut load).unwrap();
        assert_eq!((again.as_str(), from), ("code 3", CompiledFrom::Source), "dropped code is not kept");
        assert_eq!(loads.by_digest.lock().unwrap().len(), 2, "the dead entry was replaced, not duplicated");
    }

    #[test]
    fn a_failed_load_is_tried_again() {
        let loads: SharedLoads<u8> = SharedLoads::default();
        assert!(loads.get_or_load([0; 32], || anyhow::bail!("no")).is_err());
        let (value, from) = loads.get_or_load([0; 32], || Ok((7, CompiledFrom::Cache))).unwrap();
        assert_eq!((*value, from), (7, CompiledFrom::Cache));
    }
}
