//! `[[trigger.cron]]`, as the Spin cron plugin reads it: `cron_expression` with seconds
//! (UTC), the component exporting `spin:cron@3.0.0` `handle-cron-event` (async) or
//! `fermyon:spin-cron@2.0.0`'s.
//!
//! A tick whose previous run of the same trigger is still going is skipped and logged, so
//! a slow job never stacks instances; ticks missed while the host was stopped are not
//! replayed.

use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tessera_executor::{Executor, InvokeError, PreparedComponent};
use tokio::sync::watch;

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../capabilities/wit/deps/spin-redis", "wit"],
        world: "spin:cron/spin-cron@3.0.0",
        exports: { default: async },
    });
    pub mod v2 {
        wasmtime::component::bindgen!({
            path: ["../capabilities/wit/deps/spin-redis", "wit"],
            world: "fermyon:spin-cron/spin-cron@2.0.0",
            exports: { default: async },
        });
    }
}

#[derive(Clone, Copy, Debug)]
enum Export {
    /// `fermyon:spin-cron@2.0.0`.
    V2,
    /// `spin:cron@3.0.0`.
    V3,
}

struct Job {
    id: String,
    expression: String,
    schedule: ::cron::Schedule,
    component: Arc<PreparedComponent>,
    export: Export,
}

/// The cron triggers of one app.
pub struct CronTrigger {
    jobs: Vec<Arc<Job>>,
}

impl CronTrigger {
    /// Parses each schedule and prepares each component, checking its export.
    pub fn new(executor: &Executor) -> Result<Self> {
        let mut jobs = Vec::new();
        for trigger in &executor.app().manifest.cron_triggers {
            // The manifest checked the expression already.
            let schedule = tessera_manifest::cron::parse(&trigger.cron_expression).map_err(anyhow::Error::msg)?;
            let component = executor.prepare(&trigger.component)?;
            let export = cron_export(&component)?;
            jobs.push(Arc::new(Job { id: trigger.id.clone(), expression: trigger.cron_expression.clone(), schedule, component, export }));
        }
        Ok(Self { jobs })
    }

    /// `(trigger id, expression, component id)` of each job, for printing.
    pub fn schedules(&self) -> Vec<(String, String, String)> {
        self.jobs.iter().map(|j| (j.id.clone(), j.expression.clone(), j.component.id().to_string())).collect()
    }

    /// Whether the app has any cron trigger.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Runs every job on its schedule until `stop` turns true, then waits for runs in
    /// progress.
    pub async fn run(self, executor: Arc<Executor>, stop: watch::Receiver<bool>) {
        let tasks: Vec<_> = self.jobs.into_iter().map(|job| tokio::spawn(schedule(job, executor.clone(), stop.clone()))).collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

fn cron_export(component: &PreparedComponent) -> Result<Export> {
    // Both versions export a top-level `handle-cron-event` of the same shape; 3.0.0's is
    // async.
    let c = component.component();
    let is_async = c.component_type().exports(c.engine()).any(|(name, item)| {
        name == "handle-cron-event" && matches!(item.ty, wasmtime::component::types::ComponentItem::ComponentFunc(f) if f.async_())
    });
    let pre = component.instance_pre();
    let v3 = is_async && bindings::SpinCronPre::new(pre.clone()).is_ok();
    let v2 = !is_async && bindings::v2::SpinCronPre::new(pre.clone()).is_ok();
    match (v2, v3) {
        (_, true) => Ok(Export::V3),
        (true, false) => Ok(Export::V2),
        (false, false) => bail!(
            "component `{}` is used by a [[trigger.cron]] but exports no handle-cron-event (spin:cron@3.0.0 or fermyon:spin-cron@2.0.0); build it with the Spin cron SDK (`#[cron_component]`)",
            component.id()
        ),
    }
}

async fn schedule(job: Arc<Job>, executor: Arc<Executor>, mut stop: watch::Receiver<bool>) {
    let running = Arc::new(AtomicBool::new(false));
    let mut runs = tokio::task::JoinSet::new();
    for next in job.schedule.upcoming(chrono::Utc) {
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
        while runs.try_join_next().is_some() {}
        if running.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                target: "tessera::access",
                "cron {} tick at {next} skipped: the previous run of component `{}` is still going",
                job.id,
                job.component.id()
            );
            continue;
        }
        let (job, executor, running) = (job.clone(), executor.clone(), running.clone());
        runs.spawn(async move {
            fire(&executor, &job, next.timestamp().max(0) as u64).await;
            running.store(false, Ordering::Release);
        });
    }
    while runs.join_next().await.is_some() {}
}

async fn fire(executor: &Executor, job: &Job, timestamp: u64) {
    let started = std::time::Instant::now();
    let outcome = match job.export {
        Export::V3 => {
            executor
                .invoke(&job.component, "cron", move |store, instance| {
                    Box::pin(async move {
                        let guest = bindings::SpinCron::new(&mut *store, &instance)?;
                        let metadata = bindings::spin::cron::cron_types::Metadata { timestamp };
                        let result = store.run_concurrent(async move |accessor| guest.call_handle_cron_event(accessor, metadata).await).await??;
                        Ok(result.map_err(|bindings::spin::cron::cron_types::Error::Other(e)| e))
                    })
                })
                .await
        }
        Export::V2 => {
            executor
                .invoke(&job.component, "cron", move |store, instance| {
                    Box::pin(async move {
                        let guest = bindings::v2::SpinCron::new(&mut *store, &instance)?;
                        let metadata = bindings::v2::fermyon::spin_cron::cron_types::Metadata { timestamp };
                        let result = guest.call_handle_cron_event(&mut *store, metadata).await?;
                        Ok(result.map_err(|bindings::v2::fermyon::spin_cron::cron_types::Error::Other(e)| e))
                    })
                })
                .await
        }
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let component = job.component.id();
    match outcome {
        Ok(invoked) => {
            let cost = crate::cost(Some(invoked.account));
            match invoked.value {
                Ok(()) => tracing::info!(target: "tessera::access", "cron {} ok {ms:.2}ms component={component}{cost}", job.id),
                Err(e) => tracing::warn!(target: "tessera::access", "cron {} handler-error({e}) {ms:.2}ms component={component}{cost}", job.id),
            }
        }
        Err(e @ InvokeError::Busy(_)) => tracing::warn!(
            target: "tessera::access",
            "cron {} skipped ({e}) {ms:.2}ms component={component} (raise max_concurrent_requests or max_queued_requests in the runtime config)",
            job.id
        ),
        Err(e) => tracing::warn!(target: "tessera::access", "cron {} failed ({e}) {ms:.2}ms component={component}{}", job.id, crate::cost(e.account())),
    }
}
