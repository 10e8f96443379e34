//! A small multi-tenant product built on `tessera-plugins`: each tenant uploads a discount
//! rule, a component implementing `acme:discounts/rules` (wit/discounts.wit), and every
//! checkout event runs through that tenant's rule, on a fresh sandbox, with Shopify
//! Functions' limits (11M instructions, 128 KB in, 20 KB out, 1 KB of logs).
//!
//! ```text
//! PUT  /tenants/{tenant}/plugin    body: the component      -> 201 {"tenant", "digest"}
//! POST /tenants/{tenant}/events    body: a cart as JSON     -> 200 {"cart", "metering", "logs"}
//!                                  a quota hit              -> 422 {"error": {"quota", "limit", "message"}}
//!                                  the tenant is too busy   -> 429 (Retry-After: 1)
//! ```
//!
//! `plugin-host --listen 127.0.0.1:8080` (default); port 0 picks a free one. The address is
//! printed on stdout.

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tessera_plugins::{
    Call, CallError, HostOptions, InstanceState, Metering, Plugin, PluginHost, PluginOptions, Quota, Quotas, Reason, Source,
    Tenant, TenantLimits,
};
use wasmtime::component::HasSelf;

wasmtime::component::bindgen!({
    path: "wit",
    world: "rules",
    imports: { default: async },
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize],
});

/// Largest cart accepted (Shopify Functions' input limit).
const MAX_INPUT: usize = 128_000;
/// Largest plugin accepted (a Python rule built by componentize-py is about 18 MB).
const MAX_PLUGIN: usize = 64 << 20;

/// What each tenant may run at once, and how many events wait.
const TENANT_LIMITS: TenantLimits = TenantLimits { max_concurrent: 2, max_queued: 16, queue_timeout: Duration::from_secs(2) };

/// The product's own data a rule may ask about through `acme:discounts/host`; one per call.
struct Product {
    tiers: Arc<HashMap<String, String>>,
}

impl acme::discounts::host::Host for Product {
    async fn loyalty_tier(&mut self, customer: String) -> String {
        self.tiers.get(&customer).cloned().unwrap_or_else(|| "none".into())
    }
}

