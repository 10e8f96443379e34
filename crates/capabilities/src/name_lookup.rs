//! `wasi:sockets/ip-name-lookup` (0.2 and 0.3), served by Tessera in place of
//! wasmtime-wasi's, which can only allow every name or none: a name resolves only when a
//! socket grant (`tcp://` or `udp://` in `allowed_outbound_hosts`) names it, and only to the
//! addresses a connection may then reach (see [`crate::network::look_up`]). A refused name
//! is `access-denied`, with a log line naming the entry to add.

use crate::network::{LookupError, look_up};
use crate::{Concurrency, InstanceState};
use anyhow::Result;
use std::net::IpAddr;
use wasmtime::component::{Accessor, HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

mod p2 {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/name-lookup",
        imports: { default: async | trappable },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:sockets/network": wasmtime_wasi::p2::bindings::sockets::network,
            "wasi:sockets/ip-name-lookup.resolve-address-stream": super::ResolvedAddresses,
        },
    });
}

mod p3 {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/name-lookup-p3",
        imports: { default: async | store | trappable },
        with: {
            "wasi:clocks": wasmtime_wasi::p3::bindings::clocks,
            "wasi:sockets/types": wasmtime_wasi::p3::bindings::sockets::types,
        },
    });
}

use p2::wasi::sockets0_2_12::ip_name_lookup as lookup_p2;
use p3::wasi::sockets0_3_0::ip_name_lookup as lookup_p3;
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode as NetworkError, IpAddress, Network};

/// The addresses one lookup found, handed out one by one.
pub struct ResolvedAddresses(std::vec::IntoIter<IpAddr>);

#[async_trait::async_trait]
impl Pollable for ResolvedAddresses {
    // The lookup finished before the stream was handed out.
    async fn ready(&mut self) {}
}

/// Replaces wasmtime-wasi's lookups in `linker` (which must already hold WASI).
pub fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
    linker.allow_shadowing(true);
    let linked = (|| {
        lookup_p2::add_to_linker::<_, NameLookup>(linker, |s| s)?;
        if concurrency == Concurrency::On {
            lookup_p3::add_to_linker::<_, NameLookup>(linker, |s| s)?;
        }
        anyhow::Ok(())
    })();
    linker.allow_shadowing(false);
    linked
}

struct NameLookup;

impl HasData for NameLookup {
    type Data<'a> = &'a mut InstanceState;
}

fn table(state: &mut InstanceState) -> &mut ResourceTable {
    &mut state.table
}

impl lookup_p2::Host for &mut InstanceState {
    async fn resolve_addresses(&mut self, network: Resource<Network>, name: String) -> wasmtime::Result<Result<Resource<ResolvedAddresses>, NetworkError>> {
        // Holding a network is the capability to ask (as in wasmtime).
        table(self).get(&network)?;
        let lookups = self.name_lookups.clone();
        Ok(match look_up(lookups.as_ref(), &name).await {
            Ok(addrs) => Ok(table(self).push(ResolvedAddresses(addrs.into_iter()))?),
            Err(e) => Err(match e {
                LookupError::InvalidArgument => NetworkError::InvalidArgument,
                LookupError::AccessDenied => NetworkError::AccessDenied,
                LookupError::NameUnresolvable => NetworkError::NameUnresolvable,
            }),
        })
    }
}

impl lookup_p2::HostResolveAddressStream for &mut InstanceState {
    async fn resolve_next_address(&mut self, stream: Resource<ResolvedAddresses>) -> wasmtime::Result<Result<Option<IpAddress>, NetworkError>> {
        Ok(Ok(table(self).get_mut(&stream)?.0.next().map(IpAddress::from)))
    }

    async fn subscribe(&mut self, stream: Resource<ResolvedAddresses>) -> wasmtime::Result<Resource<DynPollable>> {
        subscribe(table(self), stream)
    }

    async fn drop(&mut self, stream: Resource<ResolvedAddresses>) -> wasmtime::Result<()> {
        table(self).delete(stream)?;
        Ok(())
    }
}

impl lookup_p3::Host for &mut InstanceState {}

impl<T> lookup_p3::HostWithStore<T> for NameLookup {
    async fn resolve_addresses(accessor: &Accessor<T, Self>, name: String) -> wasmtime::Result<Result<Vec<wasmtime_wasi::p3::bindings::sockets::types::IpAddress>, lookup_p3::ErrorCode>> {
        let lookups = accessor.with(|mut access| access.get().name_lookups.clone());
        Ok(match look_up(lookups.as_ref(), &name).await {
            Ok(addrs) => Ok(addrs.into_iter().map(Into::into).collect()),
            Err(LookupError::InvalidArgument) => Err(lookup_p3::ErrorCode::InvalidArgument),
            Err(LookupError::AccessDenied) => Err(lookup_p3::ErrorCode::AccessDenied),
            Err(LookupError::NameUnresolvable) => Err(lookup_p3::ErrorCode::NameUnresolvable),
        })
    }
}
