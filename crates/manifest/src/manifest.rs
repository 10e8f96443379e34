//! `spin.toml` (`spin_manifest_version = 2`): the raw TOML schema and its validation into
//! [`Manifest`].

use crate::dependencies::{Dependency, DependencyName, DependencySource, INHERIT_KEYS, Inherit, PackageName};
use crate::error::{ManifestError, SourceFile};
use crate::routes::{self, Router, RouterBuildError};
use crate::template::{Template, is_variable_name};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// A place in the manifest, kept for errors found after parsing (missing files, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// A validated application manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    /// `[application]`.
    pub application: Application,
    /// `[application.trigger.http] base`, normalised (`/` by default).
    pub http_base: String,
    /// `[variables.<name>]`.
    pub variables: BTreeMap<String, Variable>,
    /// `[[trigger.http]]`, in manifest order.
    pub http_triggers: Vec<HttpTrigger>,
    /// `[application.trigger.redis] address`: the default server of Redis triggers.
    pub redis_address: Option<Template>,
    /// `[[trigger.redis]]`, in manifest order.
    pub redis_triggers: Vec<RedisTrigger>,
    /// `[application.trigger.mqtt]`: the broker of MQTT triggers.
    pub mqtt_broker: Option<MqttBroker>,
    /// `[[trigger.mqtt]]`, in manifest order.
    pub mqtt_triggers: Vec<MqttTrigger>,
    /// `[[trigger.messaging]]`, in manifest order.
    pub messaging_triggers: Vec<MessagingTrigger>,
    /// `[[trigger.cron]]`, in manifest order.
    pub cron_triggers: Vec<CronTrigger>,
    /// `[[trigger.command]]`, in manifest order.
    pub command_triggers: Vec<CommandTrigger>,
    /// `[component.<id>]`, and inline components under generated ids.
    pub components: BTreeMap<String, Component>,
}

/// `[application]`.
#[derive(Debug, Clone, Default)]
pub struct Application {
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// `authors`.
    pub authors: Vec<String>,
}

/// `[variables.<name>]`.
#[derive(Debug, Clone)]
pub struct Variable {
    /// `default`.
    pub default: Option<String>,
    /// `required`.
    pub required: bool,
    /// `secret`: the value is never printed.
    pub secret: bool,
    /// `description`.
    pub description: Option<String>,
    /// Where the variable is declared.
    pub location: Location,
}

/// One `[[trigger.http]]`.
#[derive(Debug, Clone)]
pub struct HttpTrigger {
    /// `id`, or one made from the position.
    pub id: String,
    /// `route`.
    pub route: Route,
    /// What serves the route.
    pub target: HttpTarget,
    /// Where the trigger's `route` is written.
    pub location: Location,
}

/// One `[[trigger.redis]]`: every message on `channel` goes to `component`.
#[derive(Debug, Clone)]
pub struct RedisTrigger {
    /// `id`, or one made from the position.
    pub id: String,
    /// `channel`, possibly with `{{ variable }}` templates.
    pub channel: Template,
    /// `address`, overriding `[application.trigger.redis] address`.
    pub address: Option<Template>,
    /// The component id.
    pub component: String,
    /// Where the trigger is written.
    pub location: Location,
}

/// `[application.trigger.mqtt]`, as the Spin MQTT trigger plugin reads it.
#[derive(Debug, Clone)]
pub struct MqttBroker {
    /// `address`: `mqtt://HOST:PORT` (`mqtts://` for TLS), possibly with templates.
    pub address: Template,
    /// `username` (empty for none).
    pub username: Template,
    /// `password` (empty for none).
    pub password: Template,
    /// `keep_alive_interval` in seconds (a string in Spin's plugin; a number too here).
    pub keep_alive_interval: u16,
    /// Where the table is written.
    pub location: Location,
}

/// One `[[trigger.mqtt]]`: every message on `topic` (MQTT wildcards allowed) goes to
/// `component`.
#[derive(Debug, Clone)]
pub struct MqttTrigger {
    /// `id`, or one made from the position.
    pub id: String,
    /// `topic` (a filter: `+` and `#` allowed), possibly with templates.
    pub topic: Template,
    /// `qos`: 0, 1 or 2 (a string in Spin's plugin; a number too here).
    pub qos: u8,
    /// The component id.
    pub component: String,
    /// Where the trigger is written.
    pub location: Location,
}

/// One `[[trigger.messaging]]`: every message on `subject` (NATS wildcards allowed) goes
/// to `component`, which exports `wasmcloud:messaging/handler@0.2.0`.
#[derive(Debug, Clone)]
pub struct MessagingTrigger {
    /// `id`, or one made from the position.
    pub id: String,
    /// `subject` (a pattern: `*` and a final `>` allowed), possibly with templates.
    pub subject: Template,
    /// `queue_group`: members of one group share the messages (each goes to one of them).
    pub queue_group: Option<String>,
    /// The component id.
    pub component: String,
    /// Where the trigger is written.
    pub location: Location,
}

/// One `[[trigger.cron]]`.
#[derive(Debug, Clone)]
pub struct CronTrigger {
    /// `id`, or one made from the position.
    pub id: String,
    /// `cron_expression`: `sec min hour day-of-month month day-of-week [year]`, checked.
    pub cron_expression: String,
    /// The component id.
    pub component: String,
    /// Where the trigger is written.
    pub location: Location,
}

/// One `[[trigger.command]]`: `tessera up -- ARGS` runs the component once.
#[derive(Debug, Clone)]
pub struct CommandTrigger {
    /// `id`, or one made from the position.
    pub id: String,
    /// The component id.
    pub component: String,
    /// Where the trigger is written.
    pub location: Location,
}

/// An HTTP route setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A path pattern.
    Path(String),
    /// `{ private = true }`: reachable only by other components, not served.
    Private,
}

/// What answers an HTTP trigger.
#[derive(Debug, Clone)]
pub enum HttpTarget {
    /// A component id.
    Component(String),
    /// `static_response`: answered by the host with no component.
    Static(StaticResponse),
}

/// `static_response = { status_code, headers, body }`.
#[derive(Debug, Clone, Default)]
pub struct StaticResponse {
    /// `status_code` (200 by default).
    pub status_code: u16,
    /// `headers`.
    pub headers: BTreeMap<String, String>,
    /// `body`.
    pub body: String,
}

/// Where a component's Wasm comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComponentSource {
    /// `source = "path.wasm"`, resolved against the manifest's directory.
    File(PathBuf),
    /// `source = { url = "...", digest = "sha256:..." }`: downloaded, checked against the digest.
    Url {
        /// Where to download it (http or https).
        url: String,
        /// `sha256:<64 lowercase hex>`.
        digest: String,
    },
    /// `source = { registry?, package = "ns:name", version = "x.y.z" }`: a component package
    /// in an OCI registry, as `wkg` and Spin find it.
    Package {
        /// The registry (`registry`), or the default one when absent.
        registry: Option<String>,
        /// `namespace:name`.
        package: String,
        /// The exact version.
        version: String,
    },
}

impl ComponentSource {
    /// The local file, if the source is one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::File(path) => Some(path),
            _ => None,
        }
    }
}

impl std::fmt::Display for ComponentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Url { url, .. } => f.write_str(url),
            Self::Package { registry: Some(r), package, version } => write!(f, "{package}@{version} from {r}"),
            Self::Package { registry: None, package, version } => write!(f, "{package}@{version}"),
        }
    }
}

