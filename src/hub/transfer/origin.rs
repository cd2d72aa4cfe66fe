//! Which origins a job's transfer URLs may use: the hub's own (its `ws://` / `wss://` URL
//! read as `http://` / `https://`, same host and port) plus those listed in
//! `PERRY_TRANSFER_ORIGINS`. A `job_assign` naming any other origin (another host, another
//! port, plain `http` next to a `wss` hub) is refused before a byte is sent, and a redirect
//! to an origin outside the list is refused by the HTTP client.

use super::{url_path, TransferError};
use url::{Origin, Url};

/// The HTTP origin of the hub: `wss://h:p/ws` → `https://h:p`, `ws://h` → `http://h:80`.
pub(crate) fn hub_origin(hub_url: &str) -> Result<Origin, String> {
    let mut url = Url::parse(hub_url).map_err(|e| format!("{hub_url:?} is not a URL ({e})"))?;
    let scheme = match url.scheme() {
        "ws" => "http",
        "wss" => "https",
        other => return Err(format!("scheme {other:?} is not ws:// or wss://")),
    };
    url.set_scheme(scheme)
        .map_err(|()| format!("{hub_url:?} cannot be read as {scheme}://"))?;
    Ok(url.origin())
}

/// Parses a comma-separated list of `http(s)://host[:port]` origins (a trailing `/` is
/// fine; a path, query, fragment or user name is not).
pub(crate) fn parse_origin_list(list: &str) -> Result<Vec<Origin>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let url = Url::parse(item).map_err(|e| format!("{item:?} is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{item:?} is not an http:// or https:// origin"));
        }
        let bare = url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none();
        if !bare || url.host_str().is_none() {
            return Err(format!(
                "{item:?} is not an origin (write scheme://host[:port] only)"
            ));
        }
        out.push(url.origin());
    }
    Ok(out)
}

/// `Ok` when `url` is an http(s) URL whose origin is one of `allowed`; otherwise an error
/// naming the field (`tarball_url`, …) and the origin, never the path or query.
pub(crate) fn check_transfer_url(
    field: &str,
    url: &str,
    allowed: &[Origin],
) -> Result<(), TransferError> {
    let parsed = Url::parse(url).map_err(|_| TransferError::ForeignOrigin {
        field: field.to_string(),
        origin: "(not a URL)".into(),
    })?;
    let origin = parsed.origin();
    if matches!(parsed.scheme(), "http" | "https") && allowed.contains(&origin) {
        return Ok(());
    }
    tracing::debug!(field, path = %url_path(url), "transfer URL refused");
    Err(TransferError::ForeignOrigin {
        field: field.to_string(),
        origin: origin.ascii_serialization(),
    })
}

/// True when a redirect from `from` to `to` may be followed: same origin, or `to` is allowed.
pub(crate) fn redirect_allowed(from: &Url, to: &Url, allowed: &[Origin]) -> bool {
    from.origin() == to.origin() || allowed.contains(&to.origin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_origin_maps_ws_to_http_with_the_same_host_and_port() {
        let o = hub_origin("wss://hub.example.com/ws").unwrap();
        assert_eq!(o.ascii_serialization(), "https://hub.example.com");
        let o = hub_origin("ws://127.0.0.1:8080/ws").unwrap();
        assert_eq!(o.ascii_serialization(), "http://127.0.0.1:8080");
    }

    #[test]
    fn only_the_hub_origin_and_listed_ones_pass() {
        let hub = hub_origin("wss://hub.example.com/ws").unwrap();
        let allowed = vec![hub];
        for ok in [
            "https://hub.example.com/tarball/1?x=y",
            "https://hub.example.com:443/upload/1",
        ] {
            check_transfer_url("tarball_url", ok, &allowed).unwrap();
        }
        for bad in [
            "http://hub.example.com/tarball/1",
            "https://hub.example.com:8443/t",
            "https://evil.example.com/t",
            "file:///etc/passwd",
            "not a url",
        ] {
            let err = check_transfer_url("tarball_url", bad, &allowed)
                .unwrap_err()
                .to_string();
            assert!(err.contains("tarball_url"), "{err}");
            assert!(!err.contains("/t"), "no path in the message: {err}");
        }
        let mut more = allowed.clone();
        more.extend(parse_origin_list("https://cdn.example.com, http://10.0.0.5:9000/").unwrap());
        check_transfer_url("x", "https://cdn.example.com/a", &more).unwrap();
        check_transfer_url("x", "http://10.0.0.5:9000/a", &more).unwrap();
    }

    #[test]
    fn origin_lists_refuse_paths_and_other_schemes() {
        for bad in [
            "https://a.example/path",
            "ftp://a.example",
            "https://u@a.example",
            "x",
        ] {
            assert!(parse_origin_list(bad).is_err(), "{bad}");
        }
        assert!(parse_origin_list("").unwrap().is_empty());
    }
}
