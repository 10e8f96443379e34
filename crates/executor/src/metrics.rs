//! Prometheus metrics, per app and component: invocations by trigger and outcome, their
//! latency, guest CPU time and peak memory, the wait for an instance slot, slots in use
//! and the waiting line, limits hit by name, and host calls by capability. One [`Metrics`] per process (a host of
//! many apps shares it); each app records through its own [`AppMetrics`]. Beside the
//! counters it keeps the last [`RECENT_FAILURES`] failures with their reasons, for the
//! dashboard.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use crate::{InstanceSlots, PreparedComponent};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Invocation {
    app: String,
    component: String,
    trigger: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Component {
    app: String,
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct App {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Limit {
    app: String,
    component: String,
    limit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CapabilityCall {
    app: String,
    component: String,
    capability: String,
}

/// The prepared components whose host calls are read when scraped.
#[derive(Default)]
struct CallWatch(Mutex<Vec<(String, String, Weak<PreparedComponent>)>>);

impl std::fmt::Debug for CallWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallWatch")
    }
}

impl Collector for CallWatch {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut watched = self.0.lock().unwrap_or_else(|e| e.into_inner());
        watched.retain(|(_, _, p)| p.strong_count() > 0);
        let help = "Host calls guests made, by capability (key_value, sqlite, redis, postgres, mysql, mqtt, messaging, blobstore, variables, outbound_http)";
        let mut family = encoder.encode_descriptor("capability_calls", help, None, prometheus_client::metrics::MetricType::Counter)?;
        for (app, component, prepared) in watched.iter() {
            let Some(prepared) = prepared.upgrade() else { continue };
            for (capability, calls) in prepared.capabilities.calls().counts().filter(|(_, n)| *n > 0) {
                let labels = CapabilityCall { app: app.clone(), component: component.clone(), capability: capability.to_string() };
                ConstCounter::new(calls).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_buckets() -> Histogram {
    // 100 µs to ~26 s.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0001, 4.0, 10))
}

fn memory_buckets() -> Histogram {
    // 64 KiB to 4 GiB.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(65536.0, 4.0, 9))
}

/// How many failures [`Metrics::recent_failures`] keeps.
pub const RECENT_FAILURES: usize = 50;

/// One failed or refused invocation.
#[derive(Debug, Clone)]
pub struct RecentFailure {
    /// When it ended.
    pub at: SystemTime,
    /// The app.
    pub app: String,
    /// The component, or `-` when the host refused the request before choosing one.
    pub component: String,
    /// Why, as the log says it.
    pub reason: String,
}

/// Every metric of the process.
pub struct Metrics {
    registry: Mutex<Registry>,
    invocations: Family<Invocation, Counter>,
    duration: HistogramFamily<Invocation>,
    cpu: Family<Component, Counter<f64, AtomicU64>>,
    peak_memory: HistogramFamily<Component>,
    queue_wait: HistogramFamily<App>,
    slots_in_use: Family<App, Gauge>,
    waiting: Family<App, Gauge>,
    limits_hit: Family<Limit, Counter>,
    /// The slots of each app, read when scraped.
    slots: Mutex<Vec<(String, Weak<InstanceSlots>)>>,
    /// The components whose capability calls are counted.
    calls: Arc<CallWatch>,
    /// The newest last.
    recent_failures: Mutex<VecDeque<RecentFailure>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let invocations = Family::<Invocation, Counter>::default();
        registry.register("invocations", "Invocations (HTTP requests, messages, cron runs) by app, component, trigger and outcome (an HTTP status, `ok` or `failed`)", invocations.clone());
        let duration = HistogramFamily::<Invocation>::new_with_constructor(latency_buckets as fn() -> Histogram);
        registry.register_with_unit("invocation_duration", "Time from arrival to the end of the answer", prometheus_client::registry::Unit::Seconds, duration.clone());
        let cpu = Family::<Component, Counter<f64, AtomicU64>>::default();
        registry.register_with_unit("guest_cpu", "CPU time guests spent running", prometheus_client::registry::Unit::Seconds, cpu.clone());
        let peak_memory = HistogramFamily::<Component>::new_with_constructor(memory_buckets as fn() -> Histogram);
        registry.register_with_unit("instance_peak_memory", "The most linear memory and tables an instance held", prometheus_client::registry::Unit::Bytes, peak_memory.clone());
        let queue_wait = HistogramFamily::<App>::new_with_constructor(latency_buckets as fn() -> Histogram);
        registry.register_with_unit("slot_wait", "Time an invocation waited for an instance slot", prometheus_client::registry::Unit::Seconds, queue_wait.clone());
        let slots_in_use = Family::<App, Gauge>::default();
        registry.register("instance_slots_in_use", "Instance slots held now", slots_in_use.clone());
        let waiting = Family::<App, Gauge>::default();
        registry.register("queued_invocations", "Invocations waiting for an instance slot now", waiting.clone());
        let limits_hit = Family::<Limit, Counter>::default();
        registry.register("limits_hit", "Invocations stopped or refused by a limit, by the limit's runtime-config name", limits_hit.clone());
        let calls = Arc::new(CallWatch::default());
        registry.register_collector(Box::new(calls.clone()));
        Self {
            registry: Mutex::new(registry),
            invocations,
            duration,
            cpu,
            peak_memory,
            queue_wait,
            slots_in_use,
            waiting,
            limits_hit,
            slots: Mutex::default(),
            calls,
            recent_failures: Mutex::default(),
        }
    }
}

impl Metrics {
    /// The handle app `name` records through.
    pub fn for_app(self: &Arc<Self>, name: &str) -> Arc<AppMetrics> {
        Arc::new(AppMetrics { metrics: self.clone(), app: name.to_string() })
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|(_, s)| s.strong_count() > 0);
        for (app, s) in slots.iter() {
            if let Some(s) = s.upgrade() {
                let label = App { app: app.clone() };
                self.slots_in_use.get_or_create(&label).set(s.in_use() as i64);
                self.waiting.get_or_create(&label).set(s.waiting() as i64);
            }
        }
        drop(slots);
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// The last failures of every app, newest first.
    pub fn recent_failures(&self) -> Vec<RecentFailure> {
        self.recent_failures.lock().unwrap_or_else(|e| e.into_inner()).iter().rev().cloned().collect()
    }

    /// Forgets the series of app `name` (undeployed).
    pub fn remove_app(&self, name: &str) {
        let app = App { app: name.to_string() };
        self.slots_in_use.remove(&app);
        self.waiting.remove(&app);
        self.queue_wait.remove(&app);
    }
}

/// One app's view of the metrics.
pub struct AppMetrics {
    metrics: Arc<Metrics>,
    app: String,
}

/// What one invocation cost, recorded when it ends.
#[derive(Debug, Clone, Copy)]
pub struct InvocationRecord<'a> {
    /// The component, or `-` when the host answered.
    pub component: &'a str,
    /// `http`, `redis`, `mqtt`, `messaging`, `cron`.
    pub trigger: &'a str,
    /// An HTTP status, or `ok` / `failed`.
    pub outcome: &'a str,
    /// From arrival to the end of the answer.
    pub duration: Duration,
    /// Guest CPU time, when an instance ran.
    pub cpu: Option<Duration>,
    /// Peak instance memory in bytes, when an instance ran.
    pub peak_memory: Option<u64>,
}

impl AppMetrics {
    /// The app's name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// Reads the app's slots when scraped.
    pub fn watch_slots(&self, slots: &Arc<InstanceSlots>) {
        self.metrics.slots.lock().unwrap_or_else(|e| e.into_inner()).push((self.app.clone(), Arc::downgrade(slots)));
    }

    /// Counts `component`'s host calls by capability when scraped, while it is deployed.
    pub fn watch_calls(&self, component: &Arc<PreparedComponent>) {
        let watched = (self.app.clone(), component.subject.id.to_string(), Arc::downgrade(component));
        self.metrics.calls.0.lock().unwrap_or_else(|e| e.into_inner()).push(watched);
    }

    /// Records one ended invocation.
    pub fn invocation(&self, record: InvocationRecord<'_>) {
        let labels = Invocation { app: self.app.clone(), component: record.component.to_string(), trigger: record.trigger.to_string(), outcome: record.outcome.to_string() };
        self.metrics.invocations.get_or_create(&labels).inc();
        self.metrics.duration.get_or_create(&labels).observe(record.duration.as_secs_f64());
        let component = Component { app: self.app.clone(), component: record.component.to_string() };
        if let Some(cpu) = record.cpu {
            self.metrics.cpu.get_or_create(&component).inc_by(cpu.as_secs_f64());
        }
        if let Some(peak) = record.peak_memory {
            self.metrics.peak_memory.get_or_create(&component).observe(peak as f64);
        }
    }

    /// Records how long an invocation waited for its slot.
    pub fn slot_wait(&self, waited: Duration) {
        self.metrics.queue_wait.get_or_create(&App { app: self.app.clone() }).observe(waited.as_secs_f64());
    }

    /// Counts a limit hit by `component`, by its runtime-config name.
    pub fn limit_hit(&self, component: &str, limit: &str) {
        self.metrics.limits_hit.get_or_create(&Limit { app: self.app.clone(), component: component.to_string(), limit: limit.to_string() }).inc();
    }

    /// Counts a request the host refused for `limit` before running it, and keeps it among
    /// the recent failures.
    pub fn refused(&self, component: &str, limit: &str) {
        self.limit_hit(component, limit);
        self.failure(component, format!("refused: {limit} reached"));
    }

    /// Keeps a failure of `component` among the recent ones.
    pub fn failure(&self, component: &str, reason: String) {
        let mut recent = self.metrics.recent_failures.lock().unwrap_or_else(|e| e.into_inner());
        if recent.len() == RECENT_FAILURES {
            recent.pop_front();
        }
        recent.push_back(RecentFailure { at: SystemTime::now(), app: self.app.clone(), component: component.to_string(), reason });
    }
}