/// `[component.<id>]`.
#[derive(Debug, Clone)]
pub struct Component {
    /// The component id.
    pub id: String,
    /// `source`: a file (resolved against the manifest's directory) or a pinned download.
    pub source: ComponentSource,
    /// Where `source` is written.
    pub source_location: Location,
    /// `description`.
    pub description: Option<String>,
    /// `environment`.
    pub environment: BTreeMap<String, String>,
    /// `files`.
    pub files: Vec<FileMount>,
    /// `exclude_files` globs.
    pub exclude_files: Vec<String>,
    /// `allowed_outbound_hosts`, possibly with `{{ variable }}` templates.
    pub allowed_outbound_hosts: Vec<(Template, Location)>,
    /// `variables`: component config values, possibly templated.
    pub variables: BTreeMap<String, Template>,
    /// `key_value_stores`: labels of the key-value stores the component may open.
    pub key_value_stores: Vec<(String, Location)>,
    /// `sqlite_databases`: labels of the SQLite databases the component may open.
    pub sqlite_databases: Vec<(String, Location)>,
    /// `allowed_publish_subjects`: NATS subject patterns the component may publish and
    /// send requests to (`wasmcloud:messaging`).
    pub allowed_publish_subjects: Vec<(String, Location)>,
    /// `blob_containers`: names of the blob containers the component may use
    /// (`wasi:blobstore`), or `"*"` for any.
    pub blob_containers: Vec<(String, Location)>,
    /// `build`.
    pub build: Option<Build>,
    /// `dependencies`: what satisfies its imports, in key order.
    pub dependencies: Vec<Dependency>,
    /// HTTP middleware around it, outermost first (from its trigger's
    /// `dependencies.middleware`; a component two triggers share with different
    /// middleware is split into one per trigger, as Spin does).
    pub middleware: Vec<Dependency>,
}

/// The interface a middleware imports (the next handler) and exports.
pub const MIDDLEWARE_INTERFACE: &str = "wasi:http/handler@0.3.0";

/// One `files` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMount {
    /// A glob relative to the app directory, mounted at the same relative path under `/`.
    Glob {
        /// The pattern.
        pattern: String,
        /// Where it is written.
        location: Location,
    },
    /// `{ source = "dir-or-file", destination = "/path" }`.
    Map {
        /// Host path, relative to the app directory.
        source: PathBuf,
        /// Absolute guest path.
        destination: String,
        /// Where it is written.
        location: Location,
    },
}

/// `build = { command, workdir, watch }`.
#[derive(Debug, Clone)]
pub struct Build {
    /// Shell commands run in order.
    pub commands: Vec<String>,
    /// `workdir`, relative to the app directory.
    pub workdir: Option<PathBuf>,
    /// `watch` globs, relative to `workdir` (what `tessera watch` watches).
    pub watch: Vec<String>,
}

// ---- raw TOML schema -------------------------------------------------------------------

