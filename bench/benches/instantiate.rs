//! Instantiation time per request: from a pre-instantiated component to a ready instance,
//! through the same code path a request takes (`ServedComponent::instantiate_idle`), the
//! whole cycle including tearing the instance down again, and a whole request handled in
//! process (instance, guest run, response body read; no sockets, no HTTP parsing).
//!
//! Criterion reports means; every single instantiation is also timed so p50/p99 can be
//! given. They are written as JSON to `$TESSERA_BENCH_OUT` (default
//! `target/bench/instantiate.json`). Needs the example guests built
//! (`scripts/build-guests.sh --all`).

use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt as _, Empty};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_app::{LoadOptions, LoadedApp};
use tessera_engine::{Engine, EngineSettings};
use tessera_executor::{Executor, ExecutorOptions};
use tessera_trigger_http::{HttpTrigger, RequestData, ServedComponent};
use wasmtime_wasi_http::WasiBody;

const GUESTS: &[(&str, &str)] = &[
    ("hello-c", "examples/hello-c"),
    ("hello-rust", "examples/hello-rust"),
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn served(engine: &Engine, dir: &Path) -> Arc<ServedComponent> {
    let app = LoadedApp::load(&dir.join("spin.toml"), &LoadOptions::default()).unwrap();
    let executor = Executor::new(engine, Arc::new(app), ExecutorOptions::default()).unwrap();
    let trigger = HttpTrigger::new(&executor).unwrap();
    trigger
        .component("hello")
        .expect("the example's component is `hello`")
        .clone()
}

/// Runs `one` (which times itself) as a criterion benchmark; returns every single time.
fn timed(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    runtime: &tokio::runtime::Runtime,
    one: impl AsyncFn() -> Duration,
) -> Vec<Duration> {
    let times = Mutex::new(Vec::new());
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut batch = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    batch.push(one().await);
                }
                let total = batch.iter().sum();
                times.lock().unwrap().extend(batch);
                total
            })
        })
    });
    times.into_inner().unwrap()
}

fn request() -> http::Request<WasiBody> {
    let body = Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync();
    http::Request::get("http://127.0.0.1/").body(body).unwrap()
}

fn request_data() -> RequestData {
    RequestData {
        id: 1,
        peak_memory: Default::default(),
        cpu: Default::default(),
        failed: Default::default(),
        span: tracing::Span::none(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e6
}

fn instantiation(c: &mut Criterion) {
    let engine = Engine::new(&EngineSettings {
        cache_dir: None,
        ..EngineSettings::default()
    })
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut report = Vec::new();
    for (name, dir) in GUESTS {
        let served = served(&engine, &workspace().join(dir));
        let mut group = c.benchmark_group(*name);
        let ready = timed(&mut group, "instantiate", &runtime, async || {
            let start = Instant::now();
            let instance = served.instantiate_idle().await.unwrap();
            let took = start.elapsed();
            drop(instance);
            took
        });
        let cycle = timed(&mut group, "instantiate and drop", &runtime, async || {
            let start = Instant::now();
            drop(served.instantiate_idle().await.unwrap());
            start.elapsed()
        });
        let whole = timed(&mut group, "request in process", &runtime, async || {
            let start = Instant::now();
            let response = served.handle(request_data(), request()).await.unwrap();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let took = start.elapsed();
            assert!(!body.is_empty());
            took
        });
        group.finish();
        for (what, mut times) in [
            ("instantiate", ready),
            ("instantiate and drop", cycle),
            ("request in process", whole),
        ] {
            if times.is_empty() {
                continue; // filtered out on the command line
            }
            times.sort();
            let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
            println!(
                "{name} {what}: p50 {p50:.2} us, p99 {p99:.2} us over {} samples",
                times.len()
            );
            report.push(format!(
                "{{\"guest\":\"{name}\",\"measure\":\"{what}\",\"samples\":{},\"p50_us\":{p50:.3},\"p99_us\":{p99:.3}}}",
                times.len()
            ));
        }
    }
    let out = std::env::var_os("TESSERA_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/bench/instantiate.json"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(&out, format!("[{}]\n", report.join(",\n"))).unwrap();
}

criterion_group!(benches, instantiation);
criterion_main!(benches);
