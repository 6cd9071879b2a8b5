//! The store's JSON API, behind a bearer token (`hotline tokens create`):
//! `GET /api/calls` (the call list: `from`, `to`, `flow`, `language`, `outcome`, `intent`,
//! `severity`, `text`, `limit`, `offset`), `GET /api/calls/{id}` (one call in full: turns,
//! slots, QA findings, knowledge gaps, events), `GET /api/calls/{id}/recording` (its stereo
//! WAV) and `GET /api/analytics` (the same filters).
//!
//! Invariants: nothing is read before the token is checked; a request without a valid one is
//! 401 `auth.required` / `auth.invalid` with `WWW-Authenticate: Bearer`; a bad filter is 400
//! `filter.invalid` naming the valid values; with no store open (a server still starting)
//! it is 503 `store.unavailable`.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{ApiError, WebState};
use crate::store::query::CallFilter;
use crate::store::{Store, StoreError};

fn store_of(state: &WebState) -> Result<Store, ApiError> {
    state.store().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store.unavailable",
            "the call store is not open yet",
        )
    })
}

fn failed(e: StoreError) -> ApiError {
    match e {
        StoreError::Access(message) => {
            ApiError::new(StatusCode::BAD_REQUEST, "filter.invalid", message)
        }
        e => {
            tracing::error!("store API: {e}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store.failed",
                "the call store failed; see the server's log",
            )
        }
    }
}

fn unauthorized(code: &'static str, message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, code, message).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"hotline\""),
    );
    r
}

/// Lets a request through only with a valid bearer token.
pub(super) async fn require_token(
    State(state): State<WebState>,
    request: Request,
    next: Next,
) -> Response {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .map(str::to_string);
    let Some(secret) = bearer else {
        return unauthorized(
            "auth.required",
            "this API needs `Authorization: Bearer <token>` (hotline tokens create)",
        );
    };
    let store = match store_of(&state) {
        Ok(store) => store,
        Err(e) => return e.into_response(),
    };
    match store.check_token(&secret).await {
        Ok(Some(_)) => next.run(request).await,
        Ok(None) => unauthorized(
            "auth.invalid",
            "the token is not valid (revoked, or mistyped)",
        ),
        Err(e) => failed(e).into_response(),
    }
}

/// `GET /api/calls`.
pub(super) async fn calls(
    State(state): State<WebState>,
    Query(filter): Query<CallFilter>,
) -> Result<Response, ApiError> {
    let store = store_of(&state)?;
    let page = store.calls(&filter).await.map_err(failed)?;
    Ok(Json(page).into_response())
}

/// `GET /api/calls/{id}`.
pub(super) async fn call(
    State(state): State<WebState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = store_of(&state)?;
    match store.call(&id).await.map_err(failed)? {
        Some(call) => Ok(Json(call).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "call.not_found",
            format!("no stored call {id}"),
        )),
    }
}

/// `GET /api/calls/{id}/recording`: the call's stereo WAV (caller left, bot right).
pub(super) async fn recording(
    State(state): State<WebState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = store_of(&state)?;
    recording_response(&store, &id).await
}

/// A stored call's recording as a WAV response, streamed from its folder (the API's and the
/// dashboard's player's).
pub(crate) async fn recording_response(store: &Store, id: &str) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "recording.not_found",
            format!("no recording kept for call {id}"),
        )
    };
    let dir = store
        .record_dir(id)
        .await
        .map_err(failed)?
        .ok_or_else(not_found)?;
    let path = std::path::Path::new(&dir).join("recording.wav");
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| not_found())?;
    let length = file.metadata().await.map(|m| m.len()).ok();
    let mut response = (
        [
            (header::CONTENT_TYPE, "audio/wav"),
            (header::CACHE_CONTROL, "private, no-store"),
        ],
        Body::from_stream(file_chunks(file)),
    )
        .into_response();
    if let Some(length) = length {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(response)
}

/// A file as a stream of 64 KiB chunks (never whole in memory); ends after an error.
fn file_chunks(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    futures::stream::unfold(Some(file), |file| async move {
        use tokio::io::AsyncReadExt;
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// `GET /api/analytics`.
pub(super) async fn analytics(
    State(state): State<WebState>,
    Query(filter): Query<CallFilter>,
) -> Result<Response, ApiError> {
    let store = store_of(&state)?;
    let figures = store.analytics(&filter).await.map_err(failed)?;
    Ok(Json(figures).into_response())
}
