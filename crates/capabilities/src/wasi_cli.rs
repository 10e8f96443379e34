//! `wasi:cli`, `wasi:filesystem`, `wasi:clocks`, `wasi:random`, `wasi:sockets` (0.2 and
//! 0.3), deny by default: the filesystem holds only the `files` mounts, read-only; the
//! environment holds only `environment`; TCP and UDP only to what `tcp://` and `udp://`
//! entries of `allowed_outbound_hosts` allow (by address, as Spin grants them, or by a name
//! such an entry names, which only then resolves: see [`crate::name_lookup`]), never
//! listening; no arguments, empty stdin.

use crate::{Concurrency, InstanceState};
use anyhow::{Context as _, Result};
use std::sync::Arc;
use crate::network::{NameLookups, SocketGrants};
use tessera_app::{LoadedComponent, Mount};
use wasmtime::component::Linker;
use wasmtime_wasi::cli::StdoutStream;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

/// Links WASI 0.2, and 0.3 when the engine has concurrency.
pub fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    if concurrency == Concurrency::On {
        wasmtime_wasi::p3::add_to_linker(linker)?;
    }
    crate::name_lookup::link(linker, concurrency)
}

/// Interfaces reading the mounted `files`.
pub const FILE_IMPORTS: &[&str] = &["wasi:filesystem/"];

/// WASI 0.3 interfaces need the concurrent engine (`wasi:http` is outbound_http's).
pub fn needs_concurrency(interface: &str) -> bool {
    interface.starts_with("wasi:") && !interface.starts_with("wasi:http/") && interface.contains("@0.3")
}

/// What every instance of one component gets.
pub struct ComponentState {
    mounts: Vec<Mount>,
    environment: Vec<(String, String)>,
    /// The component's socket grants, when it has any.
    sockets: Option<Arc<SocketGrants>>,
}

impl ComponentState {
    /// Checks the mounts exist.
    pub fn configure(component: &LoadedComponent) -> Result<Self> {
        for m in &component.mounts {
            anyhow::ensure!(
                m.host_path.is_dir(),
                "component `{}`: mount {} is not a directory",
                component.id,
                m.host_path.display()
            );
        }
        let allowed = &component.allowed_outbound_hosts;
        let id = component.id.clone();
        let advice: crate::network::SocketAdvice =
            Arc::new(move |target| format!("to allow it, add \"{target}\" to allowed_outbound_hosts in [component.{id}]"));
        let sockets = crate::network::grants_sockets(allowed)
            .then(|| Arc::new(SocketGrants::new(Arc::new(allowed.clone()), Arc::from(format!("component `{}`", component.id)), advice)));
        Ok(Self {
            mounts: component.mounts.clone(),
            environment: component.environment.clone().into_iter().collect(),
            sockets,
        })
    }

    /// Which names its instances may look up.
    pub fn name_lookups(&self) -> Option<NameLookups> {
        self.sockets.clone().map(NameLookups::Granted)
    }

    /// A fresh WASI context writing guest output to `stdout` and `stderr`.
    pub fn instance(
        &self,
        stdout: impl StdoutStream + 'static,
        stderr: impl StdoutStream + 'static,
    ) -> Result<WasiCtx> {
        let mut builder = self.builder()?;
        builder.stdout(stdout).stderr(stderr);
        Ok(builder.build())
    }

    /// A WASI context builder with the component's environment and mounts and no
    /// network, for an entry point to add its own stdio and arguments.
    pub fn builder(&self) -> Result<WasiCtxBuilder> {
        let mut builder = WasiCtxBuilder::new();
        builder.envs(&self.environment);
        // Sockets only behind the address check (name lookups are crate::name_lookup's).
        match &self.sockets {
            Some(grants) => {
                builder.allow_tcp(true).allow_udp(true);
                builder.socket_addr_check(crate::network::socket_check(grants.clone()));
            }
            None => {
                builder.allow_tcp(false).allow_udp(false);
            }
        }
        for m in &self.mounts {
            builder
                .preopened_dir(&m.host_path, &m.guest_path, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot mount {}", m.host_path.display()))?;
        }
        Ok(builder)
    }
}
