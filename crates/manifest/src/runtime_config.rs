//! The runtime-config file (`--runtime-config-file`): where state lives and the limits
//! every instance runs under. Spin's keys keep their meaning; the limits are Tessera's.
//!
//! ```toml
//! state_dir = ".spin"                # Spin
//! log_dir = ".spin/logs"             # Spin
//! max_instance_memory = "128MiB"     # Spin (bytes or a size with unit); all memories and tables
//! request_timeout = "30s"
//! max_request_body_size = "10MiB"
//! max_response_body_size = "1GiB"
//! max_outbound_requests = 500        # per request
//! max_resource_handles = 4096        # per instance: fields, streams, pollables, ...
//! max_request_header_size = "64KiB"
//! max_request_headers = 100
//! header_read_timeout = "10s"        # also how long an idle keep-alive connection stays
//! max_connections = 16384
//! max_wasm_stack = "512KiB"
//! max_concurrent_requests = 256      # instance slots
//! max_queued_requests = 1024         # waiting when every slot is busy
//! queue_timeout = "10s"              # how long one may wait for a slot
//! max_chain_depth = 10               # service-chaining hops one request may nest
//!
//! [[variables_provider]]             # Spin: env (prefix, dotenv_path) or static (values)
//! type = "static"
//! values = { api_host = "example.com" }
//!
//! [trust]                            # every component must be signed by one of these keys
//! keys = ["keys/release.pub", "ssh-ed25519 AAAA... ci@example.com"]
//!
//! [messaging]                        # wasmcloud:messaging's broker (in-process without it)
//! type = "nats"
//! url = "nats://127.0.0.1:4222"      # nats://user:password@host:port; tls:// for TLS
//!
//! [blob_store]                       # wasi:blobstore (type "directory", <state_dir>/blobs by default)
//! path = "blobs"
//!
//! [component.my-component]           # per-component overrides
//! max_instance_memory = "512MiB"
//! request_timeout = "2m"
//! max_request_body_size = "100MiB"
//! ```
//!
//! Every limit, its default and what a client sees when it is hit: docs/security.md.

use crate::error::{ManifestError, SourceFile};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Limits for one component's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentLimits {
    /// Bytes of linear memory plus table space an instance may hold, over all its memories
    /// and tables together.
    pub max_instance_memory: u64,
    /// Longest time a request may take, including a guest spinning in a loop.
    pub request_timeout: Duration,
    /// Largest request body accepted.
    pub max_request_body_size: u64,
    /// Largest response body sent; a longer one is cut off.
    pub max_response_body_size: u64,
    /// Outbound HTTP requests one request's instance may make.
    pub max_outbound_requests: u32,
    /// Host resources (fields, streams, pollables, ...) one instance may hold at once.
    pub max_resource_handles: u32,
}

impl Default for ComponentLimits {
    fn default() -> Self {
        Self {
            max_instance_memory: 128 << 20,
            request_timeout: Duration::from_secs(30),
            max_request_body_size: 10 << 20,
            max_response_body_size: 1 << 30,
            max_outbound_requests: 500,
            max_resource_handles: 4096,
        }
    }
}

/// A backend table (`[key_value_store.<label>]`, ...) left for its capability to read.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendTable {
    /// The table's keys, `type` included.
    pub table: toml::Table,
    /// Where the table starts.
    pub location: crate::Location,
    /// The runtime-config file, for relative paths and errors.
    pub file: PathBuf,
}

impl BackendTable {
    /// An error about this table, naming the file and place.
    pub fn error(&self, message: impl Into<String>, hint: impl Into<String>) -> ManifestError {
        ManifestError::at(&self.file, self.location, message, hint)
    }

    /// The `type` key (`spin` when absent, as in Spin).
    pub fn kind(&self) -> Result<&str, ManifestError> {
        match self.table.get("type") {
            None => Ok("spin"),
            Some(toml::Value::String(s)) => Ok(s),
            Some(_) => Err(self.error("`type` must be a string", "write type = \"spin\"")),
        }
    }

