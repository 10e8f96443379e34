//! The executor in process, without a `tessera` process per test: each invocation ends in
//! the typed outcome its limit names, slots are shared by every invocation, and an
//! embedder's own host interface reaches its state through the extension slot.

use std::sync::Arc;
use std::time::Duration;
use tessera_app::{LoadOptions, LoadedApp};
use tessera_capabilities::{Concurrency, InstanceState};
use tessera_engine::{Engine, EngineSettings};
use tessera_executor::{Executor, ExecutorOptions, Failure, InvokeError, PreparedComponent, Rejected};
use tessera_manifest::{Manifest, RuntimeConfig};

const HOSTILE: &str = r#"(component
    (core module $m
        (memory (export "memory") 1)
        (func (export "spin") (loop br 0))
        (func (export "grow")
            (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
            unreachable)
        (func $recurse (export "recurse") (call $recurse))
        (func (export "trap") unreachable)
        (func (export "ok")))
    (core instance $i (instantiate $m))
    (func (export "spin") (canon lift (core func $i "spin")))
    (func (export "grow") (canon lift (core func $i "grow")))
    (func (export "recurse") (canon lift (core func $i "recurse")))
    (func (export "trap") (canon lift (core func $i "trap")))
    (func (export "ok") (canon lift (core func $i "ok"))))"#;

const USES_HOST: &str = r#"(component
    (import "acme:test/host" (instance $h (export "add-one" (func (param "x" u32) (result u32)))))
    (core func $add (canon lower (func $h "add-one")))
    (core instance $host (export "add-one" (func $add)))
    (core module $m
        (import "host" "add-one" (func $add (param i32) (result i32)))
        (func (export "run") (result i32) (call $add (i32.const 41))))
    (core instance $i (instantiate $m (with "host" (instance $host))))
    (func (export "run") (result u32) (canon lift (core func $i "run"))))"#;

struct Fixture {
    executor: Executor,
    component: Arc<PreparedComponent>,
    _dir: tempfile::TempDir,
}

fn fixture(wat: &str, rc: RuntimeConfig, options: ExecutorOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guest.wat");
    std::fs::write(&path, wat).unwrap();
    let app = LoadedApp::from_manifest(
        Manifest::for_component(&path),
        &LoadOptions { runtime_config: Some(rc), state_dir: Some(dir.path().into()), log_dir: Some(dir.path().into()), ..LoadOptions::default() },
    )
    .unwrap();
    let engine = Engine::new(&EngineSettings { max_instances: 4, cache_dir: None, max_instance_memory: 8 << 20, ..EngineSettings::default() }).unwrap();
    let executor = Executor::new(&engine, Arc::new(app), options).unwrap();
    let component = executor.prepare("guest").unwrap();
    Fixture { executor, component, _dir: dir }
}

fn limits() -> RuntimeConfig {
    let mut rc = RuntimeConfig::default();
    rc.limits.request_timeout = Duration::from_millis(300);
    rc.limits.max_instance_memory = 4 << 20;
    rc
}

async fn call(f: &Fixture, name: &'static str) -> Result<(), InvokeError> {
    f.executor
        .invoke(&f.component, "test", move |store, instance| {
            Box::pin(async move {
                let func = instance.get_typed_func::<(), ()>(&mut *store, name)?;
                func.call_async(&mut *store, ()).await
            })
        })
        .await
        .map(|invoked| invoked.value)
}

#[tokio::test]
async fn each_way_of_ending_is_its_own_typed_failure() {
    let f = fixture(HOSTILE, limits(), ExecutorOptions::default());
    call(&f, "ok").await.unwrap();
    match call(&f, "spin").await.unwrap_err().failure() {
        Some(Failure::Timeout { limit }) => assert_eq!(*limit, Duration::from_millis(300)),
        other => panic!("spin: {other:?}"),
    }
    match call(&f, "grow").await.unwrap_err().failure() {
        Some(Failure::Memory { limit, requested, .. }) => assert!(*limit == 4 << 20 && *requested > *limit, "{limit} {requested}"),
        other => panic!("grow: {other:?}"),
    }
    assert!(matches!(call(&f, "recurse").await.unwrap_err().failure(), Some(Failure::StackOverflow { limit: 524288, .. })));
    match call(&f, "trap").await.unwrap_err().failure() {
        Some(Failure::Trap(e)) => assert!(format!("{e:?}").contains("unreachable"), "{e:?}"),
        other => panic!("trap: {other:?}"),
    }
    // Every instance was fresh: the component still answers.
    call(&f, "ok").await.unwrap();
}

#[tokio::test]
async fn a_fuel_budget_ends_in_a_fuel_failure_and_is_accounted() {
    let options = ExecutorOptions { fuel: Some(1_000_000), ..ExecutorOptions::default() };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("guest.wat");
    std::fs::write(&path, HOSTILE).unwrap();
    let app = LoadedApp::from_manifest(
        Manifest::for_component(&path),
        &LoadOptions { runtime_config: Some(limits()), state_dir: Some(dir.path().into()), log_dir: Some(dir.path().into()), ..LoadOptions::default() },
    )
    .unwrap();
    let engine = Engine::new(&EngineSettings { max_instances: 4, cache_dir: None, consume_fuel: true, ..EngineSettings::default() }).unwrap();
    let executor = Executor::new(&engine, Arc::new(app), options).unwrap();
    let f = Fixture { component: executor.prepare("guest").unwrap(), executor, _dir: dir };
    match call(&f, "spin").await.unwrap_err() {
        InvokeError::Failed { failure: Failure::Fuel { budget, .. }, account } => {
            assert_eq!(budget, 1_000_000);
            assert_eq!(account.and_then(|a| a.fuel_used), Some(1_000_000));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn every_invocation_counts_against_the_same_slots() {
    let mut rc = limits();
    rc.max_concurrent_requests = 1;
    rc.max_queued_requests = 0;
    let f = Arc::new(fixture(HOSTILE, rc, ExecutorOptions::default()));
    let spinning = tokio::spawn({
        let f = f.clone();
        async move { call(&f, "spin").await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(call(&f, "ok").await, Err(InvokeError::Busy(Rejected::QueueFull))), "the one slot is taken");
    assert!(matches!(spinning.await.unwrap().unwrap_err().failure(), Some(Failure::Timeout { .. })));
    call(&f, "ok").await.expect("the slot is free again");
}

#[tokio::test]
async fn an_embedders_host_interface_reads_its_state_from_the_extension_slot() {
    let link: tessera_executor::LinkExtension = Arc::new(|linker, _: Concurrency| {
        linker.instance("acme:test/host")?.func_wrap("add-one", |mut store: wasmtime::StoreContextMut<'_, InstanceState>, (x,): (u32,)| {
            let extra = store.data_mut().extension_mut::<u32>().copied().unwrap_or(0);
            Ok((x + 1 + extra,))
        })?;
        Ok(())
    });
    let f = fixture(USES_HOST, limits(), ExecutorOptions { link: Some(link), ..ExecutorOptions::default() });
    let mut state = f.component.capabilities().instance().unwrap();
    state.extension = Some(Box::new(100u32));
    let invoked = f
        .executor
        .invoke_with_state(&f.component, "test", state, |store, instance| {
            Box::pin(async move {
                let run = instance.get_typed_func::<(), (u32,)>(&mut *store, "run")?;
                Ok(run.call_async(&mut *store, ()).await?.0)
            })
        })
        .await
        .unwrap();
    assert_eq!(invoked.value, 142);
    assert!(invoked.account.wall > Duration::ZERO);
}
