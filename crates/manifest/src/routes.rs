//! HTTP routes as Spin matches them: exact paths, `:name` segments and a trailing `/...`
//! wildcard, most specific first, under the application's `base` path.
//!
//! Matching is done by the `routefinder` crate, the one Spin uses, so precedence is the
//! same: exact segments beat `:params`, which beat the wildcard, segment by segment.

use routefinder::{RouteSpec, Segment};
use std::collections::BTreeMap;

/// A route that can be matched, with the forms of it Spin passes to guests in headers.
#[derive(Debug, Clone)]
struct Entry<T> {
    target: T,
    /// The route with the base path, as written (`/base/foo/...`).
    based_route: String,
    /// The route as written in the manifest (`/foo/...`).
    raw_route: String,
}

/// Routes requests to targets (component ids or static responses).
#[derive(Debug)]
pub struct Router<T> {
    base: String,
    routes: routefinder::Router<Entry<T>>,
}

/// Two triggers with the same route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateRoute {
    /// The route as written, with the base.
    pub route: String,
    /// Positions (in the order given to [`Router::build`]) of the first and second use.
    pub first: usize,
    /// The position of the duplicate.
    pub second: usize,
}

/// A successful match.
#[derive(Debug, Clone)]
pub struct RouteMatch<'a, T> {
    /// What the route leads to.
    pub target: &'a T,
    /// The route with the base path (`spin-matched-route`).
    pub based_route: &'a str,
    /// The route as written (`spin-raw-component-route`).
    pub raw_route: &'a str,
    /// The base path (`spin-base-path`).
    pub base: &'a str,
    /// `:name` captures, in route order (`spin-path-match-<name>`).
    pub params: Vec<(String, String)>,
    /// The part of the path matched by a trailing wildcard (`spin-path-info`).
    pub path_info: String,
}

impl<T> RouteMatch<'_, T> {
    /// The raw route without a trailing `/...` (`spin-component-route`).
    pub fn raw_route_or_prefix(&self) -> &str {
        self.raw_route.strip_suffix("/...").unwrap_or(self.raw_route)
    }
}

/// Checks a route's syntax; the error says what is wrong.
pub fn validate_route(route: &str) -> Result<(), String> {
    spec_for(&with_base("/", route)).map(|_| ())
}

/// Normalises a base path: leading `/`, no trailing `/` (the root stays `/`).
pub fn normalize_base(base: &str) -> String {
    let trimmed = base.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

fn with_base(base: &str, route: &str) -> String {
    let base = normalize_base(base);
    let route = route.strip_prefix('/').unwrap_or(route);
    let route = route.strip_suffix('/').unwrap_or(route);
    match (base.as_str(), route) {
        ("/", "") => "/".to_string(),
        ("/", r) => format!("/{r}"),
        (b, "") => b.to_string(),
        (b, r) => format!("{b}/{r}"),
    }
}

fn spec_for(based_route: &str) -> Result<RouteSpec, String> {
    let pattern = match based_route.strip_suffix("...") {
        Some(prefix) if prefix.is_empty() || prefix.ends_with('/') => format!("{prefix}*"),
        _ => based_route.to_string(),
    };
    if pattern.contains("...") {
        return Err(format!(
            "`{based_route}`: the wildcard `...` may only end a route, as in `/path/...`"
        ));
    }
    let spec: RouteSpec = pattern.parse().map_err(|e| format!("`{based_route}`: {e}"))?;
    let segments = spec.segments();
    for (i, segment) in segments.iter().enumerate() {
        let next = segments.get(i + 1);
        match segment {
            // routefinder drops a trailing `/`, so `/*/` would parse as a wildcard too.
            Segment::Wildcard if next.is_some() || !pattern.ends_with('*') => {
                return Err(format!(
                    "`{based_route}`: `*` may only end a route; write the wildcard as a trailing `/...`"
                ));
            }
            Segment::Param(name) if name.is_empty() => {
                return Err(format!("`{based_route}`: a `:` segment needs a name, as in `/:id`"));
            }
            Segment::Param(_) if !matches!(next, None | Some(Segment::Slash | Segment::Dot)) => {
                return Err(format!(
                    "`{based_route}`: a `:name` segment must end at `/`, `.` or the end of the route"
                ));
            }
            _ => {}
        }
    }
    Ok(spec)
}

/// The route with parameter names erased: two routes with the same key match the same paths.
fn match_key(spec: &RouteSpec) -> String {
    spec.segments()
        .iter()
        .map(|s| match s {
            Segment::Slash => "/".to_string(),
            Segment::Dot => ".".to_string(),
            Segment::Exact(e) => e.to_string(),
            Segment::Param(_) => ":".to_string(),
            Segment::Wildcard => "*".to_string(),
        })
        .collect()
}

impl<T> Router<T> {
    /// Builds a router from `(route, target)` pairs in manifest order.
    pub fn build(
        base: &str,
        routes: impl IntoIterator<Item = (String, T)>,
    ) -> Result<Self, RouterBuildError> {
        let base = normalize_base(base);
        let mut router = routefinder::Router::new();
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (index, (raw_route, target)) in routes.into_iter().enumerate() {
            let based_route = with_base(&base, &raw_route);
            let spec = spec_for(&based_route).map_err(RouterBuildError::Invalid)?;
            // Routes that differ only in parameter names match the same paths.
            let key = match_key(&spec);
            if let Some(&first) = seen.get(&key) {
                return Err(RouterBuildError::Duplicate(DuplicateRoute {
                    route: based_route,
                    first,
                    second: index,
                }));
            }
            seen.insert(key, index);
            let entry = Entry {
                target,
                based_route,
                raw_route,
            };
            // Adding an already parsed spec cannot fail.
            let _ = router.add(spec, entry);
        }
        Ok(Self {
            base,
            routes: router,
        })
    }

    /// The base path every route is under.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Every route with the base, in precedence order, and its target.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &T)> {
        self.routes
            .iter()
            .map(|(_, e)| (e.based_route.as_str(), &e.target))
    }

    /// The best route for a request path (without the query string).
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_, T>> {
        let m = self.routes.best_match(path)?;
        let entry = m.handler();
        let captures = m.captures();
        let params = captures
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // Spin keeps the leading and trailing slashes of the wildcard part.
        let path_info = match captures.wildcard() {
            None => String::new(),
            Some(w) => match (w.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_string(),
                (false, false) => format!("/{w}"),
                (false, true) => format!("/{w}/"),
            },
        };
        Some(RouteMatch {
            target: &entry.target,
            based_route: &entry.based_route,
            raw_route: &entry.raw_route,
            base: &self.base,
            params,
            path_info,
        })
    }
}

