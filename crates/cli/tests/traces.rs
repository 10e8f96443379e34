//! OpenTelemetry traces over OTLP/HTTP: a collector of the test's own receives the export
//! and decodes it with the official protocol definitions (opentelemetry-proto); the spans'
//! names, kinds, parents and attributes are checked, with W3C trace context taken from
//! the inbound request and sent on the outbound one.

mod support;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// Spans received, with their resource's `service.name`.
type Received = Arc<Mutex<Vec<(String, Span)>>>;

/// An OTLP/HTTP collector: POST /v1/traces with a protobuf body.
fn collector() -> (SocketAddr, Received, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let spans: Received = Arc::default();
    let paths: Arc<Mutex<Vec<String>>> = Arc::default();
    let (into, seen) = (spans.clone(), paths.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (into, seen) = (into.clone(), seen.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let (head, body) = match read_request(&mut reader) {
                        Some(r) => r,
                        None => return,
                    };
                    seen.lock().unwrap().push(head.lines().next().unwrap_or("").to_string());
                    if let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice()) {
                        for resource in request.resource_spans {
                            let service = resource
                                .resource
                                .iter()
                                .flat_map(|r| r.attributes.iter())
                                .find(|a| a.key == "service.name")
                                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                                    Value::StringValue(s) => Some(s.clone()),
                                    _ => None,
                                })
                                .unwrap_or_default();
                            for scope in resource.scope_spans {
                                for span in scope.spans {
                                    into.lock().unwrap().push((service.clone(), span));
                                }
                            }
                        }
                    }
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n");
                }
            });
        }
    });
    (addr, spans, paths)
}

/// One HTTP/1.1 request with a Content-Length body: its head and body.
fn read_request(reader: &mut BufReader<std::net::TcpStream>) -> Option<(String, Vec<u8>)> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let length = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")).map(|(_, v)| v.trim().parse::<usize>().unwrap_or(0)))
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// An upstream server that records each request's head and answers 200.
fn upstream() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let heads: Arc<Mutex<Vec<String>>> = Arc::default();
    let into = heads.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if let Some((head, _)) = read_request(&mut reader) {
                into.lock().unwrap().push(head.to_ascii_lowercase());
            }
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        }
    });
    (addr, heads)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    })
}

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID: &str = "b7ad6b7169203331";

