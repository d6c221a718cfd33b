//! GraphiQL, served with every asset from this binary: it works with no internet.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::error_response;

const PAGE: &str = include_str!("../../playground/index.html");

const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "graphiql.min.js",
        "text/javascript",
        include_bytes!("../../playground/vendor/graphiql.min.js"),
    ),
    (
        "graphiql.min.css",
        "text/css",
        include_bytes!("../../playground/vendor/graphiql.min.css"),
    ),
    (
        "react.production.min.js",
        "text/javascript",
        include_bytes!("../../playground/vendor/react.production.min.js"),
    ),
    (
        "react-dom.production.min.js",
        "text/javascript",
        include_bytes!("../../playground/vendor/react-dom.production.min.js"),
    ),
    (
        "graphql-ws.min.js",
        "text/javascript",
        include_bytes!("../../playground/vendor/graphql-ws.min.js"),
    ),
    (
        "playground.js",
        "text/javascript",
        include_bytes!("../../playground/playground.js"),
    ),
];

pub async fn page() -> impl IntoResponse {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            super::hygiene::PLAYGROUND_CSP,
        )],
        Html(PAGE),
    )
}

pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *body,
        )
            .into_response(),
        None => error_response(StatusCode::NOT_FOUND, "NOT_FOUND", "no such asset"),
    }
}
