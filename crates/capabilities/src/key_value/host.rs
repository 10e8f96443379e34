//! The WIT bindings and their host side: opening checks the grant, every call goes to the
//! store's backend.

use super::{BackendError, InstanceKeyValue, KeyValue, Store, check_sizes};
use crate::{Concurrency, InstanceState};
use anyhow::Result;
use std::sync::Arc;
use wasmtime::component::{Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/key-value",
        imports: {
            "spin:key-value/key-value": async | store | trappable,
            default: async | trappable,
        },
        with: {
            "fermyon:spin/key-value.store": super::OpenStore,
            "spin:key-value/key-value.store": super::OpenStore,
            "wasi:keyvalue/store.bucket": super::OpenStore,
            "wasi:keyvalue/atomics.cas": super::Cas,
        },
    });
}

use bindings::fermyon::spin::key_value as spin2;
use bindings::spin::key_value::key_value as spin3;
use bindings::wasi::keyvalue::{atomics, batch, store as wasi_store};

/// An open store (`fermyon:spin` store or `wasi:keyvalue` bucket).
pub struct OpenStore {
    store: Arc<dyn Store>,
}

/// A `wasi:keyvalue` compare-and-swap handle: the value seen when it was made.
pub struct Cas {
    store: Arc<dyn Store>,
    key: String,
    current: Option<Vec<u8>>,
}

/// What the host functions work on: the instance's resources and grants.
pub struct KeyValueView<'a> {
    table: &'a mut ResourceTable,
    state: &'a InstanceKeyValue,
}

impl HasData for KeyValue {
    type Data<'a> = KeyValueView<'a>;
}

fn view(s: &mut InstanceState) -> KeyValueView<'_> {
    let (table, state) = s.capability::<KeyValue>();
    KeyValueView { table, state }
}

pub(super) fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
    spin2::add_to_linker::<_, KeyValue>(linker, view)?;
    if concurrency == Concurrency::On {
        spin3::add_to_linker::<_, KeyValue>(linker, view)?;
    }
    wasi_store::add_to_linker::<_, KeyValue>(linker, view)?;
    atomics::add_to_linker::<_, KeyValue>(linker, view)?;
    batch::add_to_linker::<_, KeyValue>(linker, view)?;
    Ok(())
}

enum OpenError {
    AccessDenied,
    TableFull,
}

impl KeyValueView<'_> {
    fn open(&mut self, label: &str) -> Result<Option<Resource<OpenStore>>, OpenError> {
        let store = self.state.grants.get(label).ok_or(OpenError::AccessDenied)?;
        let open = OpenStore { store: store.clone() };
        Ok(Some(self.table.push(open).map_err(|_| OpenError::TableFull)?))
    }

    fn store(&self, r: &Resource<OpenStore>) -> wasmtime::Result<Arc<dyn Store>> {
        Ok(self.table.get(r)?.store.clone())
    }
}

// ---- fermyon:spin/key-value@2.0.0 -----------------------------------------------------

fn spin2_err(e: BackendError) -> spin2::Error {
    spin2::Error::Other(e)
}

impl spin2::Host for KeyValueView<'_> {}

