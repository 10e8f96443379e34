//! The plugin benchmark, driven by `bench/run.py --only plugins`: one logic (bench/guests/
//! plugin) called per event, 1 KB in and 1 KB out, on a fresh instance per call, through
//! Tessera's embedding API, a hand-written wasmtime host and Extism, side by side in one
//! process; then the cost of metering on CPU-bound work; then 1,000 tenants' plugins
//! loaded at once. Prints one JSON object.

use anyhow::{Context as _, Result};
use serde_json::json;
use std::time::{Duration, Instant};
use tessera_plugins::{Call, HostOptions, Plugin, PluginHost, PluginOptions, Quotas, Source, TenantLimits};
use wasmtime::component::{Component, InstancePre, Linker};

const INPUT_BYTES: usize = 1024;
/// Calls per peer per round; rounds alternate the peers so drift hits all alike.
const CALLS_PER_ROUND: usize = 2_000;
const ROUNDS: usize = 5;
/// Numbers the metering benchmark's call sorts.
const WORK_N: u32 = 200_000;
const TENANTS: usize = 1_000;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let component_path = args.next().context("usage: plugin-calls COMPONENT.wasm EXTISM.wasm")?;
    let extism_path = args.next().context("usage: plugin-calls COMPONENT.wasm EXTISM.wasm")?;
    let component = std::fs::read(&component_path)?;
    let extism_module = std::fs::read(&extism_path)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let input: Vec<u8> = (0..INPUT_BYTES).map(|i| b'a' + (i % 26) as u8).collect();
    let expected = input.iter().rev().map(|b| b ^ 0x20).collect::<Vec<u8>>();
    if args.next().as_deref() == Some("--profile") {
        // Only Tessera's per-call path, for `perf record`.
        let plugin = runtime.block_on(tessera_plugin(&component, true))?;
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            runtime.block_on(tessera_transform(&plugin, &input))?;
        }
        return Ok(());
    }

    // Per call, fresh instance.
    let metered = runtime.block_on(tessera_plugin(&component, true))?;
    let unmetered = runtime.block_on(tessera_plugin(&component, false))?;
    let wasmtime_host = HandWritten::new(&component, false)?;
    let extism_compiled = extism::CompiledPlugin::new(extism::PluginBuilder::new(extism::Manifest::new([extism::Wasm::data(extism_module.clone())])).with_fuel_limit(Quotas::DEFAULT.instructions))?;
    let mut extism_kept = extism::Plugin::new(extism::Manifest::new([extism::Wasm::data(extism_module.clone())]), [], false)?;

    let mut samples: Vec<(&str, Vec<Duration>)> = ["tessera (instructions metered)", "tessera (not metered)", "wasmtime, hand-written host", "extism, fresh instance", "extism, instance kept"]
        .into_iter()
        .map(|n| (n, Vec::new()))
        .collect();
    for _ in 0..ROUNDS {
        for (peer, times) in samples.iter_mut() {
            for _ in 0..CALLS_PER_ROUND {
                let started = Instant::now();
                let output = match *peer {
                    "tessera (instructions metered)" => runtime.block_on(tessera_transform(&metered, &input))?,
                    "tessera (not metered)" => runtime.block_on(tessera_transform(&unmetered, &input))?,
                    "wasmtime, hand-written host" => wasmtime_host.transform(&input)?,
                    "extism, fresh instance" => extism::Plugin::new_from_compiled(&extism_compiled)?.call::<&[u8], Vec<u8>>("transform", &input)?,
                    _ => extism_kept.call::<&[u8], Vec<u8>>("transform", &input)?,
                };
                times.push(started.elapsed());
                anyhow::ensure!(output == expected, "{peer} computed something else");
            }
        }
    }
    let per_call: serde_json::Map<String, serde_json::Value> = samples
        .iter_mut()
        .map(|(peer, times)| {
            times.sort();
            let us = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
            (peer.to_string(), json!({ "p50_us": us(0.5), "p99_us": us(0.99), "calls": times.len() }))
        })
        .collect();

    // Metering: the same CPU-bound call, fuel on, fuel off (epoch interruption only), and
    // a host with neither.
    let mut metering = serde_json::Map::new();
    let raw = HandWritten::new(&component, false)?;
    let epoch_only = HandWritten::new(&component, true)?;
    let mut cost: Vec<(&str, Vec<Duration>)> =
        ["tessera, instructions metered", "tessera, epochs only", "wasmtime, epochs only", "wasmtime, neither"].into_iter().map(|n| (n, Vec::new())).collect();
    for _ in 0..ROUNDS * 8 {
        for (peer, times) in cost.iter_mut() {
            let started = Instant::now();
            let result = match *peer {
                "tessera, instructions metered" => runtime.block_on(tessera_work(&metered))?,
                "tessera, epochs only" => runtime.block_on(tessera_work(&unmetered))?,
                "wasmtime, epochs only" => epoch_only.work(WORK_N)?,
                _ => raw.work(WORK_N)?,
            };
            times.push(started.elapsed());
            std::hint::black_box(result);
        }
    }
    for (peer, times) in cost.iter_mut() {
        times.sort();
        metering.insert(peer.to_string(), json!({ "ms": times[times.len() / 2].as_secs_f64() * 1e3 }));
    }

    // 1,000 tenants, each with a plugin of its own bytes (compiled apart).
    let tenants = runtime.block_on(thousand_tenants(&component, &input))?;

    println!("{}", json!({ "input_bytes": INPUT_BYTES, "per_call": per_call, "metering": metering, "work_n": WORK_N, "tenants": tenants }));
    Ok(())
}

