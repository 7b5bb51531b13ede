//! The web chat page at `/`: the files of the repository's `web/` directory,
//! embedded in the binary at compile time, so starting the server is all it
//! takes to use the page: no front-end build, no files to deploy next to it.
//! The page is built on the JavaScript client library, whose modules
//! (`clients/js/src/*.js`) are embedded too and served as they are, at
//! `/assets/chat-client/`: one implementation of the protocol, used by the
//! page and by every other JavaScript client.
//!
//! The admin dashboard (`/admin`, its files under `/assets/admin/`) is
//! embedded the same way, in a list of its own ([`ADMIN_ASSETS`]) whose
//! routes the server puts behind the API's access rule.
//!
//! Each file gets its own route (no wildcard), so the page never shadows a
//! route added elsewhere. File names carry no content hash, so responses say
//! `Cache-Control: no-cache` and carry an `ETag`: a browser revalidates on
//! every load, gets `304 Not Modified` while the binary is the same, and picks
//! up a new build at once.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file and where it is served.
pub struct Asset {
    /// URL path.
    pub path: &'static str,
    /// Path in the repository (`web/…` or `clients/js/src/…`).
    pub file: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// Embeds `web/$file`, served at `/assets/$file` unless a path is given;
/// `library $file` embeds `clients/js/src/$file`, served at
/// `/assets/chat-client/$file`.
macro_rules! asset {
    (library $file:literal) => {
        asset!(@embed concat!("/assets/chat-client/", $file), "clients/js/src/", $file, JS)
    };
    ($file:literal, $content_type:expr) => {
        asset!(concat!("/assets/", $file), $file, $content_type)
    };
    ($path:expr, $file:literal, $content_type:expr) => {
        asset!(@embed $path, "web/", $file, $content_type)
    };
    (@embed $path:expr, $dir:literal, $file:literal, $content_type:expr) => {
        Asset {
            path: $path,
            file: concat!($dir, $file),
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../", $dir, $file)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Every file of `web/` and every module of `clients/js/src/` (a test
/// checks that none is missing).
pub static ASSETS: &[Asset] = &[
    asset!("/", "index.html", HTML),
    asset!("style.css", CSS),
    asset!("favicon.svg", SVG),
    asset!("js/main.js", JS),
    asset!("js/client.js", JS),
    asset!("js/store.js", JS),
    asset!("js/storage.js", JS),
    asset!("js/validate.js", JS),
    asset!("js/format.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/view/app.js", JS),
    asset!("js/view/messages.js", JS),
    asset!("js/view/sidebar.js", JS),
    asset!("js/view/members.js", JS),
    asset!("js/view/pins.js", JS),
    asset!("js/view/picker.js", JS),
    asset!("js/view/notices.js", JS),
    asset!("js/view/search.js", JS),
    // People: guests, read markers, mentions, direct messages, the directory.
    asset!("js/guest.js", JS),
    asset!("js/people.js", JS),
    asset!("js/reads.js", JS),
    asset!("js/view/unread.js", JS),
    asset!("js/view/complete.js", JS),
    asset!("js/view/notify.js", JS),
    asset!("js/view/directory.js", JS),
    // The client library: connection, per-room order, outbox, errors.
    asset!(library "index.js"),
    asset!(library "client.js"),
    asset!(library "connection.js"),
    asset!(library "backoff.js"),
    asset!(library "emitter.js"),
    asset!(library "errors.js"),
    asset!(library "feed.js"),
    asset!(library "outbox.js"),
    asset!(library "people.js"),
];

/// The admin dashboard's page and files (see `web/admin/main.js`).
pub static ADMIN_ASSETS: &[Asset] = &[
    asset!("/admin", "admin.html", HTML),
    asset!("admin/admin.css", CSS),
    asset!("admin/main.js", JS),
    asset!("admin/api.js", JS),
    asset!("admin/charts.js", JS),
    asset!("admin/tables.js", JS),
    asset!("admin/moderation.js", JS),
];

/// What the page may load and where it may connect: only this origin, no
/// inline script or style. Message text is only ever inserted as text, and
/// this is the second line of defence should a bug ever change that.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Routes for every embedded file of the chat page, for any router state.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    routes(ASSETS)
}

/// Routes for the admin dashboard's files; the caller adds the access check.
pub fn admin_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    routes(ADMIN_ASSETS)
}

fn routes<S: Clone + Send + Sync + 'static>(assets: &'static [Asset]) -> Router<S> {
    assets.iter().fold(Router::new(), |router, asset| {
        let etag = etag(asset.body);
        router.route(
            asset.path,
            get(move |request: HeaderMap| async move { respond(asset, &etag, &request) }),
        )
    })
}

fn respond(asset: &'static Asset, etag: &HeaderValue, request: &HeaderMap) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if asset.content_type == HTML {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    if is_fresh(request, etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    (headers, asset.body).into_response()
}

/// Whether the browser's cached copy (`If-None-Match`) is the one we serve.
/// A header we cannot read counts as no match: the full file is sent.
fn is_fresh(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A strong validator from the content (64-bit FNV-1a): the same file gives
/// the same tag in every process and on every node of a cluster.
fn etag(body: &[u8]) -> HeaderValue {
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // Hex digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{hash:016x}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    /// The files under `dir` whose name ends with `suffix`, as paths from
    /// the repository's root.
    fn files_under(root: &Path, dir: &str, suffix: &str, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(root.join(dir)).expect("read a directory") {
            let path = entry.expect("read a directory entry").path();
            let name = path.file_name().expect("a name").to_string_lossy();
            let relative = format!("{dir}/{name}");
            if path.is_dir() {
                files_under(root, &relative, suffix, found);
            } else if name.ends_with(suffix) {
                found.push(relative);
            }
        }
    }

    #[test]
    fn every_file_of_web_and_every_library_module_is_embedded_once() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut on_disk = Vec::new();
        files_under(&root, "web", "", &mut on_disk);
        // The library's `.d.ts` files are types for editors, never loaded.
        files_under(&root, "clients/js/src", ".js", &mut on_disk);
        on_disk.sort();
        let every_asset = || ASSETS.iter().chain(ADMIN_ASSETS);
        let mut embedded: Vec<String> = every_asset().map(|a| a.file.to_owned()).collect();
        embedded.sort();
        assert_eq!(
            embedded, on_disk,
            "list new web/ files and clients/js/src modules in web::ASSETS"
        );
        let mut paths: Vec<&str> = every_asset().map(|a| a.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len() + ADMIN_ASSETS.len());
    }

    #[test]
    fn page_is_html_with_a_content_security_policy() {
        let page = &ASSETS[0];
        let response = respond(page, &etag(page.body), &HeaderMap::new());
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], HTML);
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
    }

    #[test]
    fn a_matching_if_none_match_gets_304() {
        let asset = &ASSETS[1];
        let tag = etag(asset.body);
        for sent in [
            tag.to_str().unwrap().to_owned(),
            format!("W/{}", tag.to_str().unwrap()),
            format!("\"other\", {}", tag.to_str().unwrap()),
            "*".to_owned(),
        ] {
            let mut request = HeaderMap::new();
            request.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&sent).unwrap());
            let response = respond(asset, &tag, &request);
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{sent}");
        }
        let mut request = HeaderMap::new();
        request.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"old\""));
        assert_eq!(respond(asset, &tag, &request).status(), StatusCode::OK);
    }
}