type Unsupported = Option<Spanned<toml::Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: Spanned<toml::Value>,
    application: Spanned<RawApplication>,
    /// Keyed by the spanned name: errors point at the variable's name, not its value.
    #[serde(default)]
    variables: BTreeMap<Spanned<String>, RawVariable>,
    #[serde(default)]
    trigger: Option<Spanned<RawTriggers>>,
    #[serde(default)]
    component: BTreeMap<String, Spanned<RawComponent>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplication {
    name: Spanned<String>,
    version: Option<String>,
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    trigger: Option<RawAppTriggers>,
    targets: Unsupported,
    tool: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppTriggers {
    http: Option<RawAppHttp>,
    redis: Option<RawAppRedis>,
    mqtt: Option<Spanned<RawAppMqtt>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppMqtt {
    address: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    keep_alive_interval: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppRedis {
    address: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAppHttp {
    base: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<Spanned<RawHttpTrigger>>,
    #[serde(default)]
    redis: Vec<Spanned<RawRedisTrigger>>,
    #[serde(default)]
    cron: Vec<Spanned<RawCronTrigger>>,
    #[serde(default)]
    command: Vec<Spanned<RawCommandTrigger>>,
    #[serde(default)]
    mqtt: Vec<Spanned<RawMqttTrigger>>,
    #[serde(default)]
    messaging: Vec<Spanned<RawMessagingTrigger>>,
    sqs: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessagingTrigger {
    id: Option<String>,
    subject: Option<Spanned<String>>,
    queue_group: Option<Spanned<String>>,
    component: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqttTrigger {
    id: Option<String>,
    topic: Option<Spanned<String>>,
    qos: Option<Spanned<toml::Value>>,
    component: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedisTrigger {
    id: Option<String>,
    channel: Option<Spanned<String>>,
    address: Option<Spanned<String>>,
    component: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCronTrigger {
    id: Option<String>,
    cron_expression: Option<Spanned<String>>,
    component: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommandTrigger {
    id: Option<String>,
    component: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    id: Option<String>,
    route: Option<Spanned<toml::Value>>,
    component: Option<Spanned<toml::Value>>,
    static_response: Option<Spanned<RawStaticResponse>>,
    executor: Option<Spanned<toml::Value>>,
    components: Unsupported,
    dependencies: Option<Spanned<RawTriggerDependencies>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriggerDependencies {
    #[serde(default)]
    middleware: Vec<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStaticResponse {
    status_code: Option<u16>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    source: Spanned<toml::Value>,
    description: Option<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    files: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<Spanned<String>>,
    #[serde(default)]
    variables: BTreeMap<String, Spanned<String>>,
    build: Option<RawBuild>,
    #[serde(default)]
    key_value_stores: Vec<Spanned<String>>,
    #[serde(default)]
    sqlite_databases: Vec<Spanned<String>>,
    #[serde(default)]
    allowed_publish_subjects: Vec<Spanned<String>>,
    #[serde(default)]
    blob_containers: Vec<Spanned<String>>,
    ai_models: Option<Spanned<Vec<String>>>,
    allowed_http_hosts: Unsupported,
    targets: Unsupported,
    tool: Unsupported,
    dependencies_inherit_configuration: Option<Spanned<bool>>,
    #[serde(default)]
    dependencies: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    profile: Unsupported,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuild {
    command: Spanned<toml::Value>,
    workdir: Option<String>,
    #[serde(default)]
    watch: Vec<String>,
    environment: Unsupported,
}

// ---- validation ------------------------------------------------------------------------

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ManifestError::whole_file(path, format!("cannot read the manifest: {e}"))
                .with_hint("pass the app's spin.toml (or its directory) with -f")
        })?;
        Self::parse(path, &text)
    }

    /// Validates manifest `text` that was read from `path`. A version 1 manifest is
    /// converted to version 2 first, as Spin converts it.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ManifestError> {
        let src = SourceFile::new(path, text);
        match toml::from_str::<RawManifest>(text) {
            Ok(raw) => Validator { src: &src, offset: 0 }.manifest(raw),
            Err(e) => match toml::from_str::<toml::Table>(text) {
                Ok(table) if crate::compat::is_version_one(&table) => Self::parse_converted(path, table),
                _ => Err(src.toml_error(&e)),
            },
        }
    }

    /// Validates the version 2 form of a version 1 manifest. Its errors cannot point into
    /// the file the user wrote, so they name the conversion instead of a line.
    fn parse_converted(path: &Path, v1: toml::Table) -> Result<Self, ManifestError> {
        let converted = crate::compat::v1_to_v2(path, v1)?;
        let src = SourceFile::new(path, &converted);
        let unlocated = |mut e: ManifestError| {
            e.location = None;
            e.message = format!("(manifest version 1, converted to version 2) {}", e.message);
            e
        };
        let raw: RawManifest = toml::from_str(&converted).map_err(|e| unlocated(src.toml_error(&e)))?;
        Validator { src: &src, offset: 0 }.manifest(raw).map_err(unlocated)
    }

    /// Keeps only components `ids` and the triggers that run them (`spin up -c`); static
    /// responses stay. Errs, naming the app's components, when an id is not one of them.
    pub fn retain_components(&mut self, ids: &[String]) -> Result<(), ManifestError> {
        if let Some(unknown) = ids.iter().find(|id| !self.components.contains_key(*id)) {
            let known: Vec<&str> = self.components.keys().map(String::as_str).collect();
            return Err(ManifestError::whole_file(&self.path, format!("-c {unknown}: the app has no component `{unknown}`"))
                .with_hint(format!("name one of: {}", known.join(", "))));
        }
        let kept = |id: &String| ids.contains(id);
        self.http_triggers.retain(|t| match &t.target {
            HttpTarget::Component(id) => kept(id),
            HttpTarget::Static(_) => true,
        });
        self.redis_triggers.retain(|t| kept(&t.component));
        self.mqtt_triggers.retain(|t| kept(&t.component));
        self.messaging_triggers.retain(|t| kept(&t.component));
        self.cron_triggers.retain(|t| kept(&t.component));
        self.command_triggers.retain(|t| kept(&t.component));
        self.components.retain(|id, _| kept(id));
        Ok(())
    }

    /// The router for the HTTP triggers: routes to indexes into `http_triggers`.
    pub fn http_router(&self) -> Router<usize> {
        let routes = self
            .http_triggers
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match &t.route {
                Route::Path(p) => Some((p.clone(), i)),
                Route::Private => None,
            });
        // Validation built the same router already, so this cannot fail.
        Router::build(&self.http_base, routes).expect("routes were validated")
    }
}

impl Manifest {
    /// The app of one bare component file, as `spin up -f app.wasm` and `wasmtime serve`
    /// make it: the component (its id from the file name) serving every path, with
    /// nothing granted. `tessera run` uses the same app and ignores the route.
    pub fn for_component(path: &Path) -> Self {
        let id = component_id_from_file(path);
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        let component = Component {
            id: id.clone(),
            source: ComponentSource::File(path.to_path_buf()),
            source_location: Location::default(),
            description: None,
            environment: BTreeMap::new(),
            files: Vec::new(),
            exclude_files: Vec::new(),
            allowed_outbound_hosts: Vec::new(),
            variables: BTreeMap::new(),
            key_value_stores: Vec::new(),
            sqlite_databases: Vec::new(),
            allowed_publish_subjects: Vec::new(),
            blob_containers: Vec::new(),
            build: None,
            dependencies: Vec::new(),
            middleware: Vec::new(),
        };
        Self {
            path: path.to_path_buf(),
            dir,
            application: Application { name: id.clone(), ..Application::default() },
            http_base: "/".into(),
            variables: BTreeMap::new(),
            http_triggers: vec![HttpTrigger {
                id: "trigger-1".into(),
                route: Route::Path("/...".into()),
                target: HttpTarget::Component(id.clone()),
                location: Location::default(),
            }],
            redis_address: None,
            redis_triggers: Vec::new(),
            mqtt_broker: None,
            mqtt_triggers: Vec::new(),
            messaging_triggers: Vec::new(),
            cron_triggers: Vec::new(),
            command_triggers: Vec::new(),
            components: BTreeMap::from([(id, component)]),
        }
    }
}

/// A kebab-case component id made from a file name (`Hello_World.wasm` -> `hello-world`).
fn component_id_from_file(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let mut id = String::new();
    for c in stem.chars() {
        match c {
            'a'..='z' | '0'..='9' => id.push(c),
            _ if !id.is_empty() && !id.ends_with('-') => id.push('-'),
            _ => {}
        }
    }
    let id = id.trim_end_matches('-').to_string();
    if is_component_id(&id) { id } else { format!("component-{id}").trim_end_matches('-').to_string() }
}

struct Validator<'a> {
    src: &'a SourceFile<'a>,
    /// Added to spans: inline components are parsed from a slice of the file.
    offset: usize,
}

/// A whole number written as a TOML integer or as a string of digits (Spin's MQTT plugin
/// reads `qos` and `keep_alive_interval` as strings).
fn small_number(value: &toml::Value) -> Option<u64> {
    match value {
        toml::Value::Integer(i) => u64::try_from(*i).ok(),
        toml::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn not_supported(what: &str) -> String {
    format!("`{what}` is a Spin key that Tessera does not support yet")
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>, hint: &str) -> ManifestError {
        self.src.error(span.start + self.offset..span.end + self.offset, message).with_hint(hint)
    }

    fn loc(&self, span: &Range<usize>) -> Location {
        let (line, column) = self.src.line_col(span.start + self.offset);
        Location { line, column }
    }

    fn unsupported(&self, value: &Unsupported, key: &str, hint: &str) -> Result<(), ManifestError> {
        match value {
            Some(v) => Err(self.err(v.span(), not_supported(key), hint)),
            None => Ok(()),
        }
    }

    fn manifest(&self, raw: RawManifest) -> Result<Manifest, ManifestError> {
        let version = &raw.spin_manifest_version;
        if version.get_ref().as_integer() != Some(2) {
            return Err(self.err(
                version.span(),
                format!("spin_manifest_version is {}; Tessera reads version 2", version.get_ref()),
                "convert the manifest with `spin doctor`, or set spin_manifest_version = 2",
            ));
        }

        let app_span = raw.application.span();
        let app = raw.application.into_inner();
        self.unsupported(&app.targets, "application.targets", "remove it")?;
        self.unsupported(&app.tool, "application.tool", "remove it")?;
        let mut http_base = "/".to_string();
        let mut redis_address_raw = None;
        let mut mqtt_broker_raw = None;
        if let Some(triggers) = app.trigger {
            redis_address_raw = triggers.redis.and_then(|r| r.address);
            mqtt_broker_raw = triggers.mqtt;
            if let Some(base) = triggers.http.and_then(|h| h.base) {
                if !base.get_ref().starts_with('/') {
                    return Err(self.err(base.span(), format!("base `{}` must start with `/`", base.get_ref()), "write it as an absolute path, e.g. base = \"/api\""));
                }
                http_base = routes::normalize_base(base.get_ref());
            }
        }
        let name = app.name.get_ref().trim();
        if name.is_empty() {
            return Err(self.err(app.name.span(), "application name is empty", "set [application] name = \"my-app\""));
        }
        let _ = app_span;
        let application = Application {
            name: name.to_string(),
            version: app.version,
            description: app.description,
            authors: app.authors,
        };

        let mut variables = BTreeMap::new();
        for (name, var) in raw.variables {
            let span = name.span();
            let name = name.into_inner();
            if !is_variable_name(&name) {
                return Err(self.err(span.clone(), format!("variable name `{name}` is not lower_snake_case"), "rename it, e.g. `api_key`"));
            }
            match (&var.default, var.required) {
                (Some(_), true) => return Err(self.err(span.clone(), format!("variable `{name}` has both `default` and `required = true`"), "keep one: a required variable has no default")),
                (None, false) => return Err(self.err(span.clone(), format!("variable `{name}` has neither `default` nor `required = true`"), "add a default = \"...\" or required = true")),
                _ => {}
            }
            variables.insert(name, Variable { default: var.default, required: var.required, secret: var.secret, description: var.description, location: self.loc(&span) });
        }

        let mut components = BTreeMap::new();
        for (id, comp) in raw.component {
            let span = comp.span();
            if !is_component_id(&id) {
                return Err(self.err(span.clone(), format!("component id `{id}` is not kebab-case"), "use lowercase letters, digits and single hyphens, starting with a letter, e.g. `hello-world`"));
            }
            let c = self.component(&id, comp.into_inner(), &variables)?;
            components.insert(id, c);
        }

        let mut http_triggers = Vec::new();
        let (mut redis_triggers, mut cron_triggers, mut command_triggers) = (Vec::new(), Vec::new(), Vec::new());
        let redis_address = redis_address_raw.as_ref().map(|a| self.template(a, &variables)).transpose()?;
        let mqtt_broker = mqtt_broker_raw.map(|b| self.mqtt_broker(b, &variables)).transpose()?;
        let mut mqtt_triggers = Vec::new();
        let mut messaging_triggers = Vec::new();
        if let Some(triggers) = raw.trigger {
            let triggers = triggers.into_inner();
            let not_yet = "remove it: Tessera runs http, redis, mqtt, messaging, cron and command triggers";
            self.unsupported(&triggers.sqs, "trigger.sqs", not_yet)?;
            for (index, trigger) in triggers.http.into_iter().enumerate() {
                http_triggers.push(self.http_trigger(index, trigger, &mut components, &variables)?);
            }
            for (index, trigger) in triggers.redis.into_iter().enumerate() {
                let span = trigger.span();
                let t = trigger.into_inner();
                let id = t.id.unwrap_or_else(|| format!("redis-{}", index + 1));
                let channel = t.channel.ok_or_else(|| self.err(span.clone(), "[[trigger.redis]] has no `channel`", "add channel = \"messages\""))?;
                let channel = self.template(&channel, &variables)?;
                let address = t.address.as_ref().map(|a| self.template(a, &variables)).transpose()?;
                if address.is_none() && redis_address.is_none() {
                    return Err(self.err(span.clone(), "[[trigger.redis]] has no `address` and [application.trigger.redis] sets none", "add address = \"redis://127.0.0.1:6379\" to the trigger or to [application.trigger.redis]"));
                }
                let component = self.trigger_component(&id, "redis", t.component, span.clone(), &mut components, &variables)?;
                redis_triggers.push(RedisTrigger { id, channel, address, component, location: self.loc(&span) });
            }
            for (index, trigger) in triggers.mqtt.into_iter().enumerate() {
                let span = trigger.span();
                let t = trigger.into_inner();
                let id = t.id.unwrap_or_else(|| format!("mqtt-{}", index + 1));
                if mqtt_broker.is_none() {
                    return Err(self.err(span.clone(), "[[trigger.mqtt]] needs a broker, and [application.trigger.mqtt] sets none", "add [application.trigger.mqtt] with address = \"mqtt://127.0.0.1:1883\""));
                }
                let topic = t.topic.ok_or_else(|| self.err(span.clone(), "[[trigger.mqtt]] has no `topic`", "add topic = \"sensors/+/temperature\""))?;
                let topic = self.template(&topic, &variables)?;
                let qos = match &t.qos {
                    None => 0,
                    Some(q) => match small_number(q.get_ref()) {
                        Some(n @ 0..=2) => n as u8,
                        _ => return Err(self.err(q.span(), format!("qos {} is not an MQTT QoS", q.get_ref()), "write qos = \"0\" (at most once), \"1\" (at least once) or \"2\" (exactly once)")),
                    },
                };
                let component = self.trigger_component(&id, "mqtt", t.component, span.clone(), &mut components, &variables)?;
                mqtt_triggers.push(MqttTrigger { id, topic, qos, component, location: self.loc(&span) });
            }
            for (index, trigger) in triggers.messaging.into_iter().enumerate() {
                let span = trigger.span();
                let t = trigger.into_inner();
                let id = t.id.unwrap_or_else(|| format!("messaging-{}", index + 1));
                let subject = t.subject.ok_or_else(|| self.err(span.clone(), "[[trigger.messaging]] has no `subject`", "add subject = \"orders.>\""))?;
                if let Some(why) = crate::subjects::check(subject.get_ref(), true).filter(|_| !subject.get_ref().contains("{{")) {
                    return Err(self.err(subject.span(), format!("[[trigger.messaging]] subject: {why}"), crate::subjects::HINT));
                }
                let subject = self.template(&subject, &variables)?;
                let queue_group = match t.queue_group {
                    Some(g) if g.get_ref().is_empty() || g.get_ref().contains(char::is_whitespace) => {
                        return Err(self.err(g.span(), format!("queue_group `{}` is empty or has whitespace", g.get_ref()), "write queue_group = \"workers\", or leave it out so every replica gets each message"));
                    }
                    g => g.map(Spanned::into_inner),
                };
                let component = self.trigger_component(&id, "messaging", t.component, span.clone(), &mut components, &variables)?;
                messaging_triggers.push(MessagingTrigger { id, subject, queue_group, component, location: self.loc(&span) });
            }
            for (index, trigger) in triggers.cron.into_iter().enumerate() {
                let span = trigger.span();
                let t = trigger.into_inner();
                let id = t.id.unwrap_or_else(|| format!("cron-{}", index + 1));
                let expression = t.cron_expression.ok_or_else(|| self.err(span.clone(), "[[trigger.cron]] has no `cron_expression`", "add cron_expression = \"0 */5 * * * *\" (sec min hour day month weekday)"))?;
                crate::cron::validate(expression.get_ref()).map_err(|e| self.err(expression.span(), format!("invalid cron_expression `{}`: {e}", expression.get_ref()), crate::cron::HINT))?;
                let component = self.trigger_component(&id, "cron", t.component, span.clone(), &mut components, &variables)?;
                cron_triggers.push(CronTrigger { id, cron_expression: expression.into_inner(), component, location: self.loc(&span) });
            }
            for (index, trigger) in triggers.command.into_iter().enumerate() {
                let span = trigger.span();
                let t = trigger.into_inner();
                let id = t.id.unwrap_or_else(|| format!("command-{}", index + 1));
                let component = self.trigger_component(&id, "command", t.component, span.clone(), &mut components, &variables)?;
                command_triggers.push(CommandTrigger { id, component, location: self.loc(&span) });
            }
        }
        let others: Vec<String> = redis_triggers
            .iter()
            .map(|t: &RedisTrigger| t.component.clone())
            .chain(mqtt_triggers.iter().map(|t: &MqttTrigger| t.component.clone()))
            .chain(messaging_triggers.iter().map(|t: &MessagingTrigger| t.component.clone()))
            .chain(cron_triggers.iter().map(|t: &CronTrigger| t.component.clone()))
            .chain(command_triggers.iter().map(|t: &CommandTrigger| t.component.clone()))
            .collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        self.attach_middleware(&mut http_triggers, &mut components, &others)?;
        let http_triggers: Vec<HttpTrigger> = http_triggers.into_iter().map(|(t, _)| t).collect();
        if http_triggers.is_empty() && redis_triggers.is_empty() && mqtt_triggers.is_empty() && messaging_triggers.is_empty() && cron_triggers.is_empty() && command_triggers.is_empty() {
            return Err(ManifestError::whole_file(self.src.path(), "the manifest has no triggers: nothing to run")
                .with_hint("add [[trigger.http]] with a route and a component (or a redis, mqtt, messaging, cron or command trigger)"));
        }
        if let Some(first) = command_triggers.first() {
            let others = http_triggers.len() + redis_triggers.len() + mqtt_triggers.len() + messaging_triggers.len() + cron_triggers.len() + command_triggers.len() - 1;
            if others > 0 {
                return Err(ManifestError::at(self.src.path(), first.location, "a command trigger runs its component once and exits, so it cannot be mixed with other triggers", "put the command in an app of its own"));
            }
        }
        self.check_routes(&http_base, &http_triggers)?;
        self.check_component_dependencies(&components)?;
        self.check_service_chaining(&components, &http_triggers)?;

        let dir = self
            .src
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        for c in components.values_mut() {
            if let ComponentSource::File(path) = &mut c.source {
                *path = dir.join(&*path);
            }
        }
        Ok(Manifest {
            path: self.src.path().to_path_buf(),
            dir,
            application,
            http_base,
            variables,
            http_triggers,
            redis_address,
            redis_triggers,
            mqtt_broker,
            mqtt_triggers,
            messaging_triggers,
            cron_triggers,
            command_triggers,
            components,
        })
    }

    /// `{ component = "id" }` names a component of the app that, as in Spin, has no
    /// grants or dependencies of its own (they would not apply once it is composed).
    fn check_component_dependencies(&self, components: &BTreeMap<String, Component>) -> Result<(), ManifestError> {
        for (id, component) in components {
            let middleware = component.middleware.iter().enumerate().map(|(i, d)| (format!("the middleware[{i}] of component `{id}`"), d));
            let dependencies = component.dependencies.iter().map(|d| (format!("component.{id}.dependencies.\"{}\"", d.name), d));
            for (key, dependency) in dependencies.chain(middleware) {
                let DependencySource::Component(other) = &dependency.source else { continue };
                let Some(target) = components.get(other) else {
                    let known: Vec<&str> = components.keys().map(String::as_str).collect();
                    return Err(ManifestError::at(self.src.path(), dependency.location, format!("{key}: the app has no component `{other}`"), format!("name one of: {}", known.join(", "))));
                };
                let mut own = Vec::new();
                for (has, key) in [
                    (!target.allowed_outbound_hosts.is_empty(), "allowed_outbound_hosts"),
                    (!target.dependencies.is_empty(), "dependencies"),
                    (!target.environment.is_empty(), "environment"),
                    (!target.files.is_empty(), "files"),
                    (!target.key_value_stores.is_empty(), "key_value_stores"),
                    (!target.sqlite_databases.is_empty(), "sqlite_databases"),
                    (!target.allowed_publish_subjects.is_empty(), "allowed_publish_subjects"),
                    (!target.blob_containers.is_empty(), "blob_containers"),
                    (!target.variables.is_empty(), "variables"),
                ] {
                    if has {
                        own.push(key);
                    }
                }
                if !own.is_empty() {
                    return Err(ManifestError::at(
                        self.src.path(),
                        dependency.location,
                        format!("{key}: component `{other}` cannot be a dependency of `{id}` because it has {} of its own", own.join(", ")),
                        format!("a dependency runs with what `{id}` lets it inherit (inherit_configuration); move those keys to `{id}` or drop them from `{other}`"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `http://<id>.spin.internal` in `allowed_outbound_hosts` must name a component with
    /// an HTTP trigger (templated entries are checked when rendered, at runtime).
    fn check_service_chaining(&self, components: &BTreeMap<String, Component>, http_triggers: &[HttpTrigger]) -> Result<(), ManifestError> {
        let served: Vec<&str> = http_triggers
            .iter()
            .filter_map(|t| match &t.target {
                HttpTarget::Component(id) => Some(id.as_str()),
                HttpTarget::Static(_) => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for (id, component) in components {
            for (template, at) in &component.allowed_outbound_hosts {
                if template.variables().next().is_some() {
                    continue;
                }
                let Ok(pattern) = crate::allowed_hosts::AllowedHost::parse(&template.to_string()) else { continue };
                let Some(target) = pattern.chaining_target() else { continue };
                if target != "*" && !served.contains(&target) {
                    let hint = if components.contains_key(target) {
                        format!("component `{target}` has no [[trigger.http]]: give it one (route = {{ private = true }} serves it only to other components)")
                    } else {
                        format!("service chaining reaches the app's HTTP components: {}", if served.is_empty() { "it has none".to_string() } else { served.join(", ") })
                    };
                    return Err(ManifestError::at(
                        self.src.path(),
                        *at,
                        format!("component.{id}.allowed_outbound_hosts: `{pattern}` names no HTTP component of this app"),
                        &hint,
                    ));
                }
            }
        }
        Ok(())
    }

    /// A `{{ variable }}` template whose variables are all defined.
    /// `[application.trigger.mqtt]`.
    fn mqtt_broker(&self, raw: Spanned<RawAppMqtt>, variables: &BTreeMap<String, Variable>) -> Result<MqttBroker, ManifestError> {
        let span = raw.span();
        let b = raw.into_inner();
        let address = b.address.ok_or_else(|| self.err(span.clone(), "[application.trigger.mqtt] has no `address`", "add address = \"mqtt://127.0.0.1:1883\""))?;
        // The scheme is checked when written out (a variable may stand for all of it).
        let scheme = match address.get_ref().split_once("://") {
            Some((scheme, _)) => Some(scheme).filter(|s| !s.contains("{{")),
            None => Some("").filter(|_| !address.get_ref().contains("{{")),
        };
        if scheme.is_some_and(|s| !["mqtt", "mqtts", "tcp", "ssl"].contains(&s)) {
            return Err(self.err(address.span(), format!("MQTT address `{}` is not an mqtt:// URL", address.get_ref()), "write it as mqtt://HOST:PORT (mqtts:// for TLS)"));
        }
        let empty = || Spanned::new(0..0, String::new());
        let keep_alive_interval = match &b.keep_alive_interval {
            None => 30,
            Some(k) => match small_number(k.get_ref()) {
                Some(n) if n <= u64::from(u16::MAX) => n as u16,
                _ => return Err(self.err(k.span(), format!("keep_alive_interval {} is not a number of seconds up to 65535", k.get_ref()), "write keep_alive_interval = \"30\"")),
            },
        };
        Ok(MqttBroker {
            address: self.template(&address, variables)?,
            username: self.template(&b.username.unwrap_or_else(empty), variables)?,
            password: self.template(&b.password.unwrap_or_else(empty), variables)?,
            keep_alive_interval,
            location: self.loc(&span),
        })
    }

    fn template(&self, text: &Spanned<String>, variables: &BTreeMap<String, Variable>) -> Result<Template, ManifestError> {
        let t = Template::parse(text.get_ref()).map_err(|e| self.err(text.span(), e, "write templates as {{ variable_name }}"))?;
        if let Some(missing) = t.variables().find(|v| !variables.contains_key(*v)) {
            return Err(self.err(text.span(), format!("`{{{{ {missing} }}}}` refers to an application variable that is not defined"), &format!("add [variables.{missing}] with a default or required = true")));
        }
        Ok(t)
    }

    fn check_routes(&self, base: &str, triggers: &[HttpTrigger]) -> Result<(), ManifestError> {
        let routes: Vec<_> = triggers
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match &t.route {
                Route::Path(p) => Some((p.clone(), i)),
                Route::Private => None,
            })
            .collect();
        match Router::build(base, routes) {
            Ok(_) => Ok(()),
            Err(RouterBuildError::Invalid(msg)) => Err(ManifestError::whole_file(self.src.path(), msg)),
            Err(RouterBuildError::Duplicate(d)) => Err(ManifestError::at(
                self.src.path(),
                triggers[d.second].location,
                format!("duplicate route `{}`: the trigger at line {} already serves it", d.route, triggers[d.first].location.line),
                "give each [[trigger.http]] its own route, or remove one of them",
            )),
        }
    }

    fn http_trigger(
        &self,
        index: usize,
        trigger: Spanned<RawHttpTrigger>,
        components: &mut BTreeMap<String, Component>,
        variables: &BTreeMap<String, Variable>,
    ) -> Result<(HttpTrigger, Vec<Dependency>), ManifestError> {
        let span = trigger.span();
        let t = trigger.into_inner();
        self.unsupported(&t.components, "trigger.http.components", "use a single `component`")?;
        if let Some(exec) = &t.executor {
            let kind = exec.get_ref().get("type").and_then(|v| v.as_str());
            if kind != Some("http") {
                return Err(self.err(exec.span(), not_supported("trigger.http.executor (wagi)"), "remove `executor`: components must export wasi:http/incoming-handler"));
            }
        }
        let id = t.id.unwrap_or_else(|| format!("trigger-{}", index + 1));
        let route_value = t.route.ok_or_else(|| {
            self.err(span.clone(), "[[trigger.http]] has no `route`", "add route = \"/...\" (or route = { private = true })")
        })?;
        let route_loc = self.loc(&route_value.span());
        let route = match route_value.get_ref() {
            toml::Value::String(s) => {
                routes::validate_route(s).map_err(|e| self.err(route_value.span(), format!("invalid route: {e}"), "routes look like `/exact`, `/users/:id` or `/prefix/...`"))?;
                Route::Path(s.clone())
            }
            toml::Value::Table(tbl) if tbl.len() == 1 && tbl.get("private").and_then(|v| v.as_bool()) == Some(true) => Route::Private,
            _ => return Err(self.err(route_value.span(), "route must be a string pattern or `{ private = true }`", "write route = \"/path\" or route = { private = true }")),
        };
        let target = match (t.component, t.static_response) {
            (Some(_), Some(s)) => return Err(self.err(s.span(), "a trigger has both `component` and `static_response`", "keep one of them")),
            (None, None) => return Err(self.err(span.clone(), "[[trigger.http]] has neither `component` nor `static_response`", "add component = \"<id>\"")),
            (None, Some(s)) => {
                let s = s.into_inner();
                HttpTarget::Static(StaticResponse { status_code: s.status_code.unwrap_or(200), headers: s.headers, body: s.body.unwrap_or_default() })
            }
            (Some(c), None) => HttpTarget::Component(self.trigger_component(&id, "http", Some(c), span.clone(), components, variables)?),
        };
        let middleware = match (t.dependencies, &target) {
            (None, _) => Vec::new(),
            (Some(d), HttpTarget::Static(_)) => return Err(self.err(d.span(), "a static response has no handler for middleware to wrap", "remove dependencies, or serve a component")),
            (Some(d), HttpTarget::Component(primary)) => self.middleware(primary, &d.into_inner().middleware)?,
        };
        Ok((HttpTrigger { id, route, target, location: route_loc }, middleware))
    }

    /// `dependencies.middleware = [...]` of an HTTP trigger: entries of the dependency
    /// forms, outermost first, each importing and exporting `wasi:http/handler@0.3.0`.
    fn middleware(&self, primary: &str, entries: &[Spanned<toml::Value>]) -> Result<Vec<Dependency>, ManifestError> {
        let mut middleware = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let key = format!("trigger.http.dependencies.middleware[{i}]");
            if !entry.get_ref().is_table() {
                return Err(self.err(entry.span(), format!("{key} must be a table"), "write { component = \"auth\" }, { path = \"mw.wasm\" } or { url, digest }"));
            }
            if entry.get_ref().get("export").is_some() {
                return Err(self.err(entry.span(), format!("{key}: a middleware takes no `export`"), &format!("middleware is chained through {MIDDLEWARE_INTERFACE}; remove `export`")));
            }
            let name = DependencyName::parse(MIDDLEWARE_INTERFACE).expect("a valid interface name");
            middleware.push(self.dependency(primary, &key, name, entry)?);
        }
        Ok(middleware)
    }

    /// Moves each HTTP trigger's middleware to its component, splitting a component that
    /// other triggers also use into one of its own for this trigger (`<id>-<trigger id>`).
    fn attach_middleware(&self, triggers: &mut [(HttpTrigger, Vec<Dependency>)], components: &mut BTreeMap<String, Component>, others: &[&str]) -> Result<(), ManifestError> {
        let uses = |id: &str, triggers: &[(HttpTrigger, Vec<Dependency>)]| {
            triggers.iter().filter(|(t, _)| matches!(&t.target, HttpTarget::Component(c) if c == id)).count() + others.iter().filter(|o| **o == id).count()
        };
        for i in 0..triggers.len() {
            if triggers[i].1.is_empty() {
                continue;
            }
            let HttpTarget::Component(primary) = triggers[i].0.target.clone() else { continue };
            let id = if uses(&primary, triggers) > 1 {
                let split = format!("{primary}-{}", triggers[i].0.id);
                if components.contains_key(&split) {
                    return Err(ManifestError::at(self.src.path(), triggers[i].0.location, format!("component `{primary}` needs a copy of its own for this trigger's middleware, but `{split}` is taken"), "give the trigger another `id`"));
                }
                let copy = components[&primary].clone();
                components.insert(split.clone(), copy);
                triggers[i].0.target = HttpTarget::Component(split.clone());
                split
            } else {
                primary
            };
            components.get_mut(&id).expect("the trigger's component exists").middleware = std::mem::take(&mut triggers[i].1);
        }
        Ok(())
    }

    /// The component a trigger names: an id of a defined component, or an inline table,
    /// added under `<trigger id>-component`.
    fn trigger_component(
        &self,
        trigger_id: &str,
        kind: &str,
        component: Option<Spanned<toml::Value>>,
        trigger_span: Range<usize>,
        components: &mut BTreeMap<String, Component>,
        variables: &BTreeMap<String, Variable>,
    ) -> Result<String, ManifestError> {
        let Some(c) = component else {
            return Err(self.err(trigger_span, format!("[[trigger.{kind}]] has no `component`"), "add component = \"<id>\""));
        };
        let c_span = c.span();
        match c.into_inner() {
            toml::Value::String(id) => {
                if !components.contains_key(&id) {
                    let known: Vec<_> = components.keys().map(String::as_str).collect();
                    return Err(self.err(c_span, format!("the trigger refers to component `{id}`, which is not defined"), &format!("add [component.{id}] or use one of: {}", known.join(", "))));
                }
                Ok(id)
            }
            toml::Value::Table(_) => {
                let inline = Validator { src: self.src, offset: c_span.start };
                let text = &self.src.text()[c_span.clone()];
                let raw = toml::de::ValueDeserializer::parse(text)
                    .and_then(RawComponent::deserialize)
                    .map_err(|e| {
                        let at = e.span().unwrap_or(0..0);
                        inline.err(at, format!("inline component: {}", e.message().trim()), "check the inline component's keys")
                    })?;
                let inline_id = format!("{trigger_id}-component");
                let comp = inline.component(&inline_id, raw, variables)?;
                components.insert(inline_id.clone(), comp);
                Ok(inline_id)
            }
            _ => Err(self.err(c_span, "component must be a component id or an inline component table", "write component = \"my-component\"")),
        }
    }

    fn component_source(&self, id: &str, raw: &Spanned<toml::Value>) -> Result<ComponentSource, ManifestError> {
        let span = raw.span();
        let table = match raw.get_ref() {
            toml::Value::String(s) if !s.trim().is_empty() => return Ok(ComponentSource::File(PathBuf::from(s))),
            toml::Value::Table(t) => t,
            _ => return Err(self.err(span.clone(), "source must be the path of a .wasm file, { url, digest } or { registry, package, version }", "write source = \"target/wasm32-wasip2/release/app.wasm\"")),
        };
        let text = |key: &str| -> Result<Option<String>, ManifestError> {
            match table.get(key) {
                None => Ok(None),
                Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(self.err(span.clone(), format!("component.{id}.source.{key} must be a non-empty string"), &format!("write {key} = \"...\""))),
            }
        };
        let allow_only = |keys: &[&str], example: &str| -> Result<(), ManifestError> {
            match table.keys().find(|k| !keys.contains(&k.as_str())) {
                Some(extra) => Err(self.err(span.clone(), format!("unknown key `{extra}` in component.{id}.source"), example)),
                None => Ok(()),
            }
        };
        if table.contains_key("url") {
            let url_example = "write source = { url = \"https://example.com/app.wasm\", digest = \"sha256:<64 hex digits>\" }";
            allow_only(&["url", "digest"], url_example)?;
            let url = text("url")?.unwrap_or_default();
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(self.err(span.clone(), format!("component.{id}.source.url `{url}` is not an http(s) URL"), url_example));
            }
            let Some(digest) = text("digest")? else {
                return Err(self.err(span.clone(), format!("component.{id}.source.url needs a `digest`, so the download can be checked"), "add digest = \"sha256:...\" (`sha256sum app.wasm` prints it)"));
            };
            let hex = digest.strip_prefix("sha256:").unwrap_or("");
            if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(self.err(span.clone(), format!("component.{id}.source.digest `{digest}` is not `sha256:` and 64 lowercase hex digits"), "copy it from `sha256sum app.wasm`, prefixed with sha256:"));
            }
            return Ok(ComponentSource::Url { url, digest });
        }
        let package_example = "write source = { registry = \"ghcr.io\", package = \"example:hello\", version = \"1.0.0\" }";
        allow_only(&["registry", "package", "version"], package_example)?;
        let (Some(package), Some(version)) = (text("package")?, text("version")?) else {
            return Err(self.err(span.clone(), format!("component.{id}.source needs `package` and `version` (or `url` and `digest`)"), package_example));
        };
        let mut parts = package.split(':');
        let valid_part = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        if !(valid_part(parts.next()) && valid_part(parts.next()) && parts.next().is_none()) {
            return Err(self.err(span.clone(), format!("component.{id}.source.package `{package}` is not `namespace:name`"), package_example));
        }
        if version.contains(['^', '~', '*', '>', '<', '=', ' ']) {
            return Err(self.err(span.clone(), format!("component.{id}.source.version `{version}` is a range"), "pin an exact version, e.g. version = \"1.0.0\""));
        }
        Ok(ComponentSource::Package { registry: text("registry")?, package, version })
    }

    fn component(
        &self,
        id: &str,
        c: RawComponent,
        variables: &BTreeMap<String, Variable>,
    ) -> Result<Component, ManifestError> {
        let capability_later = "remove it: this capability is not in Tessera yet";
        for (value, key) in [(&c.ai_models, "ai_models")] {
            if let Some(v) = value
                && !v.get_ref().is_empty()
            {
                return Err(self.err(v.span(), not_supported(&format!("component.{id}.{key}")), capability_later));
            }
        }
        self.unsupported(&c.allowed_http_hosts, &format!("component.{id}.allowed_http_hosts"), "it is deprecated: list the hosts in allowed_outbound_hosts as `https://host`")?;
        self.unsupported(&c.targets, &format!("component.{id}.targets"), "remove it")?;
        self.unsupported(&c.tool, &format!("component.{id}.tool"), "remove it")?;
        let dependencies = self.dependencies(id, &c.dependencies, c.dependencies_inherit_configuration.as_ref())?;
        self.unsupported(&c.profile, &format!("component.{id}.profile"), "remove it")?;

        let source_span = c.source.span();
        let source = self.component_source(id, &c.source)?;

        let mut files = Vec::new();
        for f in c.files {
            let location = self.loc(&f.span());
            let mount = match f.get_ref() {
                toml::Value::String(pattern) => FileMount::Glob { pattern: pattern.clone(), location },
                toml::Value::Table(t) => {
                    let (Some(source), Some(destination)) = (t.get("source").and_then(|v| v.as_str()), t.get("destination").and_then(|v| v.as_str())) else {
                        return Err(self.err(f.span(), "a files entry table needs `source` and `destination` strings", "write { source = \"assets\", destination = \"/\" }"));
                    };
                    if let Some(extra) = t.keys().find(|k| *k != "source" && *k != "destination") {
                        return Err(self.err(f.span(), format!("unknown key `{extra}` in a files entry"), "a files entry has only `source` and `destination`"));
                    }
                    if !destination.starts_with('/') {
                        return Err(self.err(f.span(), format!("files destination `{destination}` is not absolute"), "start it with `/`"));
                    }
                    FileMount::Map { source: PathBuf::from(source), destination: destination.to_string(), location }
                }
                _ => return Err(self.err(f.span(), "a files entry must be a glob string or { source, destination }", "write files = [\"static/**/*\"]")),
            };
            files.push(mount);
        }

        let template = |text: &Spanned<String>| self.template(text, variables);

        let mut allowed_outbound_hosts = Vec::new();
        for host in &c.allowed_outbound_hosts {
            let t = template(host)?;
            if t.variables().next().is_none() {
                crate::allowed_hosts::AllowedHost::parse(host.get_ref()).map_err(|e| self.err(host.span(), format!("invalid allowed_outbound_hosts entry: {e}"), "entries look like \"https://api.example.com\", \"http://127.0.0.1:8080\" or \"*://*:*\""))?;
            }
            allowed_outbound_hosts.push((t, self.loc(&host.span())));
        }

        let mut config = BTreeMap::new();
        for (key, value) in &c.variables {
            if !is_variable_name(key) {
                return Err(self.err(value.span(), format!("component variable `{key}` is not lower_snake_case"), "rename it, e.g. `api_url`"));
            }
            config.insert(key.clone(), template(value)?);
        }

        let build = match c.build {
            None => None,
            Some(b) => {
                self.unsupported(&b.environment, &format!("component.{id}.build.environment"), "set the variables in the command, e.g. `FOO=1 cargo build`")?;
                let commands = match b.command.get_ref() {
                    toml::Value::String(s) => vec![s.clone()],
                    toml::Value::Array(items) if items.iter().all(|i| i.is_str()) => items.iter().filter_map(|i| i.as_str().map(String::from)).collect(),
                    _ => return Err(self.err(b.command.span(), "build.command must be a string or a list of strings", "write command = \"cargo build --target wasm32-wasip2 --release\"")),
                };
                Some(Build { commands, workdir: b.workdir.map(PathBuf::from), watch: b.watch })
            }
        };

        let labels = |list: &[Spanned<String>], what: &str| -> Result<Vec<(String, Location)>, ManifestError> {
            list.iter()
                .map(|label| {
                    if !is_store_label(label.get_ref()) {
                        return Err(self.err(label.span(), format!("{what} label `{}` is not valid", label.get_ref()), "use lowercase letters, digits, `_` and `-`, e.g. \"default\""));
                    }
                    Ok((label.get_ref().clone(), self.loc(&label.span())))
                })
                .collect()
        };
        let key_value_stores = labels(&c.key_value_stores, "key-value store")?;
        let sqlite_databases = labels(&c.sqlite_databases, "SQLite database")?;
        let mut allowed_publish_subjects = Vec::new();
        for subject in &c.allowed_publish_subjects {
            if let Some(why) = crate::subjects::check(subject.get_ref(), true) {
                return Err(self.err(subject.span(), format!("component.{id}.allowed_publish_subjects: {why}"), crate::subjects::HINT));
            }
            allowed_publish_subjects.push((subject.get_ref().clone(), self.loc(&subject.span())));
        }
        let mut blob_containers = Vec::new();
        for name in &c.blob_containers {
            if let Some(why) = blob_container_error(name.get_ref()) {
                return Err(self.err(name.span(), format!("component.{id}.blob_containers: {why}"), "name a container, e.g. \"uploads\" (letters, digits, `.`, `_` and `-`), or \"*\" for any"));
            }
            blob_containers.push((name.get_ref().clone(), self.loc(&name.span())));
        }

        Ok(Component {
            key_value_stores,
            sqlite_databases,
            allowed_publish_subjects,
            blob_containers,
            id: id.to_string(),
            source,
            source_location: self.loc(&source_span),
            description: c.description,
            environment: c.environment,
            files,
            exclude_files: c.exclude_files,
            allowed_outbound_hosts,
            variables: config,
            build,
            dependencies,
            middleware: Vec::new(),
        })
    }

    /// `[component.<id>.dependencies]` and `dependencies_inherit_configuration`, checked
    /// as Spin checks them.
    fn dependencies(
        &self,
        id: &str,
        raw: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
        inherit_all: Option<&Spanned<bool>>,
    ) -> Result<Vec<Dependency>, ManifestError> {
        let mut dependencies: Vec<(Dependency, Range<usize>)> = Vec::new();
        for (key, value) in raw {
            let at = key.span().start..value.span().end;
            let name = DependencyName::parse(key.get_ref())
                .map_err(|e| self.err(key.span(), format!("component.{id}.dependencies: {e}"), "name an import: \"ns:pkg\", \"ns:pkg/interface\", \"ns:pkg/interface@1.0.0\" or a plain \"name\""))?;
            let key = format!("component.{id}.dependencies.\"{name}\"");
            let dependency = self.dependency(id, &key, name, value)?;
            if let (Some(all), true) = (inherit_all, raw_has(value, "inherit_configuration")) {
                return Err(self.err(
                    at,
                    format!("component `{id}` sets both dependencies_inherit_configuration (line {}) and this dependency's inherit_configuration", self.loc(&all.span()).line),
                    "they are mutually exclusive: keep dependencies_inherit_configuration for every dependency, or inherit_configuration on each",
                ));
            }
            dependencies.push((dependency, at));
        }
        for (i, (this, _)) in dependencies.iter().enumerate() {
            for (other, at) in &dependencies[i + 1..] {
                if let Some(why) = conflict(&this.name, &other.name) {
                    return Err(self.err(
                        at.clone(),
                        format!("component.{id}.dependencies: `{}` conflicts with `{}` (line {}): {why}", other.name, this.name, this.location.line),
                        "keys of one package must name different interfaces or incompatible versions; remove one",
                    ));
                }
            }
        }
        let mut dependencies: Vec<Dependency> = dependencies.into_iter().map(|(d, _)| d).collect();
        if inherit_all.is_some_and(|all| *all.get_ref()) {
            for d in &mut dependencies {
                d.inherit = Inherit::Everything;
            }
        }
        Ok(dependencies)
    }

    fn dependency(&self, id: &str, key: &str, name: DependencyName, value: &Spanned<toml::Value>) -> Result<Dependency, ManifestError> {
        let span = value.span();
        let location = self.loc(&span);
        let table = match value.get_ref() {
            toml::Value::String(version) => {
                check_version_req(version).map_err(|e| self.err(span.clone(), format!("{key}: {e}"), "write a semver requirement, e.g. \">=0.1.0\" or \"1.2.3\""))?;
                if let DependencyName::Plain(_) = name {
                    return Err(self.err(span, format!("{key}: a plain name needs a `package` to fetch"), &format!("write \"{name}\" = {{ version = \"{version}\", package = \"ns:pkg\" }}")));
                }
                let source = DependencySource::Registry { version: version.clone(), registry: None, package: None };
                return Ok(Dependency { name, source, export: None, inherit: Inherit::Nothing, location });
            }
            toml::Value::Table(t) => t,
            _ => return Err(self.err(span, format!("{key} must be a version string or a table"), "write { path = \"dep.wasm\" }, { component = \"other-id\" }, { url, digest } or { version, registry?, package? }")),
        };
        let text = |field: &str| -> Result<Option<String>, ManifestError> {
            match table.get(field) {
                None => Ok(None),
                Some(toml::Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(self.err(span.clone(), format!("{key}.{field} must be a non-empty string"), &format!("write {field} = \"...\""))),
            }
        };
        let forms = ["path", "url", "component", "version"];
        let given: Vec<&str> = forms.iter().copied().filter(|f| table.contains_key(*f)).collect();
        let example = "write { path = \"dep.wasm\" }, { component = \"other-id\" }, { url = \"https://...\", digest = \"sha256:...\" } or { version = \">=0.1.0\" }";
        let form = match given.as_slice() {
            [one] => *one,
            [] => return Err(self.err(span, format!("{key} says neither `path`, `url`, `component` nor `version`"), example)),
            many => return Err(self.err(span, format!("{key} mixes {}: a dependency has one source", many.join(" and ")), example)),
        };
        let allowed: &[&str] = match form {
            "path" => &["path", "export", "inherit_configuration"],
            "url" => &["url", "digest", "export", "inherit_configuration"],
            "component" => &["component", "export", "inherit_configuration"],
            _ => &["version", "registry", "package", "export", "inherit_configuration"],
        };
        if let Some(extra) = table.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(self.err(span, format!("unknown key `{extra}` in {key} (a `{form}` dependency takes {})", allowed.join(", ")), example));
        }
        let export = text("export")?;
        if let (DependencyName::Package(p), Some(export)) = (&name, &export)
            && p.interface.is_none()
        {
            return Err(self.err(span, format!("{key}: a whole package cannot be satisfied from one export (`{export}`)"), &format!("name the interface in the key, e.g. \"{}/interface\", or drop `export`", p.package)));
        }
        let source = match form {
            "path" => DependencySource::Path(PathBuf::from(text("path")?.unwrap_or_default())),
            "component" => {
                let other = text("component")?.unwrap_or_default();
                if !is_component_id(&other) {
                    return Err(self.err(span, format!("{key}.component `{other}` is not a component id"), "write component = \"other-component\""));
                }
                if other == id {
                    return Err(self.err(span, format!("{key}: component `{id}` cannot depend on itself"), "name another component of the app"));
                }
                DependencySource::Component(other)
            }
            "url" => {
                let url = text("url")?.unwrap_or_default();
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(self.err(span, format!("{key}.url `{url}` is not an http(s) URL"), example));
                }
                let Some(digest) = text("digest")? else {
                    return Err(self.err(span, format!("{key}.url needs a `digest`, so the download can be checked"), "add digest = \"sha256:...\" (`sha256sum dep.wasm` prints it)"));
                };
                if !is_sha256_digest(&digest) {
                    return Err(self.err(span, format!("{key}.digest `{digest}` is not `sha256:` and 64 lowercase hex digits"), "copy it from `sha256sum dep.wasm`, prefixed with sha256:"));
                }
                DependencySource::Url { url, digest }
            }
            _ => {
                let version = text("version")?.unwrap_or_default();
                check_version_req(&version).map_err(|e| self.err(span.clone(), format!("{key}.version: {e}"), "write a semver requirement, e.g. \">=0.1.0\""))?;
                let package = text("package")?;
                if let Some(p) = &package
                    && !matches!(DependencyName::parse(p), Ok(DependencyName::Package(PackageName { interface: None, version: None, .. })))
                {
                    return Err(self.err(span, format!("{key}.package `{p}` is not `namespace:package`"), "write package = \"ns:pkg\""));
                }
                if matches!(name, DependencyName::Plain(_)) && package.is_none() {
                    return Err(self.err(span, format!("{key}: a plain name needs a `package` to fetch"), "add package = \"ns:pkg\""));
                }
                DependencySource::Registry { version, registry: text("registry")?, package }
            }
        };
        let inherit = match table.get("inherit_configuration") {
            None | Some(toml::Value::Boolean(false)) => Inherit::Nothing,
            Some(toml::Value::Boolean(true)) => Inherit::Everything,
            Some(toml::Value::Array(keys)) => {
                let mut names = Vec::new();
                for k in keys {
                    match k.as_str() {
                        Some(k) if INHERIT_KEYS.contains(&k) => names.push(k.to_string()),
                        _ => return Err(self.err(span, format!("{key}.inherit_configuration: `{k}` is not a configuration key"), &format!("use true, false or a list of: {}", INHERIT_KEYS.join(", ")))),
                    }
                }
                Inherit::Keys(names)
            }
            Some(_) => return Err(self.err(span, format!("{key}.inherit_configuration must be true, false or a list of keys"), &format!("e.g. inherit_configuration = [\"sqlite_databases\"]; keys: {}", INHERIT_KEYS.join(", ")))),
        };
        Ok(Dependency { name, source, export, inherit, location })
    }
}

fn raw_has(value: &Spanned<toml::Value>, key: &str) -> bool {
    value.get_ref().as_table().is_some_and(|t| t.contains_key(key))
}

fn check_version_req(req: &str) -> Result<(), String> {
    semver::VersionReq::parse(req).map(|_| ()).map_err(|e| format!("`{req}` is not a version requirement ({e})"))
}

fn is_sha256_digest(digest: &str) -> bool {
    let hex = digest.strip_prefix("sha256:").unwrap_or("");
    hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Why two keys of one component would claim the same imports (Spin's disjointness
/// rule: same package, and neither different interfaces nor incompatible versions).
fn conflict(a: &DependencyName, b: &DependencyName) -> Option<&'static str> {
    let (DependencyName::Package(a), DependencyName::Package(b)) = (a, b) else {
        return None;
    };
    if a.package != b.package {
        return None;
    }
    if let (Some(x), Some(y)) = (&a.version, &b.version)
        && compatible(x) != compatible(y)
    {
        return None;
    }
    if let (Some(x), Some(y)) = (&a.interface, &b.interface)
        && x != y
    {
        return None;
    }
    Some("both match the same imports")
}

/// A version with what semver lets differ between compatible releases cleared.
fn compatible(v: &semver::Version) -> semver::Version {
    let mut v = v.clone();
    v.build = semver::BuildMetadata::EMPTY;
    if !v.pre.is_empty() {
        return v;
    }
    if v.major > 0 {
        v.minor = 0;
        v.patch = 0;
    } else if v.minor > 0 {
        v.patch = 0;
    }
    v
}

/// Why `name` cannot name a blob container (or `*`, any), or `None`: it becomes a
/// directory name in the embedded store, so no separators, `..` or hidden names.
pub fn blob_container_error(name: &str) -> Option<String> {
    if name == "*" {
        return None;
    }
    if name.is_empty() || name.len() > 255 {
        return Some(format!("container name `{name}` must have 1 to 255 characters"));
    }
    if name.starts_with('.') || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
        return Some(format!("container name `{name}` may only use letters, digits, `.`, `_` and `-`, and not start with `.`"));
    }
    None
}

/// Labels of stores and databases: lowercase letters, digits, `_` and `-`.
pub fn is_store_label(label: &str) -> bool {
    !label.is_empty()
        && label.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '-'))
}

/// Spin's rule for component ids: kebab-case, starting with a letter.
pub fn is_component_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
        && !id.ends_with('-')
        && !id.contains("--")
}