/// Why a router could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouterBuildError {
    /// A route's syntax is wrong.
    Invalid(String),
    /// Two triggers share a route.
    Duplicate(DuplicateRoute),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(base: &str, routes: &[&str]) -> Router<String> {
        Router::build(base, routes.iter().map(|r| (r.to_string(), r.to_string()))).unwrap()
    }

    fn target(r: &Router<String>, path: &str) -> Option<String> {
        r.route(path).map(|m| m.target.clone())
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router("/", &["/...", "/one/...", "/one/two/...", "/one", "/:id/x"]);
        assert_eq!(target(&r, "/one").unwrap(), "/one");
        assert_eq!(target(&r, "/one/two/three").unwrap(), "/one/two/...");
        assert_eq!(target(&r, "/one/three").unwrap(), "/one/...");
        assert_eq!(target(&r, "/zz/x").unwrap(), "/:id/x");
        assert_eq!(target(&r, "/").unwrap(), "/...");
    }

    #[test]
    fn exact_routes_do_not_match_longer_paths() {
        let r = router("/", &["/foo"]);
        assert!(target(&r, "/foo/bar").is_none());
        assert!(target(&r, "/fo").is_none());
        assert_eq!(target(&r, "/foo").unwrap(), "/foo");
    }

    #[test]
    fn headers_match_spin() {
        let r = router("/", &["/foo/:userid/..."]);
        let m = r.route("/foo/42/bar").unwrap();
        assert_eq!(m.based_route, "/foo/:userid/...");
        assert_eq!(m.raw_route, "/foo/:userid/...");
        assert_eq!(m.raw_route_or_prefix(), "/foo/:userid");
        assert_eq!(m.params, vec![("userid".to_string(), "42".to_string())]);
        assert_eq!(m.path_info, "/bar");
        assert_eq!(r.route("/foo/42/").unwrap().path_info, "/");
        assert_eq!(r.route("/foo/42").unwrap().path_info, "");
        assert_eq!(r.route("/foo/42/a/b/").unwrap().path_info, "/a/b/");
    }

    #[test]
    fn base_path_prefixes_every_route() {
        let r = router("/api/", &["/hello", "/files/..."]);
        assert_eq!(r.base(), "/api");
        assert!(target(&r, "/hello").is_none());
        assert_eq!(target(&r, "/api/hello").unwrap(), "/hello");
        let m = r.route("/api/files/a.txt").unwrap();
        assert_eq!(m.based_route, "/api/files/...");
        assert_eq!(m.raw_route, "/files/...");
        assert_eq!(m.path_info, "/a.txt");
    }

    #[test]
    fn duplicates_are_reported() {
        let err = Router::build("/", [("/a".to_string(), 0), ("/a/".to_string(), 1)]).unwrap_err();
        assert_eq!(
            err,
            RouterBuildError::Duplicate(DuplicateRoute { route: "/a".into(), first: 0, second: 1 })
        );
        let err = Router::build("/", [("/:x".to_string(), 0), ("/:y".to_string(), 1)]);
        assert!(matches!(err, Err(RouterBuildError::Duplicate(_))));
    }

    #[test]
    fn invalid_routes_are_reported() {
        assert!(validate_route("/a/.../b").is_err());
        assert!(validate_route("/a/*/b").is_err());
        assert!(validate_route("*//").is_err(), "a `*` followed by `/` is not a trailing wildcard");
        assert!(validate_route("/a/*/").is_ok(), "one trailing `/` is dropped, as in Spin");
        assert!(validate_route("/a/:").is_err());
        assert!(validate_route("/a/:id").is_ok());
        assert!(validate_route("/...").is_ok());
        assert!(validate_route("/a...").is_err());
    }
}
