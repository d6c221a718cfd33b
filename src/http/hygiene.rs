//! What every response carries whatever answered it, and what a request may bring in: the
//! security headers a browser acts on, and a request id fit to be echoed and logged.

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

use super::REQUEST_ID;

/// The API serves JSON, never pages: nothing may run, embed or be embedded. The playground
/// sends its own policy ([`PLAYGROUND_CSP`]).
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'";

/// GraphiQL from this server only: its scripts and styles (inline styles too, which it sets on
/// elements), requests and sockets to this origin, and never inside another site's frame.
pub const PLAYGROUND_CSP: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Browsers reach this host by HTTPS only, for two years, once they have seen it over HTTPS
/// (sent only then: over plain HTTP a browser ignores it).
const HSTS: &str = "max-age=63072000; includeSubDomains";

/// Adds the security headers to every response that does not set its own, and HSTS when
/// served over HTTPS.
pub fn with_security_headers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    https: bool,
) -> Router<S> {
    let mut headers = vec![
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, API_CSP),
    ];
    if https {
        headers.push((header::STRICT_TRANSPORT_SECURITY, HSTS));
    }
    headers.into_iter().fold(router, |router, (name, value)| {
        router.layer(SetResponseHeaderLayer::if_not_present(
            name,
            HeaderValue::from_static(value),
        ))
    })
}

/// A client's request id is echoed in the response and written to logs and audit records:
/// only up to 128 characters of letters, digits and `-_.:` are; anything else gets a new one.
pub fn fit_request_id(value: &[u8]) -> bool {
    (1..=128).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
}

/// Drops an unfit `X-Request-ID` before one is made for the request.
pub async fn drop_unfit_request_id(mut request: Request) -> Request {
    let unfit = request
        .headers()
        .get_all(REQUEST_ID)
        .iter()
        .any(|v| !fit_request_id(v.as_bytes()))
        || request.headers().get_all(REQUEST_ID).iter().count() > 1;
    if unfit {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

/// Cross-origin calls from the configured origins only (none: no CORS headers, so browsers
/// keep pages of other sites out). Tokens travel in `Authorization`, never in cookies, so no
/// credentials mode is offered.
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::Method;
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if allowed.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(allowed))
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
            .expose_headers([header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::fit_request_id;

    #[test]
    fn request_ids_are_short_and_plain() {
        assert!(fit_request_id(b"0b5c6f0e-6a4a-4d1c-9c53-3f1f6c2a9e11"));
        assert!(fit_request_id(b"trace.id:42_a"));
        assert!(!fit_request_id(b""));
        assert!(!fit_request_id("x".repeat(129).as_bytes()));
        assert!(!fit_request_id(b"abc\r\nforged: yes"));
        assert!(!fit_request_id(b"<script>"));
        assert!(!fit_request_id("caf\u{e9}".as_bytes()));
    }
}
