//! Polls the registry services' `endpoints.health` URLs (off by default: `[health] poll_secs`),
//! each with a time limit, all at once every interval, on the app's tokio runtime. The Health
//! view reads the latest answer per service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use candybar_core::health::{Probe, Probes};
use candybar_core::time::now_us;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;

#[derive(Clone)]
pub struct HealthPoller {
    results: Arc<Mutex<FxHashMap<String, Probe>>>,
    targets: tokio::sync::watch::Sender<Vec<(String, String)>>,
}

impl HealthPoller {
    /// Starts polling `targets` every `interval` on `rt`; `waker` asks the window for a frame
    /// after each round. The task ends when the poller is dropped.
    pub fn start(
        rt: &tokio::runtime::Handle,
        targets: Vec<(String, String)>,
        interval: Duration,
        timeout: Duration,
        waker: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let results: Arc<Mutex<FxHashMap<String, Probe>>> = Arc::default();
        let (tx, mut rx) = tokio::sync::watch::channel(targets);
        let out = results.clone();
        rt.spawn(async move {
            let http = match reqwest::Client::builder().timeout(timeout).build() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("health polling is off: no HTTP client ({e})");
                    return;
                }
            };
            loop {
                let now_targets = rx.borrow_and_update().clone();
                let probes = futures_util::future::join_all(
                    now_targets
                        .iter()
                        .map(|(key, url)| probe(&http, key.clone(), url.clone(), timeout)),
                )
                .await;
                {
                    let mut r = out.lock();
                    r.retain(|k, _| now_targets.iter().any(|(t, _)| t == k));
                    r.extend(probes);
                }
                waker();
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    changed = rx.changed() => if changed.is_err() { return },
                }
            }
        });
        Self {
            results,
            targets: tx,
        }
    }

    /// Polls these from now on (after a registry reload).
    pub fn set_targets(&self, targets: Vec<(String, String)>) {
        self.targets.send_if_modified(|t| {
            let changed = *t != targets;
            *t = targets;
            changed
        });
    }

    #[must_use]
    pub fn results(&self) -> Probes {
        Probes(self.results.lock().clone())
    }
}

async fn probe(
    http: &reqwest::Client,
    key: String,
    url: String,
    timeout: Duration,
) -> (String, Probe) {
    let start = Instant::now();
    let answer = http.get(&url).send().await;
    let latency_ms = start.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
    let (status, error) = match answer {
        Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
        Ok(r) => (
            Some(r.status().as_u16()),
            Some(format!("answered {}", r.status())),
        ),
        Err(e) if e.is_timeout() => (
            None,
            Some(format!("no answer within {:.1} s", timeout.as_secs_f64())),
        ),
        Err(e) if e.is_connect() => (None, Some("connection refused".into())),
        Err(e) if e.is_builder() => (None, Some("not a valid URL".into())),
        Err(e) => (None, Some(e.without_url().to_string())),
    };
    (
        key,
        Probe {
            status,
            error,
            latency_ms,
            at_us: now_us(),
        },
    )
}
