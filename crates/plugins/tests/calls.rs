//! The embedding API end to end on tiny components written in WAT: every quota with its
//! typed error, metering against known instruction counts and memory sizes, a fresh
//! instance per call, the embedder's own host function, cancellation from another
//! thread, per-tenant concurrency, and plugins refused by the trust check.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tessera_plugins::*;
use wasmtime::component::Val;

fn host_with(options: HostOptions) -> PluginHost {
    PluginHost::new(HostOptions { cache_dir: None, max_instances: 16, ..options }).unwrap()
}

fn host() -> PluginHost {
    host_with(HostOptions::default())
}

async fn load(host: &PluginHost, wat: &str) -> Plugin {
    load_with(host, wat, PluginOptions::default()).await
}

async fn load_with(host: &PluginHost, wat: &str, options: PluginOptions) -> Plugin {
    host.load(Source::Bytes(wat::parse_str(wat).unwrap()), options).await.unwrap()
}

/// Exports `name` of core module `$m` as a component function of type `ty`.
fn component(module: &str, exports: &[(&str, &str)]) -> String {
    let lifts: String = exports
        .iter()
        .map(|(name, ty)| format!(r#"(func (export "{name}") {ty} (canon lift (core func $i "{name}") (memory (core memory $i "mem"))))"#))
        .collect();
    format!(r#"(component (core module $m (memory (export "mem") 1) {module}) (core instance $i (instantiate $m)) {lifts})"#)
}

/// `count(n)` runs a loop of n rounds of 9 instructions each.
const COUNT: &str = r#"(func (export "count") (param $n i32) (result i32) (local $i i32)
    (block $done
        (loop $round
            local.get $i local.get $n i32.ge_u br_if $done
            local.get $i i32.const 1 i32.add local.set $i
            br $round))
    local.get $i)"#;

#[tokio::test]
async fn instructions_are_counted_exactly() {
    let host = host();
    let plugin = load(&host, &component(COUNT, &[("count", r#"(param "n" u32) (result u32)"#)])).await;
    let mut used = Vec::new();
    for n in [0u32, 1, 1000] {
        let called = plugin.call_dynamic(Call::new(), "count", vec![Val::U32(n)]).await.unwrap();
        assert_eq!(called.value, vec![Val::U32(n)]);
        used.push(called.metering.instructions.expect("metered"));
    }
    // n = 0: the exit test (4) and `local.get $i` (1), plus the one fuel Wasmtime charges
    // for the function itself; each round adds 9 (block, loop and end are free).
    assert_eq!(used, vec![6, 6 + 9, 6 + 9 * 1000]);
}

#[tokio::test]
async fn the_instruction_quota_stops_a_loop_and_names_itself() {
    let host = host();
    let plugin = load(&host, &component(COUNT, &[("count", r#"(param "n" u32) (result u32)"#)])).await;
    let quotas = Quotas { instructions: 9_000, ..Quotas::DEFAULT };
    // 999 rounds fit in 9,000 instructions; 1,000 do not.
    plugin.call_dynamic(Call::new().quotas(quotas), "count", vec![Val::U32(999)]).await.unwrap();
    let error = plugin.call_dynamic(Call::new().quotas(quotas), "count", vec![Val::U32(1000)]).await.unwrap_err();
    assert_eq!(error.reason, Reason::Quota { quota: Quota::Fuel, limit: 9_000 });
    assert_eq!(error.quota(), Some((Quota::Fuel, 9_000)));
    assert!(error.message.contains("instruction quota"), "{}", error.message);
    assert_eq!(error.metering.and_then(|m| m.instructions), Some(9_000));
}

#[tokio::test]
async fn memory_is_metered_and_the_memory_quota_stops_a_bomb() {
    let host = host();
    let grow = r#"(func (export "grow") (param i32) (result i32)
        (if (i32.eq (memory.grow (local.get 0)) (i32.const -1)) (then unreachable))
        memory.size)"#;
    let plugin = load(&host, &component(grow, &[("grow", r#"(param "pages" u32) (result u32)"#)])).await;
    let called = plugin.call_dynamic(Call::new(), "grow", vec![Val::U32(2)]).await.unwrap();
    assert_eq!(called.value, vec![Val::U32(3)]);
    assert_eq!(called.metering.peak_memory_bytes, 3 * 65536);

    let quotas = Quotas { memory: 1 << 20, ..Quotas::DEFAULT };
    let error = plugin.call_dynamic(Call::new().quotas(quotas), "grow", vec![Val::U32(100)]).await.unwrap_err();
    assert_eq!(error.reason, Reason::Quota { quota: Quota::Memory, limit: 1 << 20 });
    // A fresh call with the default quota is not affected.
    let called = plugin.call_dynamic(Call::new(), "grow", vec![Val::U32(100)]).await.unwrap();
    assert_eq!(called.value, vec![Val::U32(101)]);
}

#[tokio::test]
async fn the_timeout_stops_a_loop_when_instructions_are_not_metered() {
    let host = host_with(HostOptions { meter_instructions: false, ..HostOptions::default() });
    let plugin = load(&host, &component(r#"(func (export "spin") (loop br 0))"#, &[("spin", "")])).await;
    let quotas = Quotas { timeout: Duration::from_millis(100), ..Quotas::DEFAULT };
    let error = plugin.call_wave(Call::new().quotas(quotas), "spin()").await.unwrap_err();
    assert_eq!(error.reason, Reason::Quota { quota: Quota::Timeout, limit: 100 });
    let metering = error.metering.expect("it ran");
    assert_eq!(metering.instructions, None);
    assert!(metering.wall >= Duration::from_millis(100), "{metering:?}");
}

#[tokio::test]
async fn deep_recursion_is_stopped_by_the_stack_limit() {
    let host = host();
    let recurse = r#"(func $r (export "recurse") (param i32) (result i32) local.get 0 i32.const 1 i32.add call $r)"#;
    let plugin = load(&host, &component(recurse, &[("recurse", r#"(param "n" u32) (result u32)"#)])).await;
    let error = plugin.call_wave(Call::new(), "recurse(0)").await.unwrap_err();
    assert_eq!(error.reason, Reason::Quota { quota: Quota::Stack, limit: 512 << 10 });
}

/// `text(n)` returns a string of n `a`s.
const TEXT: &str = r#"(func (export "text") (param $n i32) (result i32)
    (memory.fill (i32.const 16) (i32.const 97) (local.get $n))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (local.get $n))
    i32.const 0)"#;

#[tokio::test]
async fn the_result_size_quota_refuses_a_huge_output() {
    let host = host();
    let plugin = load(&host, &component(TEXT, &[("text", r#"(param "n" u32) (result string)"#)])).await;
    let quotas = Quotas { result_size: 1000, ..Quotas::DEFAULT };
    // WAVE text of 998 letters is 1,000 bytes with its quotes.
    let called = plugin.call_wave(Call::new().quotas(quotas), "text(998)").await.unwrap();
    assert_eq!(called.value[0].len(), 1000);
    let error = plugin.call_wave(Call::new().quotas(quotas), "text(999)").await.unwrap_err();
    assert_eq!(error.reason, Reason::Quota { quota: Quota::ResultSize, limit: 1000 });
    assert!(error.message.contains("returned 1001 bytes"), "{}", error.message);
}

/// A typed call of `text(n)`.
fn text(
    n: u32,
) -> impl for<'a> FnOnce(&'a mut wasmtime::Store<InstanceState>, wasmtime::component::Instance) -> futures::future::BoxFuture<'a, wasmtime::Result<String>> + Send + 'static {
    move |store, instance| {
        Box::pin(async move {
            let f = instance.get_typed_func::<(u32,), (String,)>(&mut *store, "text")?;
            let (s,) = f.call_async(&mut *store, (n,)).await?;
            Ok(s)
        })
    }
}

#[tokio::test]
async fn typed_calls_count_their_result_as_json() {
    let host = host();
    let plugin = load(&host, &component(TEXT, &[("text", r#"(param "n" u32) (result string)"#)])).await;
    let quotas = Quotas { result_size: 12, ..Quotas::DEFAULT };
    let called = plugin.call(Call::new().quotas(quotas), text(10)).await.unwrap();
    assert_eq!(called.value, "a".repeat(10));
    let error = plugin.call(Call::new().quotas(quotas), text(11)).await.unwrap_err();
    assert_eq!(error.quota(), Some((Quota::ResultSize, 12)));
}

#[tokio::test]
async fn a_trap_is_a_trap_and_each_call_gets_a_fresh_instance() {
    let host = host();
    let module = r#"(global $calls (mut i32) (i32.const 0))
        (func (export "bump") (result i32) (global.set $calls (i32.add (global.get $calls) (i32.const 1))) global.get $calls)
        (func (export "crash") unreachable)"#;
    let plugin = load(&host, &component(module, &[("bump", "(result u32)"), ("crash", "")])).await;
    for _ in 0..3 {
        assert_eq!(plugin.call_wave(Call::new(), "bump()").await.unwrap().value, ["1"]);
    }
    let error = plugin.call_wave(Call::new(), "crash()").await.unwrap_err();
    assert_eq!(error.reason, Reason::Trap);
    assert!(error.message.contains("unreachable"), "{}", error.message);
    assert_eq!(plugin.call_wave(Call::new(), "bump()").await.unwrap().value, ["1"]);
}

#[tokio::test]
async fn bad_calls_say_what_is_exported() {
    let host = host();
    let plugin = load(&host, &component(COUNT, &[("count", r#"(param "n" u32) (result u32)"#)])).await;
    let error = plugin.call_wave(Call::new(), "cuont(1)").await.unwrap_err();
    assert_eq!(error.reason, Reason::BadCall);
    assert!(error.message.contains("exports no function `cuont`") && error.message.contains("count"), "{}", error.message);
    let error = plugin.call_wave(Call::new(), "count(\"x\")").await.unwrap_err();
    assert_eq!(error.reason, Reason::BadCall);
    let error = plugin.call_wave(Call::new(), "count(1").await.unwrap_err();
    assert!(error.message.contains("WAVE"), "{}", error.message);
}

/// A plugin importing the embedder's `acme:test/host.ping`, which counts into per-call state.
const PING: &str = r#"(component
    (import "acme:test/host" (instance $host (export "ping" (func))))
    (core func $ping (canon lower (func $host "ping")))
    (core module $m
        (import "host" "ping" (func $ping))
        (func (export "ping-n") (param $n i32) (result i32) (local $i i32)
            (block $done (loop $round
                local.get $i local.get $n i32.ge_u br_if $done
                call $ping
                local.get $i i32.const 1 i32.add local.set $i
                br $round))
            local.get $i)
        (func (export "flood") (loop call $ping br 0)))
    (core instance $i (instantiate $m (with "host" (instance (export "ping" (func $ping))))))
    (func (export "ping-n") (param "n" u32) (result u32) (canon lift (core func $i "ping-n")))
    (func (export "flood") (canon lift (core func $i "flood"))))"#;

struct Pings(Arc<AtomicU64>);

fn ping_host(options: HostOptions) -> PluginHost {
    host_with(HostOptions {
        link: Some(Arc::new(|linker, _| {
            linker.instance("acme:test/host")?.func_wrap("ping", |mut store: wasmtime::StoreContextMut<'_, InstanceState>, (): ()| {
                let pings = store.data_mut().extension_mut::<Pings>().expect("each call brings Pings");
                pings.0.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })?;
            Ok(())
        })),
        ..options
    })
}

#[tokio::test]
async fn the_embedders_host_function_sees_per_call_state_and_a_flood_is_stopped() {
    let host = ping_host(HostOptions::default());
    let plugin = host.load(Source::Bytes(wat::parse_str(PING).unwrap()), PluginOptions::default()).await.unwrap();
    let pings = Arc::new(AtomicU64::new(0));
    let called = plugin.call_wave(Call::new().extension(Pings(pings.clone())), "ping-n(5)").await.unwrap();
    assert_eq!(called.value, ["5"]);
    assert_eq!(pings.load(Ordering::Relaxed), 5);

    let flood = Arc::new(AtomicU64::new(0));
    let quotas = Quotas { instructions: 1_000_000, ..Quotas::DEFAULT };
    let error = plugin.call_wave(Call::new().quotas(quotas).extension(Pings(flood.clone())), "flood()").await.unwrap_err();
    assert_eq!(error.quota(), Some((Quota::Fuel, 1_000_000)));
    // Each round of the flood is a call and a branch.
    assert_eq!(flood.load(Ordering::Relaxed), 500_000);
}

#[tokio::test]
async fn a_call_is_cancelled_from_another_thread() {
    let host = host_with(HostOptions { meter_instructions: false, ..HostOptions::default() });
    let plugin = load(&host, &component(r#"(func (export "spin") (loop br 0))"#, &[("spin", "")])).await;
    let token = CancellationToken::new();
    let canceller = token.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        canceller.cancel();
    });
    let quotas = Quotas { timeout: Duration::from_secs(60), ..Quotas::DEFAULT };
    let started = Instant::now();
    let error = plugin.call_wave(Call::new().quotas(quotas).cancel_on(token), "spin()").await.unwrap_err();
    assert_eq!(error.reason, Reason::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(30), "the cancelled call went on for {:?}", started.elapsed());
    // The plugin still answers.
    let quotas = Quotas { timeout: Duration::from_millis(50), ..Quotas::DEFAULT };
    assert_eq!(plugin.call_wave(Call::new().quotas(quotas), "spin()").await.unwrap_err().quota(), Some((Quota::Timeout, 50)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_past_its_concurrency_waits_then_is_refused_while_others_run() {
    let host = host_with(HostOptions { meter_instructions: false, ..HostOptions::default() });
    let limits = TenantLimits { max_concurrent: 1, max_queued: 1, queue_timeout: Duration::from_millis(200) };
    let busy = host.tenant("busy", limits).unwrap();
    let calm = host.tenant("calm", limits).unwrap();
    let spin = component(r#"(func (export "spin") (loop br 0))"#, &[("spin", "")]);
    let busy_plugin = load_with(&host, &spin, PluginOptions { tenant: Some(busy), ..PluginOptions::default() }).await;
    let calm_plugin = load_with(&host, &component(COUNT, &[("count", r#"(param "n" u32) (result u32)"#)]), PluginOptions { tenant: Some(calm), ..PluginOptions::default() }).await;

    let long = Quotas { timeout: Duration::from_secs(2), ..Quotas::DEFAULT };
    let running = tokio::spawn({
        let p = busy_plugin.clone();
        async move { p.call_wave(Call::new().quotas(long), "spin()").await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn({
        let p = busy_plugin.clone();
        async move { p.call_wave(Call::new().quotas(long), "spin()").await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The line holds one: a third call is refused at once.
    let refused = busy_plugin.call_wave(Call::new().quotas(long), "spin()").await.unwrap_err();
    assert_eq!(refused.quota(), Some((Quota::Concurrency, 1)));
    assert!(refused.message.contains("1 calls are waiting already"), "{}", refused.message);
    assert!(refused.metering.is_none());
    // Another tenant is not held up.
    assert_eq!(calm_plugin.call_wave(Call::new(), "count(3)").await.unwrap().value, ["3"]);
    // The waiting call gives up after the queue timeout.
    let waited = waiting.await.unwrap().unwrap_err();
    assert_eq!(waited.quota(), Some((Quota::Concurrency, 1)));
    assert!(waited.message.contains("queue timeout"), "{}", waited.message);
    assert_eq!(running.await.unwrap().unwrap_err().quota(), Some((Quota::Timeout, 2000)));
}

#[tokio::test]
async fn the_same_bytes_are_compiled_once_and_quotas_are_checked_at_load() {
    let host = host();
    let wat = component(COUNT, &[("count", r#"(param "n" u32) (result u32)"#)]);
    let a = load(&host, &wat).await;
    let b = load(&host, &wat).await;
    assert_eq!(a.digest(), b.digest());
    assert!(a.shares_code_with(&b));
    let too_big = PluginOptions { quotas: Quotas { memory: 1 << 40, ..Quotas::DEFAULT }, ..PluginOptions::default() };
    let error = host.load(Source::Bytes(wat::parse_str(&wat).unwrap()), too_big).await.err().expect("refused");
    assert!(format!("{error:#}").contains("HostOptions::max_memory"), "{error:#}");
}
