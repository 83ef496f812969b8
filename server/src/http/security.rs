//! Browser-facing hardening: security headers on every response, a Content-Security-Policy
//! carrying the per-response nonce Leptos puts on its inline hydration script, and a
//! same-origin check on the cookie-authenticated requests that change state (server
//! functions, login, logout), and server-function errors answered with their real status.

use app::AppError;
use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Router,
};
use leptos::{nonce::use_nonce, prelude::use_context, server_fn::error::SERVER_FN_ERROR_HEADER};
use leptos_axum::ResponseOptions;
use tower_http::set_header::SetResponseHeaderLayer;

use super::AppState;

/// The dashboard's policy. Scripts: the bundle from this origin, WebAssembly compilation, and
/// inline scripts only with this response's nonce (Leptos' hydration bootstrap and resource
/// chunks). Styles allow inline attributes (Leptos sets `style` on a few elements).
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'{nonce} 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

/// Called in the Leptos context of every rendered page: the CSP naming its nonce.
pub fn page_csp() {
    if let (Some(nonce), Some(response)) = (use_nonce(), use_context::<ResponseOptions>()) {
        if let Ok(value) = HeaderValue::from_str(&content_security_policy(Some(&nonce))) {
            response.insert_header(header::CONTENT_SECURITY_POLICY, value);
        }
    }
}

/// The headers every response gets; a page's own nonce CSP takes precedence over the default.
pub fn harden(router: Router) -> Router {
    let default_csp = HeaderValue::from_str(&content_security_policy(None)).expect("an ASCII policy");
    router
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, default_csp))
        .layer(SetResponseHeaderLayer::overriding(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::overriding(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
}

/// Refuses a state-changing request that a browser sent from another site: the session
/// cookie would authenticate it (CSRF). The REST API is left alone: it reads only a Bearer
/// key, which a foreign page cannot make a browser send.
pub async fn same_origin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if safe || req.uri().path().starts_with("/api/v1/") {
        return next.run(req).await;
    }
    match foreign_source(req.headers(), &state.config.public_url()) {
        Some(from) => {
            tracing::warn!(%from, path = %req.uri().path(), "cross-site request refused");
            let message = format!("Cross-site request refused: it came from {from}, not from this site.");
            (StatusCode::FORBIDDEN, message).into_response()
        }
        None => next.run(req).await,
    }
}

/// Server functions answer every error with 500 (Leptos' convention); this gives the
/// browser and the logs the status the error means: 401, 403, 404 (another account's
/// object), 422. Leptos' client decodes the same body for any 4xx/5xx.
pub async fn server_fn_status(req: Request, next: Next) -> Response {
    let server_fn = req.uri().path().starts_with("/api/") && !req.uri().path().starts_with("/api/v1/");
    let res = next.run(req).await;
    if !server_fn
        || res.status() != StatusCode::INTERNAL_SERVER_ERROR
        || !res.headers().contains_key(SERVER_FN_ERROR_HEADER)
    {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    parts.status = match serde_json::from_slice::<AppError>(&bytes) {
        Ok(AppError::Unauthorized) => StatusCode::UNAUTHORIZED,
        Ok(AppError::Forbidden) => StatusCode::FORBIDDEN,
        Ok(AppError::NotFound) => StatusCode::NOT_FOUND,
        Ok(AppError::Invalid { .. } | AppError::Validation(_)) => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

/// Where a cross-site request came from, or `None` when it is same-origin. Origin decides;
/// without it Sec-Fetch-Site, then Referer. With none of them (not a browser: every current
/// browser sends Origin on a POST) the request passes.
fn foreign_source(headers: &HeaderMap, public_url: &str) -> Option<String> {
    let get = |name| headers.get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let host = get(header::HOST);
    let public = url::Url::parse(public_url).ok().map(|u| u.origin());
    let ours = |url: &str| {
        let Ok(url) = url::Url::parse(url) else { return false }; // also `Origin: null`
        let authority = url.host_str().map(|h| url.port().map_or_else(|| h.to_owned(), |p| format!("{h}:{p}")));
        (authority.is_some() && authority.as_deref() == host) || Some(url.origin()) == public
    };
    if let Some(origin) = get(header::ORIGIN) {
        return (!ours(origin)).then(|| origin.to_owned());
    }
    if let Some(site) = get(HeaderName::from_static("sec-fetch-site")) {
        return (!matches!(site, "same-origin" | "none")).then(|| format!("a {site} page"));
    }
    if let Some(referer) = get(header::REFERER) {
        return (!ours(referer)).then(|| referer.split('?').next().unwrap_or(referer).to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        map
    }

    const PUBLIC: &str = "https://hooks.example.com";

    #[test]
    fn same_origin_passes_and_foreign_origins_are_named() {
        let ok = |pairs| foreign_source(&headers(pairs), PUBLIC).is_none();
        assert!(ok(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")]));
        assert!(ok(&[("host", "10.0.0.5"), ("origin", "https://hooks.example.com")]), "the public URL behind a proxy");
        assert!(ok(&[("host", "127.0.0.1:3000"), ("sec-fetch-site", "same-origin")]));
        assert!(ok(&[("host", "127.0.0.1:3000"), ("referer", "http://127.0.0.1:3000/settings/webhooks")]));
        assert!(ok(&[("host", "127.0.0.1:3000")]), "not a browser");
        assert_eq!(
            foreign_source(&headers(&[("host", "127.0.0.1:3000"), ("origin", "https://evil.example")]), PUBLIC)
                .as_deref(),
            Some("https://evil.example")
        );
        assert!(!ok(&[("host", "127.0.0.1:3000"), ("origin", "null")]));
        assert!(
            !ok(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3001")]),
            "another port is another origin"
        );
        assert!(!ok(&[("host", "127.0.0.1:3000"), ("sec-fetch-site", "cross-site")]));
        assert!(!ok(&[("host", "127.0.0.1:3000"), ("sec-fetch-site", "same-site")]));
        assert!(!ok(&[("host", "127.0.0.1:3000"), ("referer", "https://evil.example/x?y=1")]));
    }

    #[test]
    fn the_page_policy_names_the_nonce_and_forbids_framing() {
        let csp = content_security_policy(Some("abc"));
        assert!(csp.contains("script-src 'self' 'nonce-abc' 'wasm-unsafe-eval'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!content_security_policy(None).contains("nonce"));
    }
}
