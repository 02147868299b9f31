//! The security headers every answer carries: the Content-Security-Policy of pages and of the
//! API, and the referrer policy.

use axum::http::{HeaderValue, header};

/// The Content-Security-Policy of pages: scripts, styles and everything else from this server
/// only (no inline script, style or handler: the templates keep theirs in static/), forms
/// posted here only, never framed. The sign-in page widens `form-action` by the external
/// redirect hosts, where a sign-in may continue (`pages::login_form`).
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// API answers are data, never documents: nothing may load from them or frame them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; sandbox";
/// No page leaks its URL (tokens of registration and reset links, `next=`) to another site.
pub const REFERRER_POLICY: &str = "no-referrer";

/// Adds the security headers every answer carries: the page or API CSP (unless the handler
/// set its own) and the referrer policy.
pub async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let api = req.uri().path().starts_with("/api/");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(if api { API_CSP } else { PAGE_CSP }),
        );
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static(REFERRER_POLICY),
    );
    r
}