struct Service {
    host: PluginHost,
    tiers: Arc<HashMap<String, String>>,
    tenants: RwLock<HashMap<String, (Tenant, Option<Plugin>)>>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:8080".to_string();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().context("--listen needs an address, e.g. 127.0.0.1:8080")?,
            other => anyhow::bail!("unknown argument `{other}`; usage: plugin-host [--listen ADDR]"),
        }
    }
    let host = PluginHost::new(HostOptions {
        link: Some(Arc::new(|linker, _| {
            acme::discounts::host::add_to_linker::<InstanceState, HasSelf<Product>>(linker, |state| {
                state.extension_mut::<Product>().expect("every call brings the product's data")
            })?;
            Ok(())
        })),
        ..HostOptions::default()
    })?;
    let tiers = [("ada", "gold"), ("grace", "silver")].map(|(c, t)| (c.to_string(), t.to_string()));
    let service = Arc::new(Service { host, tiers: Arc::new(tiers.into()), tenants: RwLock::default() });

    let listener = tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    println!("plugin-host listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = service.clone();
        tokio::spawn(async move {
            let serve = hyper::service::service_fn(move |request| {
                let service = service.clone();
                async move { Ok::<_, std::convert::Infallible>(service.handle(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), serve).await;
        });
    }
}

impl Service {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path: Vec<String> = request.uri().path().trim_matches('/').split('/').map(str::to_string).collect();
        match (request.method().clone(), path.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
            (Method::PUT, ["tenants", tenant, "plugin"]) => match body(request, MAX_PLUGIN).await {
                Ok(bytes) => self.upload(tenant, bytes).await,
                Err(response) => response,
            },
            (Method::POST, ["tenants", tenant, "events"]) => match body(request, MAX_INPUT).await {
                Ok(bytes) => self.event(tenant, &bytes).await,
                Err(response) => response,
            },
            _ => reply(StatusCode::NOT_FOUND, json!({ "error": { "message": "try PUT /tenants/{tenant}/plugin or POST /tenants/{tenant}/events" } })),
        }
    }

    async fn upload(&self, tenant_name: &str, bytes: Bytes) -> Response<Full<Bytes>> {
        let tenant = match self.tenant(tenant_name) {
            Ok(t) => t,
            Err(e) => return reply(StatusCode::BAD_REQUEST, json!({ "error": { "message": format!("{e:#}") } })),
        };
        let options = PluginOptions { name: Some(tenant_name.to_string()), tenant: Some(tenant), quotas: Quotas::SHOPIFY, ..PluginOptions::default() };
        let plugin = match self.host.load(Source::Bytes(bytes.to_vec()), options).await {
            Ok(p) => p,
            Err(e) => return reply(StatusCode::BAD_REQUEST, json!({ "error": { "message": format!("{e:#}") } })),
        };
        let component = plugin.component();
        if !component.component_type().exports(component.engine()).any(|(name, _)| name == "apply") {
            let message = "the plugin does not implement acme:discounts/rules (it exports no `apply`); build it from wit/discounts.wit";
            return reply(StatusCode::BAD_REQUEST, json!({ "error": { "message": message } }));
        }
        let digest = plugin.digest().to_string();
        if let Some(entry) = self.tenants.write().unwrap_or_else(|e| e.into_inner()).get_mut(tenant_name) {
            entry.1 = Some(plugin);
        }
        reply(StatusCode::CREATED, json!({ "tenant": tenant_name, "digest": digest }))
    }

    fn tenant(&self, name: &str) -> Result<Tenant> {
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        if let Some((tenant, _)) = tenants.get(name) {
            return Ok(tenant.clone());
        }
        let tenant = self.host.tenant(name, TENANT_LIMITS)?;
        tenants.insert(name.to_string(), (tenant.clone(), None));
        Ok(tenant)
    }

    async fn event(&self, tenant: &str, body: &[u8]) -> Response<Full<Bytes>> {
        let plugin = self.tenants.read().unwrap_or_else(|e| e.into_inner()).get(tenant).and_then(|(_, p)| p.clone());
        let Some(plugin) = plugin else {
            return reply(StatusCode::NOT_FOUND, json!({ "error": { "message": format!("tenant `{tenant}` has no plugin: PUT one to /tenants/{tenant}/plugin") } }));
        };
        let cart: Cart = match serde_json::from_slice(body) {
            Ok(c) => c,
            Err(e) => return reply(StatusCode::BAD_REQUEST, json!({ "error": { "message": format!("the body is not a cart: {e}") } })),
        };
        let product = Product { tiers: self.tiers.clone() };
        let called = plugin
            .call(Call::new().extension(product), move |store, instance| {
                Box::pin(async move {
                    let rules = Rules::new(&mut *store, &instance)?;
                    rules.call_apply(&mut *store, &cart).await
                })
            })
            .await;
        match called {
            Ok(called) => reply(StatusCode::OK, json!({ "cart": called.value, "metering": metering(&called.metering), "logs": called.logs.text })),
            Err(error) => failed(tenant, &error),
        }
    }
}

fn failed(tenant: &str, error: &CallError) -> Response<Full<Bytes>> {
    let mut object = json!({ "message": error.message, "logs": error.logs.text });
    if let Some((quota, limit)) = error.quota() {
        object["quota"] = json!(quota.name());
        object["limit"] = json!(limit);
    }
    if let Some(m) = &error.metering {
        object["metering"] = metering(m);
    }
    eprintln!("tenant {tenant}: {}", error.message.lines().next().unwrap_or_default());
    let mut response = reply(
        match error.reason {
            Reason::Quota { quota: Quota::Concurrency, .. } => StatusCode::TOO_MANY_REQUESTS,
            Reason::Quota { .. } | Reason::Trap | Reason::Exit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Reason::Instantiation | Reason::Cancelled | Reason::BadCall => StatusCode::INTERNAL_SERVER_ERROR,
        },
        json!({ "error": object }),
    );
    if response.status() == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert("retry-after", hyper::header::HeaderValue::from_static("1"));
    }
    response
}

fn metering(m: &Metering) -> Value {
    json!({
        "instructions": m.instructions,
        "peak_memory_bytes": m.peak_memory_bytes,
        "wall_ms": m.wall.as_secs_f64() * 1e3,
        "cpu_ms": m.cpu.as_secs_f64() * 1e3,
    })
}

/// The request body, or the response refusing one larger than `limit` bytes.
async fn body(request: Request<Incoming>, limit: usize) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(reply(StatusCode::PAYLOAD_TOO_LARGE, json!({ "error": { "message": format!("the body is larger than {limit} bytes") } }))),
    }
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string() + "\n")));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}