    /// A string key, if present.
    pub fn string(&self, key: &str) -> Result<Option<&str>, ManifestError> {
        match self.table.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.error(format!("`{key}` must be a string"), format!("write {key} = \"...\""))),
        }
    }

    /// Refuses keys other than `type` and `allowed`.
    pub fn only_keys(&self, allowed: &[&str]) -> Result<(), ManifestError> {
        match self.table.keys().find(|k| *k != "type" && !allowed.contains(&k.as_str())) {
            Some(k) => Err(self.error(format!("unknown key `{k}`"), format!("this backend takes: type, {}", allowed.join(", ")))),
            None => Ok(()),
        }
    }

    /// A path relative to the runtime-config file.
    pub fn path(&self, key: &str) -> Result<Option<PathBuf>, ManifestError> {
        let dir = self.file.parent().unwrap_or(Path::new("."));
        Ok(self.string(key)?.map(|p| dir.join(p)))
    }
}

/// The parsed runtime config, with defaults for what the file leaves out.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// `state_dir`, relative paths resolved against the file's directory.
    pub state_dir: Option<PathBuf>,
    /// `log_dir`.
    pub log_dir: Option<PathBuf>,
    /// Limits applied to every component without an override.
    pub limits: ComponentLimits,
    /// `[component.<id>]` overrides, merged over `limits`.
    pub component_limits: BTreeMap<String, ComponentLimits>,
    /// Where each `[component.<id>]` table is, for errors about it.
    pub component_locations: BTreeMap<String, crate::Location>,
    /// Largest request header section (bytes).
    pub max_request_header_size: u64,
    /// Most header lines in a request.
    pub max_request_headers: usize,
    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection is kept.
    pub header_read_timeout: Duration,
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Stack a guest may use (bytes); deeper recursion traps.
    pub max_wasm_stack: u64,
    /// Instances running at once.
    pub max_concurrent_requests: usize,
    /// Requests waiting for an instance slot before new ones get 503.
    pub max_queued_requests: usize,
    /// How long a request waits for a slot before it gets 503.
    pub queue_timeout: Duration,
    /// How many service-chaining hops (`http://<id>.spin.internal`, `http://self`) one
    /// request may nest; a deeper request fails with `loop-detected`.
    pub max_chain_depth: u32,
    /// How long `up` lets in-flight requests, messages and cron runs finish after SIGTERM
    /// or SIGINT.
    pub shutdown_timeout: Duration,
    /// `[key_value_store.<label>]` tables, read by the key-value capability.
    pub key_value_stores: BTreeMap<String, BackendTable>,
    /// `[sqlite_database.<label>]` tables, read by the SQLite capability.
    pub sqlite_databases: BTreeMap<String, BackendTable>,
    /// `[[variables_provider]]` tables, in order, read when variables are resolved.
    pub variables_providers: Vec<BackendTable>,
    /// `[trust]`: the keys every component must be signed by (read by tessera-signing).
    pub trust: Option<BackendTable>,
    /// `[messaging]`: the broker of `wasmcloud:messaging` (an in-process one without it).
    pub messaging: Option<BackendTable>,
    /// `[blob_store]`: where `wasi:blobstore` keeps containers (`<state_dir>/blobs` without it).
    pub blob_store: Option<BackendTable>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            state_dir: None,
            log_dir: None,
            limits: ComponentLimits::default(),
            component_limits: BTreeMap::new(),
            component_locations: BTreeMap::new(),
            max_request_header_size: 64 << 10,
            max_request_headers: 100,
            header_read_timeout: Duration::from_secs(10),
            max_connections: 16_384,
            max_wasm_stack: 512 << 10,
            max_concurrent_requests: 256,
            max_queued_requests: 1024,
            queue_timeout: Duration::from_secs(10),
            max_chain_depth: 10,
            shutdown_timeout: Duration::from_secs(30),
            key_value_stores: BTreeMap::new(),
            sqlite_databases: BTreeMap::new(),
            variables_providers: Vec::new(),
            trust: None,
            messaging: None,
            blob_store: None,
        }
    }
}

impl RuntimeConfig {
    /// The limits for `component`.
    pub fn limits_for(&self, component: &str) -> ComponentLimits {
        self.component_limits
            .get(component)
            .copied()
            .unwrap_or(self.limits)
    }

