//! The browser bundle's files, under `/pkg/`.
//!
//! `scripts/build-site.sh` writes `pkg/VERSION`, a hash of the bundle's contents. Pages name the
//! bundle under `/pkg/VERSION/`, and those answers may be kept by browsers for a year
//! (`immutable`): a new build has a new version, so a stale file is never used, and an unchanged
//! one is never fetched twice. The same files give the same version on every replica, so a page
//! from one replica loads its bundle from any other. A version that is not this build's is not
//! found (the page still works as plain HTML). A file named without a version (`/pkg/duo_admin.css`,
//! as the error pages name it) is revalidated at each use instead.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeDir;

const VERSIONED: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
const UNVERSIONED: HeaderValue = HeaderValue::from_static("no-cache");

#[derive(Clone)]
pub struct Bundle {
    version: Option<Arc<str>>,
    files: ServeDir,
}

impl Bundle {
    /// The bundle built into `site_root/pkg`, with its version when the build wrote one.
    pub fn load(site_root: &Path) -> Bundle {
        let dir = site_root.join("pkg");
        let version = std::fs::read_to_string(dir.join("VERSION"))
            .ok()
            .map(|version| version.trim().to_owned())
            .filter(|version| !version.is_empty() && version.chars().all(|c| c.is_ascii_hexdigit()));
        Bundle {
            version: version.map(Arc::from),
            files: ServeDir::new(dir).precompressed_br().precompressed_gzip(),
        }
    }

    /// Where pages find the bundle, relative to the site's root.
    pub fn pkg_dir(&self) -> String {
        match &self.version {
            Some(version) => format!("pkg/{version}"),
            None => "pkg".to_owned(),
        }
    }

    /// What answers everything under `/pkg`.
    pub fn router(self) -> Router {
        Router::new().fallback(serve).with_state(self)
    }
}

async fn serve(State(bundle): State<Bundle>, mut request: Request) -> Response {
    let versioned = bundle.version.as_deref().and_then(|version| {
        let rest = request.uri().path().strip_prefix('/')?.strip_prefix(version)?.strip_prefix('/')?;
        Uri::try_from(format!("/{rest}")).ok()
    });
    let cache = if versioned.is_some() { VERSIONED } else { UNVERSIONED };
    if let Some(uri) = versioned {
        *request.uri_mut() = uri;
    }
    let Ok(response) = bundle.files.oneshot(request).await;
    let mut response = response.into_response();
    if response.status().is_success() || response.status() == axum::http::StatusCode::NOT_MODIFIED {
        response.headers_mut().insert(header::CACHE_CONTROL, cache);
    }
    response
}
