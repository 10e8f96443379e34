//! `wasi:cli`, `wasi:filesystem`, `wasi:clocks`, `wasi:random`, `wasi:sockets` (0.2 and
//! 0.3), deny by default: the filesystem holds only the `files` mounts, read-only; the
//! environment holds only `environment`; sockets are linked but every address is refused;
//! no arguments, empty stdin.

use crate::{Concurrency, InstanceState};
use anyhow::{Context as _, Result};
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
        Ok(Self {
            mounts: component.mounts.clone(),
            environment: component.environment.clone().into_iter().collect(),
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
        // WasiCtxBuilder denies sockets and name lookups unless asked; say so anyway.
        builder.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
        for m in &self.mounts {
            builder
                .preopened_dir(&m.host_path, &m.guest_path, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot mount {}", m.host_path.display()))?;
        }
        Ok(builder)
    }
}