async fn tessera_plugin(component: &[u8], meter: bool) -> Result<Plugin> {
    let host = PluginHost::new(HostOptions { cache_dir: None, meter_instructions: meter, max_instances: 64, ..HostOptions::default() })?;
    let quotas = Quotas { instructions: u64::MAX / 2, timeout: Duration::from_secs(60), ..Quotas::DEFAULT };
    host.load(Source::Bytes(component.to_vec()), PluginOptions { quotas, ..PluginOptions::default() }).await
}

async fn tessera_transform(plugin: &Plugin, input: &[u8]) -> Result<Vec<u8>> {
    let input = input.to_vec();
    let called = plugin
        .call(Call::new(), move |store, instance| {
            Box::pin(async move {
                let f = instance.get_typed_func::<(&[u8],), (Vec<u8>,)>(&mut *store, "transform")?;
                Ok(f.call_async(&mut *store, (&input,)).await?.0)
            })
        })
        .await?;
    Ok(called.value)
}

async fn tessera_work(plugin: &Plugin) -> Result<u64> {
    let called = plugin
        .call(Call::new(), |store, instance| {
            Box::pin(async move {
                let f = instance.get_typed_func::<(u32,), (u64,)>(&mut *store, "work")?;
                Ok(f.call_async(&mut *store, (WORK_N,)).await?.0)
            })
        })
        .await?;
    Ok(called.value)
}

/// What a careful user writes with wasmtime alone: the pooling allocator tuned, a
/// pre-instantiated component, a fresh store and WASI context per call, synchronous calls;
/// no limits beyond the pool's, no metering, no accounting.
struct HandWritten {
    engine: wasmtime::Engine,
    pre: InstancePre<WasiState>,
    epochs: bool,
}

struct WasiState {
    ctx: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
}

impl wasmtime_wasi::WasiView for WasiState {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

impl HandWritten {
    fn new(bytes: &[u8], epochs: bool) -> Result<Self> {
        let mut config = wasmtime::Config::new();
        // The pool tuned as Tessera's engine is (dirty pages reset in place, not released),
        // so the comparison is of what each layer adds, not of page faults.
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.linear_memory_keep_resident(16 << 20).table_keep_resident(1 << 20).pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        config.epoch_interruption(epochs);
        let engine = wasmtime::Engine::new(&config)?;
        let component = Component::new(&engine, bytes)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        let pre = linker.instantiate_pre(&component)?;
        Ok(Self { engine, pre, epochs })
    }

    fn store(&self) -> wasmtime::Store<WasiState> {
        let state = WasiState { ctx: wasmtime_wasi::WasiCtxBuilder::new().build(), table: Default::default() };
        let mut store = wasmtime::Store::new(&self.engine, state);
        if self.epochs {
            store.set_epoch_deadline(u64::MAX / 2);
        }
        store
    }

    fn transform(&self, input: &[u8]) -> Result<Vec<u8>> {
        let mut store = self.store();
        let instance = self.pre.instantiate(&mut store)?;
        let f = instance.get_typed_func::<(&[u8],), (Vec<u8>,)>(&mut store, "transform")?;
        Ok(f.call(&mut store, (input,))?.0)
    }

    fn work(&self, rounds: u32) -> Result<u64> {
        let mut store = self.store();
        let instance = self.pre.instantiate(&mut store)?;
        let f = instance.get_typed_func::<(u32,), (u64,)>(&mut store, "work")?;
        Ok(f.call(&mut store, (rounds,))?.0)
    }
}

/// Loads `TENANTS` plugins, each the component with a custom section naming its tenant (so
/// each is compiled and kept apart, as tenants' own code would be), then calls them in turn.
async fn thousand_tenants(component: &[u8], input: &[u8]) -> Result<serde_json::Value> {
    let host = PluginHost::new(HostOptions { cache_dir: None, max_instances: 64, ..HostOptions::default() })?;
    let rss_before = rss_bytes();
    let started = Instant::now();
    let mut plugins = Vec::with_capacity(TENANTS);
    for i in 0..TENANTS {
        let name = format!("tenant-{i}");
        let tenant = host.tenant(&name, TenantLimits::default())?;
        let mut bytes = component.to_vec();
        append_custom_section(&mut bytes, "tenant", name.as_bytes());
        plugins.push(host.load(Source::Bytes(bytes), PluginOptions { tenant: Some(tenant), ..PluginOptions::default() }).await?);
    }
    let load_s = started.elapsed().as_secs_f64();
    let rss_after = rss_bytes();
    let calls = 20_000;
    let started = Instant::now();
    for i in 0..calls {
        tessera_transform(&plugins[i % TENANTS], input).await?;
    }
    let calls_per_s = calls as f64 / started.elapsed().as_secs_f64();
    Ok(json!({
        "tenants": TENANTS,
        "load_s": load_s,
        "memory_per_plugin_kib": (rss_after.saturating_sub(rss_before)) as f64 / 1024.0 / TENANTS as f64,
        "component_bytes": component.len(),
        "calls_per_s_round_robin": calls_per_s,
    }))
}

fn append_custom_section(bytes: &mut Vec<u8>, name: &str, payload: &[u8]) {
    let mut body = Vec::new();
    leb128(&mut body, name.len() as u64);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(payload);
    bytes.push(0);
    leb128(bytes, body.len() as u64);
    bytes.extend_from_slice(&body);
}

fn leb128(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok()).unwrap_or(0) * 1024
}