#[test]
fn spans_reach_an_otlp_collector_with_their_parents_and_trace_context_goes_on() {
    let (collector, spans, paths) = collector();
    let (upstream, heads) = upstream();
    // Redis, when installed (CI installs it): its commands are client spans too.
    let redis = Redis::start();
    let redis_url = redis.as_ref().map_or("redis://127.0.0.1:9".to_string(), |r| r.url());
    let app = App::new(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"shop\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"guest\"\n\
         [[trigger.http]]\nroute = \"/kv/...\"\ncomponent = \"kv\"\n\
         [[trigger.http]]\nroute = \"/redis\"\ncomponent = \"kv\"\n\
         [component.guest]\nsource = \"{{http_guest}}\"\nallowed_outbound_hosts = [\"http://{upstream}\"]\n\
         [component.kv]\nsource = \"{{spin_guest}}\"\nkey_value_stores = [\"default\"]\nallowed_outbound_hosts = [\"{redis_url}\"]\n"
    ));
    let mut cmd = tessera();
    cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{collector}"))
        .env("OTEL_SERVICE_NAME", "shop-frontend")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    let mut server = Server::start_with(cmd, app.path(), &[]);

    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let r = request("GET", &server.url(&format!("/outbound?url=http://{upstream}/x")), &[("traceparent", &traceparent)], None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request("PUT", &server.url("/kv/default/k"), &[], Some(b"v"));
    assert_eq!(r.status, 200, "{}", r.body);
    if redis.is_some() {
        let r = request("POST", &server.url(&format!("/redis?addr={redis_url}&op=set&key=k")), &[], Some(b"v"));
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // SIGTERM flushes what is left.
    assert!(server.terminate().success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let expected = if redis.is_some() { 6 } else { 4 };
    while spans.lock().unwrap().len() < expected && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(paths.lock().unwrap().iter().all(|p| p.starts_with("POST /v1/traces")), "{:?}", paths.lock().unwrap());
    let spans = spans.lock().unwrap();
    let names: Vec<_> = spans.iter().map(|(_, s)| s.name.clone()).collect();
    assert!(spans.iter().all(|(service, _)| service == "shop-frontend"), "service.name");

    // The request's server span continues the client's trace.
    let request_span = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "tessera_trigger_http.handle_http_request" && attribute(s, "component").as_deref() == Some("guest"))
        .unwrap_or_else(|| panic!("no server span for `guest`: {names:?}"));
    assert_eq!(request_span.kind, SpanKind::Server as i32);
    assert_eq!(hex(&request_span.trace_id), TRACE_ID);
    assert_eq!(hex(&request_span.parent_span_id), PARENT_ID);
    assert_eq!(attribute(request_span, "app").as_deref(), Some("shop"));

    // The outbound request is its child, a client span, and carried the context on.
    let outbound = spans.iter().map(|(_, s)| s).find(|s| s.name.starts_with("GET 127.0.0.1")).unwrap_or_else(|| panic!("no outbound span: {names:?}"));
    assert_eq!(outbound.kind, SpanKind::Client as i32);
    assert_eq!(outbound.parent_span_id, request_span.span_id);
    assert_eq!(outbound.trace_id, request_span.trace_id);
    assert_eq!(attribute(outbound, "http.response.status_code").as_deref(), Some("200"));
    let heads = heads.lock().unwrap();
    let sent = heads.iter().find_map(|h| h.lines().find_map(|l| l.strip_prefix("traceparent: ").map(str::to_string))).expect("traceparent sent upstream");
    assert_eq!(sent.trim(), format!("00-{TRACE_ID}-{}-01", hex(&outbound.span_id)));

    // A request without context starts a trace; its key-value call is a child span.
    let kv_request = spans
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "tessera_trigger_http.handle_http_request" && attribute(s, "component").as_deref() == Some("kv"))
        .unwrap_or_else(|| panic!("no server span for `kv`: {names:?}"));
    assert!(kv_request.parent_span_id.is_empty(), "a new trace");
    assert_ne!(hex(&kv_request.trace_id), TRACE_ID);
    let set = spans.iter().map(|(_, s)| s).find(|s| s.name == "key_value.set").unwrap_or_else(|| panic!("no key_value.set span: {names:?}"));
    assert_eq!(set.parent_span_id, kv_request.span_id);
    assert_eq!(set.kind, SpanKind::Client as i32);
    assert_eq!(attribute(set, "db.system").as_deref(), Some("sqlite"));

    if redis.is_some() {
        let command = spans.iter().map(|(_, s)| s).find(|s| s.name == "redis.command").unwrap_or_else(|| panic!("no redis.command span: {names:?}"));
        assert_eq!(command.kind, SpanKind::Client as i32);
        assert_eq!(attribute(command, "db.system").as_deref(), Some("redis"));
        assert_eq!(attribute(command, "db.operation.name").as_deref(), Some("SET"));
        let parent = spans.iter().map(|(_, s)| s).find(|s| s.span_id == command.parent_span_id).expect("the command's parent");
        assert_eq!(parent.name, "tessera_trigger_http.handle_http_request");
    }
}

#[test]
fn without_an_endpoint_nothing_is_exported_and_traceparent_is_not_sent_on() {
    let (upstream, heads) = upstream();
    let app = App::new(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"quiet\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"guest\"\n\
         [component.guest]\nsource = \"{{http_guest}}\"\nallowed_outbound_hosts = [\"http://{upstream}\"]\n"
    ));
    let mut cmd = tessera();
    cmd.env_remove("OTEL_EXPORTER_OTLP_ENDPOINT").env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let server = Server::start_with(cmd, app.path(), &[]);
    let r = request("GET", &server.url(&format!("/outbound?url=http://{upstream}/x")), &[("traceparent", &format!("00-{TRACE_ID}-{PARENT_ID}-01"))], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!heads.lock().unwrap().iter().any(|h| h.contains("traceparent")), "{:?}", heads.lock().unwrap());
}
