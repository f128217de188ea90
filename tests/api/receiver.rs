//! Real webhook receivers on 127.0.0.1: they record every request and answer as a test plans
//! (succeed, fail N times, 410, 429 with Retry-After, hang past the timeout).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// What the receiver answers to request number `n` (0-based).
#[derive(Clone, Debug)]
pub enum Reply {
    Ok,
    Status(u16),
    RetryAfter(u16, String),
    Hang(Duration),
    /// 200 with this body.
    Body(String),
}

type Plan = Arc<dyn Fn(usize, &Received) -> Reply + Send + Sync>;

#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn event_ref(&self) -> String {
        self.header("webhook-id")
    }
}

struct Shared {
    received: Mutex<Vec<Received>>,
    plan: Mutex<Plan>,
    changed: tokio::sync::Notify,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

async fn handle(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let req = Received { headers, body, at: Instant::now() };
    let (n, plan) = {
        let mut r = shared.received.lock().unwrap();
        r.push(req.clone());
        (r.len() - 1, shared.plan.lock().unwrap().clone())
    };
    shared.changed.notify_waiters();
    match plan(n, &req) {
        Reply::Ok => (StatusCode::OK, "ok").into_response(),
        Reply::Status(s) => (StatusCode::from_u16(s).unwrap(), format!("status {s}")).into_response(),
        Reply::RetryAfter(s, after) => {
            (StatusCode::from_u16(s).unwrap(), [("retry-after", after)], "slow down").into_response()
        }
        Reply::Body(text) => (StatusCode::OK, text).into_response(),
        Reply::Hang(d) => {
            tokio::time::sleep(d).await;
            (StatusCode::OK, "late").into_response()
        }
    }
}

impl Receiver {
    pub async fn start() -> Self {
        Self::with_plan(|_, _| Reply::Ok).await
    }

    pub async fn with_plan(plan: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static) -> Self {
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            plan: Mutex::new(Arc::new(plan)),
            changed: Default::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared }
    }

    pub fn set_plan(&self, plan: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static) {
        *self.shared.plan.lock().unwrap() = Arc::new(plan);
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until `pred` holds over the requests received so far (panics after `timeout`).
    pub async fn wait_until(&self, timeout: Duration, what: &str, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            let got = self.received();
            if pred(&got) {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}; got {} requests", got.len());
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), notified).await;
        }
    }

    /// Waits for at least `n` requests.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_until(timeout, &format!("{n} requests"), |r| r.len() >= n).await
    }
}
