//! Run untrusted customer code inside your product: each customer uploads a WebAssembly
//! component implementing a WIT world of yours (a discount rule, a webhook transform), and
//! your service calls it on every event, on a fresh sandbox per call, within hard quotas,
//! with the cost of each call measured.
//!
//! - [`PluginHost`]: built once per process (engine, pooling allocator, compile cache).
//! - [`PluginHost::load`]: a plugin from bytes, a file or a registry reference, checked
//!   against trusted keys when [`PluginOptions::trusted_keys`] is set, compiled once per
//!   digest.
//! - [`Plugin::call`]: typed calls through `wasmtime::component::bindgen!` types;
//!   [`Plugin::call_dynamic`] and [`Plugin::call_wave`] call an export by name.
//! - [`Quotas`]: instructions, memory, wall-clock time, result size (and kept log output),
//!   each with a default; a quota hit is a [`CallError`] whose [`Reason::Quota`] names it.
//!   [`TenantLimits`]: calls of one [`Tenant`] at once, and a bounded waiting line.
//! - [`Metering`]: instructions, peak memory, wall and CPU time, with every result.
//! - Deny by default: no files, network, environment; clocks fixed at the Unix epoch.
//!   [`Grants`] give a plugin pieces of WASI and Tessera's capabilities (key-value,
//!   SQLite, outbound HTTP with an allow-list, variables); [`HostOptions::link`] adds your
//!   own host functions.
//! - [`Call::cancel_on`]: cancellation from another thread.
//!
//! A dynamic call, as a tool would make it:
//!
//! ```
//! use tessera_plugins::{Call, HostOptions, PluginHost, PluginOptions, Reason, Quota, Source};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> anyhow::Result<()> {
//! let host = PluginHost::new(HostOptions { cache_dir: None, ..HostOptions::default() })?;
//! let add = wat::parse_str(r#"(component
//!     (core module $m (func (export "add") (param i32 i32) (result i32)
//!         local.get 0 local.get 1 i32.add))
//!     (core instance $i (instantiate $m))
//!     (func (export "add") (param "a" u32) (param "b" u32) (result u32)
//!         (canon lift (core func $i "add"))))"#)?;
//! let plugin = host.load(Source::Bytes(add), PluginOptions::default()).await?;
//!
//! let called = plugin.call_wave(Call::new(), "add(1, 2)").await?;
//! assert_eq!(called.value, ["3"]);
//! // Four instructions: two local.get, i32.add and the function's end.
//! assert_eq!(called.metering.instructions, Some(4));
//!
//! let spin = wat::parse_str(r#"(component
//!     (core module $m (func (export "spin") (loop br 0)))
//!     (core instance $i (instantiate $m))
//!     (func (export "spin") (canon lift (core func $i "spin"))))"#)?;
//! let plugin = host.load(Source::Bytes(spin), PluginOptions::default()).await?;
//! let error = plugin.call_wave(Call::new(), "spin()").await.unwrap_err();
//! assert_eq!(error.reason, Reason::Quota { quota: Quota::Fuel, limit: 100_000_000 });
//! # Ok(())
//! # }
//! ```
//!
//! Typed calls, with a host function of the embedder's own WIT whose state is per call:
//!
//! ```no_run
//! use std::sync::Arc;
//! use tessera_plugins::{Call, HostOptions, InstanceState, PluginHost, PluginOptions, Quotas, Source};
//!
//! wasmtime::component::bindgen!({
//!     inline: "
//!         package acme:discounts;
//!         interface rules {
//!             record cart { total-cents: u64, items: list<string> }
//!             apply: func(cart: cart) -> cart;
//!         }
//!         interface audit { note: func(text: string); }
//!         world discount { import audit; export rules; }
//!     ",
//!     imports: { default: async },
//!     exports: { default: async },
//!     additional_derives: [serde::Serialize],
//! });
//!
//! /// What `audit.note` collects during one call.
//! #[derive(Default)]
//! struct Notes(Vec<String>);
//!
//! impl acme::discounts::audit::Host for Notes {
//!     async fn note(&mut self, text: String) {
//!         self.0.push(text);
//!     }
//! }
//!
//! # async fn run() -> anyhow::Result<()> {
//! let host = PluginHost::new(HostOptions {
//!     link: Some(Arc::new(|linker, _| {
//!         acme::discounts::audit::add_to_linker::<InstanceState, wasmtime::component::HasSelf<Notes>>(
//!             linker,
//!             |state| state.extension_mut::<Notes>().expect("each call gets Notes"),
//!         )?;
//!         Ok(())
//!     })),
//!     ..HostOptions::default()
//! })?;
//! let options = PluginOptions { quotas: Quotas::SHOPIFY, ..PluginOptions::default() };
//! let plugin = host.load(Source::File("rules.wasm".into()), options).await?;
//! let cart = exports::acme::discounts::rules::Cart { total_cents: 10_000, items: vec!["hat".into()] };
//! let called = plugin
//!     .call(Call::new().extension(Notes::default()), move |store, instance| {
//!         Box::pin(async move {
//!             let rules = Discount::new(&mut *store, &instance)?;
//!             rules.acme_discounts_rules().call_apply(&mut *store, &cart).await
//!         })
//!     })
//!     .await?;
//! println!("{} cents; {}", called.value.total_cents, called.metering);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod host;
mod json_size;
mod plugin;
mod quotas;
mod sandbox;

pub use host::{HostOptions, PluginHost, PluginOptions, Source, Tenant, TenantLimits};
pub use plugin::{Call, Called, Plugin};
pub use quotas::{CallError, Metering, Quota, Quotas, Reason};
pub use sandbox::{Clocks, Grants, Logs};
pub use tessera_capabilities::InstanceState;
pub use tessera_signing::PublicKey;
pub use tokio_util::sync::CancellationToken;