    /// Reads the file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ManifestError::whole_file(path, format!("cannot read the runtime config: {e}"))
                .with_hint("check the path given to --runtime-config-file")
        })?;
        Self::parse(path, &text)
    }

    /// Parses runtime-config `text` read from `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let src = SourceFile::new(path, text);
        let raw: RawRuntimeConfig = toml::from_str(text).map_err(|e| src.toml_error(&e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for (value, key) in [
            (&raw.outbound_networking, "outbound_networking"),
            (&raw.client_tls, "client_tls"),
            (&raw.llm_compute, "llm_compute"),
        ] {
            if let Some(v) = value {
                return Err(src
                    .error(v.span(), format!("`{key}` is a Spin runtime-config key that Tessera does not support yet"))
                    .with_hint("remove it"));
            }
        }
        let defaults = RuntimeConfig::default();
        let top = RawLimits {
            max_instance_memory: raw.max_instance_memory,
            request_timeout: raw.request_timeout,
            max_request_body_size: raw.max_request_body_size,
            max_response_body_size: raw.max_response_body_size,
            max_outbound_requests: raw.max_outbound_requests,
            max_resource_handles: raw.max_resource_handles,
        };
        let limits = top.apply(&src, defaults.limits)?;
        let mut component_limits = BTreeMap::new();
        let mut component_locations = BTreeMap::new();
        for (id, over) in raw.component {
            let (line, column) = src.line_col(over.span().start);
            component_locations.insert(id.clone(), crate::Location { line, column });
            component_limits.insert(id, over.into_inner().apply(&src, limits)?);
        }
        let count = |v: Option<Spanned<i64>>, default: usize, key: &str| count(&src, v, default as u64, key).map(|n| n as usize);
        let backend = |t: Spanned<toml::Table>| {
            let (line, column) = src.line_col(t.span().start);
            BackendTable { location: crate::Location { line, column }, table: t.into_inner(), file: path.to_path_buf() }
        };
        let backends = |tables: BTreeMap<String, Spanned<toml::Table>>| -> BTreeMap<String, BackendTable> {
            tables.into_iter().map(|(label, t)| (label, backend(t))).collect()
        };
        Ok(Self {
            key_value_stores: backends(raw.key_value_store),
            sqlite_databases: backends(raw.sqlite_database),
            variables_providers: raw.variables_provider.into_iter().map(backend).collect(),
            trust: raw.trust.map(backend),
            messaging: raw.messaging.map(backend),
            blob_store: raw.blob_store.map(backend),
            state_dir: raw.state_dir.map(|d| dir.join(d)),
            log_dir: raw.log_dir.map(|d| dir.join(d)),
            limits,
            component_limits,
            component_locations,
            max_request_header_size: match raw.max_request_header_size {
                None => defaults.max_request_header_size,
                Some(v) => size(&src, &v, "max_request_header_size")?,
            },
            max_request_headers: count(raw.max_request_headers, defaults.max_request_headers, "max_request_headers")?,
            header_read_timeout: match raw.header_read_timeout {
                None => defaults.header_read_timeout,
                Some(v) => duration(&src, &v, "header_read_timeout")?,
            },
            max_connections: count(raw.max_connections, defaults.max_connections, "max_connections")?,
            max_wasm_stack: match raw.max_wasm_stack {
                None => defaults.max_wasm_stack,
                Some(v) => size(&src, &v, "max_wasm_stack")?,
            },
            max_concurrent_requests: count(raw.max_concurrent_requests, defaults.max_concurrent_requests, "max_concurrent_requests")?,
            max_queued_requests: match raw.max_queued_requests {
                None => defaults.max_queued_requests,
                Some(n) if *n.get_ref() >= 0 => *n.get_ref() as usize,
                Some(n) => return Err(src.error(n.span(), "`max_queued_requests` must not be negative").with_hint("use 0 to answer 503 at once when every slot is busy")),
            },
            queue_timeout: match raw.queue_timeout {
                None => defaults.queue_timeout,
                Some(v) => duration(&src, &v, "queue_timeout")?,
            },
            max_chain_depth: count(raw.max_chain_depth, defaults.max_chain_depth as usize, "max_chain_depth")?.min(u32::MAX as usize) as u32,
            shutdown_timeout: match raw.shutdown_timeout {
                None => defaults.shutdown_timeout,
                Some(v) => duration(&src, &v, "shutdown_timeout")?,
            },
        })
    }
}

