//! The request headers Spin sets for a guest, so routers in the Spin SDKs work unchanged.

use http::{HeaderMap, HeaderName, HeaderValue};
use std::net::SocketAddr;
use tessera_manifest::routes::RouteMatch;

/// Sets Spin's headers on `headers`. Client-sent `spin-*` headers are removed first so a
/// client cannot forge them.
pub fn set_spin_headers<T>(
    headers: &mut HeaderMap,
    full_url: &str,
    route: &RouteMatch<'_, T>,
    client: SocketAddr,
) {
    let is_spin = |k: &HeaderName| k.as_str().starts_with("spin-");
    if headers.keys().any(is_spin) {
        let forged: Vec<HeaderName> = headers.keys().filter(|k| is_spin(k)).cloned().collect();
        for name in forged {
            headers.remove(name);
        }
    }
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    // Static names: parsing them per request showed up in the request profile.
    set(HeaderName::from_static("spin-full-url"), full_url);
    set(HeaderName::from_static("spin-path-info"), &route.path_info);
    set(HeaderName::from_static("spin-matched-route"), route.based_route);
    set(HeaderName::from_static("spin-base-path"), route.base);
    set(HeaderName::from_static("spin-raw-component-route"), route.raw_route);
    set(HeaderName::from_static("spin-component-route"), route.raw_route_or_prefix());
    set(HeaderName::from_static("spin-client-addr"), &client.to_string());
    for (name, value) in &route.params {
        // Spin's naming: `:path_segment` arrives as `spin-path-match-path-segment`.
        let name = format!("spin-path-match-{}", name.to_ascii_lowercase().replace('_', "-"));
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            set(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_manifest::routes::Router;

    #[test]
    fn sets_spin_headers_and_drops_forged_ones() {
        let router = Router::build("/", [("/foo/:userid/...".to_string(), ())]).unwrap();
        let m = router.route("/foo/42/bar").unwrap();
        let mut h = HeaderMap::new();
        h.insert("spin-client-addr", HeaderValue::from_static("6.6.6.6:1"));
        h.insert("spin-path-match-admin", HeaderValue::from_static("yes"));
        let client: SocketAddr = "127.0.0.1:8777".parse().unwrap();
        set_spin_headers(&mut h, "http://h/foo/42/bar?x=1", &m, client);
        assert_eq!(h["spin-full-url"], "http://h/foo/42/bar?x=1");
        assert_eq!(h["spin-path-info"], "/bar");
        assert_eq!(h["spin-matched-route"], "/foo/:userid/...");
        assert_eq!(h["spin-raw-component-route"], "/foo/:userid/...");
        assert_eq!(h["spin-component-route"], "/foo/:userid");
        assert_eq!(h["spin-base-path"], "/");
        assert_eq!(h["spin-client-addr"], "127.0.0.1:8777");
        assert_eq!(h["spin-path-match-userid"], "42");
        assert!(!h.contains_key("spin-path-match-admin"));
    }

    #[test]
    fn underscores_in_a_parameter_name_become_dashes_as_in_spin() {
        let router = Router::build("/", [("/files/:path_segment".to_string(), ())]).unwrap();
        let m = router.route("/files/a.txt").unwrap();
        let mut h = HeaderMap::new();
        set_spin_headers(&mut h, "http://h/files/a.txt", &m, "127.0.0.1:1".parse().unwrap());
        assert_eq!(h["spin-path-match-path-segment"], "a.txt");
    }
}