impl spin2::HostStore for KeyValueView<'_> {
    async fn open(&mut self, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, spin2::Error>> {
        Ok(match self.open(&label) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(spin2::Error::NoSuchStore),
            Err(OpenError::AccessDenied) => Err(spin2::Error::AccessDenied),
            Err(OpenError::TableFull) => Err(spin2::Error::StoreTableFull),
        })
    }

    async fn get(&mut self, s: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, spin2::Error>> {
        let store = self.store(&s)?;
        Ok(async { check_sizes(&key, None)?; store.get(&key).await }.await.map_err(spin2_err))
    }

    async fn set(&mut self, s: Resource<OpenStore>, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), spin2::Error>> {
        let store = self.store(&s)?;
        Ok(async { check_sizes(&key, Some(&value))?; store.set(&key, &value).await }.await.map_err(spin2_err))
    }

    async fn delete(&mut self, s: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<(), spin2::Error>> {
        let store = self.store(&s)?;
        Ok(store.delete(&key).await.map_err(spin2_err))
    }

    async fn exists(&mut self, s: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<bool, spin2::Error>> {
        let store = self.store(&s)?;
        Ok(store.exists(&key).await.map_err(spin2_err))
    }

    async fn get_keys(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<Result<Vec<String>, spin2::Error>> {
        let store = self.store(&s)?;
        Ok(store.keys().await.map_err(spin2_err))
    }

    async fn drop(&mut self, s: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

// ---- spin:key-value@3.0.0 (async functions) ------------------------------------------

fn spin3_err(e: BackendError) -> spin3::Error {
    spin3::Error::Other(e)
}

impl spin3::Host for KeyValueView<'_> {}
impl spin3::HostStore for KeyValueView<'_> {}

/// The store behind `s`, read under the accessor's brief lock.
fn store_of<T>(accessor: &Accessor<T, KeyValue>, s: &Resource<OpenStore>) -> wasmtime::Result<Arc<dyn Store>> {
    accessor.with(|mut access| access.get().store(s))
}

impl<T> spin3::HostStoreWithStore<T> for KeyValue {
    async fn drop(accessor: &Accessor<T, Self>, s: Resource<OpenStore>) -> wasmtime::Result<()> {
        accessor.with(|mut access| access.get().table.delete(s))?;
        Ok(())
    }

    async fn open(accessor: &Accessor<T, Self>, label: String) -> wasmtime::Result<Result<Resource<OpenStore>, spin3::Error>> {
        Ok(accessor.with(|mut access| match access.get().open(&label) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(spin3::Error::NoSuchStore),
            Err(OpenError::AccessDenied) => Err(spin3::Error::AccessDenied),
            Err(OpenError::TableFull) => Err(spin3::Error::StoreTableFull),
        }))
    }

    async fn get(accessor: &Accessor<T, Self>, s: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, spin3::Error>> {
        let store = store_of(accessor, &s)?;
        Ok(async { check_sizes(&key, None)?; store.get(&key).await }.await.map_err(spin3_err))
    }

    async fn set(accessor: &Accessor<T, Self>, s: Resource<OpenStore>, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), spin3::Error>> {
        let store = store_of(accessor, &s)?;
        Ok(async { check_sizes(&key, Some(&value))?; store.set(&key, &value).await }.await.map_err(spin3_err))
    }

    async fn delete(accessor: &Accessor<T, Self>, s: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<(), spin3::Error>> {
        let store = store_of(accessor, &s)?;
        Ok(store.delete(&key).await.map_err(spin3_err))
    }

    async fn exists(accessor: &Accessor<T, Self>, s: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<bool, spin3::Error>> {
        let store = store_of(accessor, &s)?;
        Ok(store.exists(&key).await.map_err(spin3_err))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        s: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), spin3::Error>>)> {
        let store = store_of(accessor, &s)?;
        // Keys are read whole, then streamed; the future carries a backend error.
        let (keys, result) = match store.keys().await {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(spin3_err(e))),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, keys)?;
            let future = FutureReader::new(&mut access, async move { Ok::<_, wasmtime::Error>(result) })?;
            Ok((stream, future))
        })
    }
}

// ---- wasi:keyvalue@0.2.0-draft2 -------------------------------------------------------

fn wasi_err(e: BackendError) -> wasi_store::Error {
    wasi_store::Error::Other(e)
}

impl wasi_store::Host for KeyValueView<'_> {
    async fn open(&mut self, identifier: String) -> wasmtime::Result<Result<Resource<OpenStore>, wasi_store::Error>> {
        Ok(match KeyValueView::open(self, &identifier) {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(wasi_store::Error::NoSuchStore),
            Err(OpenError::AccessDenied) => Err(wasi_store::Error::AccessDenied),
            Err(OpenError::TableFull) => Err(wasi_store::Error::Other("too many open stores".into())),
        })
    }
}

impl wasi_store::HostBucket for KeyValueView<'_> {
    async fn get(&mut self, b: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_store::Error>> {
        let store = self.store(&b)?;
        Ok(async { check_sizes(&key, None)?; store.get(&key).await }.await.map_err(wasi_err))
    }

    async fn set(&mut self, b: Resource<OpenStore>, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), wasi_store::Error>> {
        let store = self.store(&b)?;
        Ok(async { check_sizes(&key, Some(&value))?; store.set(&key, &value).await }.await.map_err(wasi_err))
    }

    async fn delete(&mut self, b: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<(), wasi_store::Error>> {
        let store = self.store(&b)?;
        Ok(store.delete(&key).await.map_err(wasi_err))
    }

    async fn exists(&mut self, b: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<bool, wasi_store::Error>> {
        let store = self.store(&b)?;
        Ok(store.exists(&key).await.map_err(wasi_err))
    }

    async fn list_keys(
        &mut self,
        b: Resource<OpenStore>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_store::KeyResponse, wasi_store::Error>> {
        let store = self.store(&b)?;
        // Every key in one page: a cursor the host handed out is never needed.
        if cursor.is_some() {
            return Ok(Ok(wasi_store::KeyResponse { keys: Vec::new(), cursor: None }));
        }
        Ok(store.keys().await.map(|keys| wasi_store::KeyResponse { keys, cursor: None }).map_err(wasi_err))
    }

    async fn drop(&mut self, b: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

impl atomics::Host for KeyValueView<'_> {
    async fn increment(&mut self, b: Resource<OpenStore>, key: String, delta: i64) -> wasmtime::Result<Result<i64, wasi_store::Error>> {
        let store = self.store(&b)?;
        Ok(async { check_sizes(&key, None)?; store.increment(&key, delta).await }.await.map_err(wasi_err))
    }

    async fn swap(&mut self, cas: Resource<Cas>, value: Vec<u8>) -> wasmtime::Result<Result<(), atomics::CasError>> {
        let cas_state = self.table.delete(cas)?;
        if let Err(e) = check_sizes(&cas_state.key, Some(&value)) {
            return Ok(Err(atomics::CasError::StoreError(wasi_err(e))));
        }
        match cas_state.store.compare_and_swap(&cas_state.key, cas_state.current.as_deref(), &value).await {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                // Hand back a fresh handle holding the value that won, so the guest can retry.
                let current = match cas_state.store.get(&cas_state.key).await {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(atomics::CasError::StoreError(wasi_err(e)))),
                };
                let fresh = self.table.push(Cas { current, ..cas_state })?;
                Ok(Err(atomics::CasError::CasFailed(fresh)))
            }
            Err(e) => Ok(Err(atomics::CasError::StoreError(wasi_err(e)))),
        }
    }
}

impl atomics::HostCas for KeyValueView<'_> {
    async fn new(&mut self, b: Resource<OpenStore>, key: String) -> wasmtime::Result<Result<Resource<Cas>, wasi_store::Error>> {
        let store = self.store(&b)?;
        let current = match async { check_sizes(&key, None)?; store.get(&key).await }.await {
            Ok(v) => v,
            Err(e) => return Ok(Err(wasi_err(e))),
        };
        Ok(Ok(self.table.push(Cas { store, key, current })?))
    }

    async fn current(&mut self, cas: Resource<Cas>) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_store::Error>> {
        Ok(Ok(self.table.get(&cas)?.current.clone()))
    }

    async fn drop(&mut self, cas: Resource<Cas>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl batch::Host for KeyValueView<'_> {
    async fn get_many(
        &mut self,
        b: Resource<OpenStore>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_store::Error>> {
        let store = self.store(&b)?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            match async { check_sizes(&key, None)?; store.get(&key).await }.await {
                Ok(v) => out.push((key, v)),
                Err(e) => return Ok(Err(wasi_err(e))),
            }
        }
        Ok(Ok(out))
    }

    async fn set_many(&mut self, b: Resource<OpenStore>, pairs: Vec<(String, Vec<u8>)>) -> wasmtime::Result<Result<(), wasi_store::Error>> {
        let store = self.store(&b)?;
        // Check every pair first, so an over-limit pair writes nothing.
        if let Some(e) = pairs.iter().find_map(|(k, v)| check_sizes(k, Some(v)).err()) {
            return Ok(Err(wasi_err(e)));
        }
        for (key, value) in pairs {
            if let Err(e) = store.set(&key, &value).await {
                return Ok(Err(wasi_err(e)));
            }
        }
        Ok(Ok(()))
    }

    async fn delete_many(&mut self, b: Resource<OpenStore>, keys: Vec<String>) -> wasmtime::Result<Result<(), wasi_store::Error>> {
        let store = self.store(&b)?;
        for key in keys {
            if let Err(e) = store.delete(&key).await {
                return Ok(Err(wasi_err(e)));
            }
        }
        Ok(Ok(()))
    }
}