type Unsupported = Option<Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuntimeConfig {
    state_dir: Option<String>,
    log_dir: Option<String>,
    // The defaults for every component; `[component.<id>]` has the same keys.
    max_instance_memory: Option<Spanned<toml::Value>>,
    request_timeout: Option<Spanned<toml::Value>>,
    max_request_body_size: Option<Spanned<toml::Value>>,
    max_response_body_size: Option<Spanned<toml::Value>>,
    max_outbound_requests: Option<Spanned<i64>>,
    max_resource_handles: Option<Spanned<i64>>,
    // The listener and the engine.
    max_request_header_size: Option<Spanned<toml::Value>>,
    max_request_headers: Option<Spanned<i64>>,
    header_read_timeout: Option<Spanned<toml::Value>>,
    max_connections: Option<Spanned<i64>>,
    max_wasm_stack: Option<Spanned<toml::Value>>,
    max_concurrent_requests: Option<Spanned<i64>>,
    max_queued_requests: Option<Spanned<i64>>,
    queue_timeout: Option<Spanned<toml::Value>>,
    max_chain_depth: Option<Spanned<i64>>,
    shutdown_timeout: Option<Spanned<toml::Value>>,
    #[serde(default)]
    component: BTreeMap<String, Spanned<RawLimits>>,
    #[serde(default)]
    key_value_store: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    sqlite_database: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    variables_provider: Vec<Spanned<toml::Table>>,
    trust: Option<Spanned<toml::Table>>,
    messaging: Option<Spanned<toml::Table>>,
    blob_store: Option<Spanned<toml::Table>>,
    outbound_networking: Unsupported,
    client_tls: Unsupported,
    llm_compute: Unsupported,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_instance_memory: Option<Spanned<toml::Value>>,
    request_timeout: Option<Spanned<toml::Value>>,
    max_request_body_size: Option<Spanned<toml::Value>>,
    max_response_body_size: Option<Spanned<toml::Value>>,
    max_outbound_requests: Option<Spanned<i64>>,
    max_resource_handles: Option<Spanned<i64>>,
}

impl RawLimits {
    fn apply(self, src: &SourceFile<'_>, mut base: ComponentLimits) -> Result<ComponentLimits, ManifestError> {
        if let Some(v) = &self.max_instance_memory {
            base.max_instance_memory = size(src, v, "max_instance_memory")?;
        }
        if let Some(v) = &self.request_timeout {
            base.request_timeout = duration(src, v, "request_timeout")?;
        }
        if let Some(v) = &self.max_request_body_size {
            base.max_request_body_size = size(src, v, "max_request_body_size")?;
        }
        if let Some(v) = &self.max_response_body_size {
            base.max_response_body_size = size(src, v, "max_response_body_size")?;
        }
        base.max_outbound_requests = count_u32(src, self.max_outbound_requests, base.max_outbound_requests, "max_outbound_requests")?;
        base.max_resource_handles = count_u32(src, self.max_resource_handles, base.max_resource_handles, "max_resource_handles")?;
        Ok(base)
    }
}

fn count(src: &SourceFile<'_>, v: Option<Spanned<i64>>, default: u64, key: &str) -> Result<u64, ManifestError> {
    match v {
        None => Ok(default),
        Some(n) if *n.get_ref() >= 1 => Ok(*n.get_ref() as u64),
        Some(n) => Err(src.error(n.span(), format!("`{key}` must be at least 1")).with_hint("use a positive number")),
    }
}

fn count_u32(src: &SourceFile<'_>, v: Option<Spanned<i64>>, default: u32, key: &str) -> Result<u32, ManifestError> {
    let span = v.as_ref().map(|n| n.span());
    let n = count(src, v, default as u64, key)?;
    u32::try_from(n).map_err(|_| src.error(span.unwrap_or(0..0), format!("`{key}` is too large")).with_hint(format!("use at most {}", u32::MAX)))
}

fn size(src: &SourceFile<'_>, v: &Spanned<toml::Value>, key: &str) -> Result<u64, ManifestError> {
    let parsed = match v.get_ref() {
        toml::Value::Integer(n) if *n > 0 => Ok(*n as u64),
        toml::Value::String(s) => parse_size(s),
        _ => Err(String::new()),
    };
    parsed.map_err(|_| {
        src.error(v.span(), format!("`{key}` must be a positive size"))
            .with_hint("write bytes as a number, or a string such as \"128MiB\", \"512KiB\" or \"1GiB\"")
    })
}

