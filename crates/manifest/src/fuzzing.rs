//! What the fuzz targets (`fuzz/`) check, shared with the regression test that replays
//! every input a fuzzer once crashed on (`fuzz/regressions/`). Each function takes raw
//! fuzzer bytes and panics only on a real bug: a parser panicking, an error pointing
//! outside the input, or a matcher breaking its own rules.

use crate::allowed_hosts::{AllowedHosts, is_restricted};
use crate::routes::Router;
use crate::{Manifest, RuntimeConfig};
use std::net::IpAddr;
use std::path::Path;

/// A fuzz target: it panics on an input that shows a bug.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (a `fuzz/fuzz_targets/<name>.rs` each).
pub const TARGETS: &[(&str, Target)] = &[
    ("manifest", manifest),
    ("runtime_config", runtime_config),
    ("route_matcher", route_matcher),
    ("host_pattern", host_pattern),
];

/// Errors must point inside the text they are about.
fn check_location(text: &str, location: Option<(usize, usize)>) {
    if let Some((line, column)) = location {
        let lines = text.split('\n').count();
        assert!(line >= 1 && line <= lines, "error line {line} outside the {lines} lines of the input");
        assert!(column >= 1, "error column {column} is not 1-based");
    }
}

/// `spin.toml` text: parses or gives an error inside the text; a parsed manifest routes.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match Manifest::parse(Path::new("/app/spin.toml"), text) {
        Ok(m) => {
            let router = m.http_router();
            for (route, _) in router.routes() {
                let _ = router.route(route.trim_end_matches("/..."));
            }
        }
        Err(e) => {
            check_location(text, e.location);
            let _ = e.to_string();
        }
    }
}

/// Runtime-config text: parses or gives an error inside the text.
pub fn runtime_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match RuntimeConfig::parse(Path::new("/app/runtime-config.toml"), text) {
        Ok(rc) => {
            assert!(rc.max_connections >= 1 && rc.max_request_headers >= 1);
            assert!(!rc.limits.request_timeout.is_zero());
        }
        Err(e) => {
            check_location(text, e.location);
            let _ = e.to_string();
        }
    }
}

/// Lines: the base path, then routes (`R <route>`) and request paths (any other line).
/// Every match must be a route of the router and keep Spin's header rules.
pub fn route_matcher(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.split('\n');
    let base = lines.next().unwrap_or("/");
    let (routes, paths): (Vec<&str>, Vec<&str>) = lines.partition(|l| l.starts_with("R "));
    let routes: Vec<(String, usize)> = routes.iter().enumerate().map(|(i, r)| (r[2..].to_string(), i)).collect();
    let Ok(router) = Router::build(base, routes.clone()) else { return };
    for path in paths {
        let Some(m) = router.route(path) else { continue };
        assert!(*m.target < routes.len());
        assert_eq!(m.raw_route, routes[*m.target].0, "a match names the route it came from");
        // A trailing `*` is a wildcard too, as in routefinder (which Spin uses).
        let wildcard = m.based_route.ends_with("...") || m.based_route.ends_with('*');
        assert!(m.path_info.is_empty() || wildcard, "only a wildcard route has path info");
        for (name, value) in &m.params {
            assert!(!name.is_empty(), "an unnamed capture for {path}");
            assert!(!value.contains('/'), "capture `{name}` = `{value}` spans segments of {path}");
        }
    }
}

/// Lines: patterns, then `?` and `scheme host port [ip]` probes. A pattern set that
/// parses never lets a non-public address through unless a pattern names it.
pub fn host_pattern(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (patterns, probes) = text.split_once("\n?\n").unwrap_or((text, ""));
    let patterns: Vec<&str> = patterns.lines().collect();
    let Ok(allowed) = AllowedHosts::parse(&patterns) else { return };
    let wide = AllowedHosts::parse(&["*://*:*"]).expect("the widest pattern parses");
    for probe in probes.lines() {
        let mut words = probe.split(' ');
        let (Some(scheme), Some(host), Some(port)) = (words.next(), words.next(), words.next()) else { continue };
        let Ok(port) = port.parse::<u16>() else { continue };
        let name_ok = allowed.check_name(scheme, host, port).is_ok();
        if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
            let address_ok = allowed.check_address(scheme, host, port, ip).is_ok();
            assert!(!address_ok || name_ok, "{probe}: an address passed for a name that did not");
            if is_restricted(ip) {
                assert!(wide.check_address(scheme, host, port, ip).is_err(), "{probe}: `*://*:*` let the internal address {ip} through");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Replays the seeds and every input a fuzzer once crashed on.
    #[test]
    fn fuzz_seeds_and_regressions_replay_cleanly() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut replayed = 0;
        for (name, check) in TARGETS {
            for dir in ["seeds", "regressions"] {
                let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(name)) else { continue };
                for entry in entries.flatten() {
                    let data = std::fs::read(entry.path()).unwrap();
                    check(&data);
                    replayed += 1;
                }
            }
        }
        assert!(replayed >= TARGETS.len(), "no seeds found under {}", fuzz.display());
    }
}
