//! `wasi:cli`, `wasi:filesystem`, `wasi:clocks`, `wasi:random`, `wasi:sockets` (0.2 and
//! 0.3), deny by default: the filesystem holds only the `files` mounts, read-only; the
//! environment holds only `environment`; TCP and UDP only to what `tcp://` and `udp://`
//! entries of `allowed_outbound_hosts` allow (by address, as Spin grants them: name lookups
//! are refused), never listening; no arguments, empty stdin.

use crate::{Concurrency, InstanceState};
use anyhow::{Context as _, Result};
use std::sync::Arc;
use tessera_manifest::allowed_hosts::AllowedHosts;
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
    Ok(())
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
    /// The component's allow-list, its name in log lines and the advice they give, when
    /// it grants sockets.
    sockets: Option<(Arc<AllowedHosts>, Arc<str>, crate::network::SocketAdvice)>,
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
            .then(|| (Arc::new(allowed.clone()), Arc::from(format!("component `{}`", component.id)), advice));
        Ok(Self {
            mounts: component.mounts.clone(),
            environment: component.environment.clone().into_iter().collect(),
            sockets,
        })
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
        // Name lookups are refused, as in Spin; sockets only behind the address check.
        builder.allow_ip_name_lookup(false);
        match &self.sockets {
            Some((allowed, who, advice)) => {
                builder.allow_tcp(true).allow_udp(true);
                builder.socket_addr_check(crate::network::socket_check(allowed.clone(), who.clone(), advice.clone()));
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