fn duration(src: &SourceFile<'_>, v: &Spanned<toml::Value>, key: &str) -> Result<Duration, ManifestError> {
    let parsed = match v.get_ref() {
        toml::Value::Integer(n) if *n > 0 => Ok(Duration::from_secs(*n as u64)),
        toml::Value::String(s) => parse_duration(s),
        _ => Err(String::new()),
    };
    parsed.map_err(|_| {
        src.error(v.span(), format!("`{key}` must be a positive duration"))
            .with_hint("write seconds as a number, or a string such as \"30s\", \"500ms\" or \"2m\"")
    })
}

/// Parses `128MiB`, `10MB`, `512KiB`, `1GiB` or a plain byte count.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a size"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" | "k" => 1 << 10,
        "mb" => 1_000_000,
        "mib" | "m" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" | "g" => 1 << 30,
        _ => return Err(format!("`{s}` has an unknown unit")),
    };
    match n.checked_mul(mult) {
        Some(0) | None => Err(format!("`{s}` is out of range")),
        Some(v) => Ok(v),
    }
}

/// Parses `30s`, `500ms`, `2m`, `1h` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration"))?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("`{s}` has an unknown unit")),
    };
    if d.is_zero() { Err(format!("`{s}` is zero")) } else { Ok(d) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuntimeConfig, ManifestError> {
        RuntimeConfig::parse(Path::new("/app/rc.toml"), text)
    }

    #[test]
    fn defaults_and_overrides() {
        let rc = parse(
            "max_instance_memory = \"64MiB\"\nrequest_timeout = 5\n[component.big]\nmax_instance_memory = 1073741824\n",
        )
        .unwrap();
        assert_eq!(rc.limits.max_instance_memory, 64 << 20);
        assert_eq!(rc.limits.request_timeout, Duration::from_secs(5));
        let big = rc.limits_for("big");
        assert_eq!(big.max_instance_memory, 1 << 30);
        assert_eq!(big.request_timeout, Duration::from_secs(5));
        assert_eq!(rc.limits_for("other").max_instance_memory, 64 << 20);
        assert_eq!(parse("").unwrap(), RuntimeConfig::default());
    }

    #[test]
    fn guest_and_listener_limits() {
        let rc = parse(
            "max_response_body_size = \"8MiB\"\nmax_outbound_requests = 5\nmax_resource_handles = 64\nheader_read_timeout = \"2s\"\nmax_request_headers = 20\nmax_connections = 50\nmax_wasm_stack = \"1MiB\"\n[component.fan-out]\nmax_outbound_requests = 1000\n",
        )
        .unwrap();
        assert_eq!(rc.limits.max_response_body_size, 8 << 20);
        assert_eq!((rc.limits.max_outbound_requests, rc.limits.max_resource_handles), (5, 64));
        assert_eq!(rc.limits_for("fan-out").max_outbound_requests, 1000);
        assert_eq!(rc.limits_for("fan-out").max_resource_handles, 64);
        assert_eq!((rc.header_read_timeout, rc.max_request_headers, rc.max_connections), (Duration::from_secs(2), 20, 50));
        assert_eq!(rc.max_wasm_stack, 1 << 20);
        assert_eq!(parse("max_chain_depth = 3\n").unwrap().max_chain_depth, 3);
        assert_eq!(RuntimeConfig::default().max_chain_depth, 10);
        let e = parse("max_chain_depth = 0\n").unwrap_err();
        assert!(e.to_string().contains("`max_chain_depth` must be at least 1"), "{e}");
        let e = parse("max_outbound_requests = 0\n").unwrap_err();
        assert!(e.to_string().contains("`max_outbound_requests` must be at least 1"), "{e}");
        let e = parse("max_resource_handles = 99999999999\n").unwrap_err();
        assert!(e.to_string().contains("`max_resource_handles` is too large"), "{e}");
    }

    #[test]
    fn errors_point_at_the_value() {
        let e = parse("\nrequest_timeout = \"soon\"\n").unwrap_err();
        assert_eq!(e.location, Some((2, 19)));
        assert!(e.to_string().contains("request_timeout"), "{e}");
        let e = parse("max_instance_memry = 1\n").unwrap_err();
        assert_eq!(e.location, Some((1, 1)));
        assert!(e.message.contains("unknown field"), "{e}");
        let e = parse("[outbound_networking]\nblock_networks = []\n").unwrap_err();
        assert!(e.message.contains("does not support yet"), "{e}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("10 MB").unwrap(), 10_000_000);
        assert!(parse_size("10 parsecs").is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("0s").is_err());
    }
}
