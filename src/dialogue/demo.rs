//! The demo business systems that hotline serves itself (under `/demo` on the HTTP server), so
//! that the demo flows' webhooks have a real peer: an order system, a CRM and a ticket desk.
//!
//! - `GET /orders/{id}`: a six-digit order id with a Luhn check digit; its status is derived
//!   from the id (so every valid id has one); 404 for an id that fails the check.
//! - `GET /slow/orders/{id}`: the same after five seconds, to show the slow-system fallback.
//! - `GET /down/orders/{id}`: always 503, to show the system-down fallback.
//! - `GET /accounts/{number}`: a CRM record (name, balance, due date) for a caller's number.
//! - `POST /tickets`: opens a ticket from a JSON body and returns its id.
//!
//! Everything is deterministic except ticket ids, which count up per server.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::slots::luhn_valid;

/// The delay of the slow order system.
pub const SLOW_ORDERS_DELAY: Duration = Duration::from_secs(5);

fn order(id: &str) -> (StatusCode, Json<Value>) {
    if id.len() != 6 || !id.chars().all(|c| c.is_ascii_digit()) || !luhn_valid(id) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such order", "id": id })),
        );
    }
    let seed: u32 = id.bytes().map(|b| u32::from(b - b'0')).sum();
    let (status, status_zh, eta, eta_zh) = match seed % 3 {
        0 => ("delivered", "已签收", "already delivered", "已送达"),
        1 => ("shipped", "已发货", "arriving on Thursday", "预计周四送达"),
        _ => (
            "being prepared",
            "备货中",
            "shipping within two days",
            "两天内发货",
        ),
    };
    let carrier = ["Parcel Express", "顺丰速运"][(seed % 2) as usize];
    (
        StatusCode::OK,
        Json(json!({
            "id": id,
            "status": status,
            "eta": eta,
            "zh": { "status": status_zh, "eta": eta_zh },
            "carrier": carrier,
        })),
    )
}

async fn get_order(Path(id): Path<String>) -> (StatusCode, Json<Value>) {
    order(&id)
}

async fn get_slow_order(Path(id): Path<String>) -> (StatusCode, Json<Value>) {
    tokio::time::sleep(SLOW_ORDERS_DELAY).await;
    order(&id)
}

async fn get_down_order(Path(_id): Path<String>) -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": "order system is down" })),
    )
}

async fn get_account(Path(number): Path<String>) -> (StatusCode, Json<Value>) {
    let digits: String = number.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no such account" })),
        );
    }
    let cents: u32 = digits
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .fold(0, |a, d| (a * 7 + d) % 9_000)
        + 1_000;
    (
        StatusCode::OK,
        Json(json!({
            "number": digits,
            "name": "Alex",
            "balance": format!("{}.{:02}", cents / 100, cents % 100),
            "due": "the 28th",
        })),
    )
}

async fn post_ticket(
    State(next_id): State<Arc<AtomicU32>>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !body.is_object() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "expected a JSON object" })),
        );
    }
    let id = next_id.fetch_add(1, Ordering::Relaxed);
    (
        StatusCode::CREATED,
        Json(json!({ "ticket_id": format!("T{id}"), "received": body })),
    )
}

/// The demo systems' routes (mount under `/demo`).
pub fn demo_router() -> Router {
    Router::new()
        .route("/orders/{id}", get(get_order))
        .route("/slow/orders/{id}", get(get_slow_order))
        .route("/down/orders/{id}", get(get_down_order))
        .route("/accounts/{number}", get(get_account))
        .route("/tickets", post(post_ticket))
        .with_state(Arc::new(AtomicU32::new(1001)))
}
