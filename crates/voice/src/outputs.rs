//! Where a final transcript goes after the history: a webhook (n8n style POST) and the event bus.
//! Both are queued in the history's outbox in the same transaction as the transcript and
//! delivered from there, so a webhook or broker that is down only delays them.

use std::time::{Duration, Instant};

use candybar_bus::publish::Publisher;
use candybar_core::asr::audio::SAMPLE_RATE_HZ;
use candybar_core::asr::protocol::{
    VoiceTranscript, audio_transcription_event, transcript_event, voice_completed_event,
};
use candybar_core::redact::{Secret, SecretUrl, mask_url};
use candybar_core::time::{Micros, format_rfc3339, now_us};
use candybar_core::voice::Output;

use crate::history::{History, HistoryError, NewTranscript, OutboxItem, PlannedDelivery};

/// Give up one attempt after this long; the outbox tries again later.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq)]
pub struct Webhook {
    pub url: String,
    /// Sent as `Authorization: Bearer`. Never stored in the outbox, logged or shown.
    pub token: Option<Secret>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Bus {
    /// The broker's URL (with its password; only ever shown masked).
    pub url: SecretUrl,
    pub exchange: String,
    pub routing_key: String,
}

/// The retried outputs a transcript is sent to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outputs {
    pub webhook: Option<Webhook>,
    pub bus: Option<Bus>,
}

impl Outputs {
    /// The deliveries to queue with a transcript: exact payloads, targets without secrets.
    #[must_use]
    pub fn plan(&self, t: &NewTranscript) -> Vec<PlannedDelivery> {
        let mut out = Vec::new();
        if t.text.trim().is_empty() {
            return out;
        }
        if let Some(w) = &self.webhook {
            let body = serde_json::json!({
                "text": t.text,
                "timestamp": format_rfc3339(t.created_us),
                "source": "candybar",
            });
            out.push(PlannedDelivery {
                output: Output::Webhook,
                target: mask_url(&w.url),
                payload: body.to_string().into_bytes(),
            });
        }
        if let Some(b) = &self.bus {
            let msg = transcript_event(
                &candybar_bus::host_name(),
                &b.routing_key,
                &t.text,
                t.duration_ms,
                &t.model,
                t.created_us,
            );
            out.push(PlannedDelivery {
                output: Output::Bus,
                target: format!("{}/{}", b.exchange, b.routing_key),
                payload: msg.body,
            });
            // The same words in the platform's canonical shape.
            let session_id = format!("dictation-{:x}", t.created_us);
            // The microphone (or a file sent as if spoken) is dictation; what plays says what
            // it was (`system`, `app:…`).
            let source = if matches!(t.source.as_str(), "" | "mic" | "file") {
                "dictation"
            } else {
                t.source.as_str()
            };
            let voice = VoiceTranscript {
                text: &t.text,
                duration_ms: t.duration_ms,
                sample_rate: SAMPLE_RATE_HZ,
                model: &t.model,
                language: t.language.as_deref().unwrap_or("en"),
                source,
                session_id: &session_id,
            };
            let host = candybar_bus::host_name();
            let canonical = voice_completed_event(&host, &voice, t.created_us);
            out.push(PlannedDelivery {
                output: Output::Bus,
                target: format!("{}/{}", b.exchange, canonical.routing_key),
                payload: canonical.body,
            });
            // A long recording (what plays, a call) also as the platform's transcript with
            // its segments.
            if source != "dictation" {
                let long = audio_transcription_event(
                    &host,
                    &session_id,
                    &voice,
                    &t.segments,
                    t.created_us,
                );
                out.push(PlannedDelivery {
                    output: Output::Bus,
                    target: format!("{}/{}", b.exchange, long.routing_key),
                    payload: long.body,
                });
            }
        }
        out
    }
}

/// What a pass over the outbox did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    pub delivered: u64,
    pub failed_attempts: u64,
    /// Still waiting after the pass.
    pub pending: u64,
}

/// Delivers outbox items. Keeps its HTTP client and broker connection between items.
pub struct Deliverer {
    outputs: Outputs,
    http: reqwest::Client,
    publisher: Option<Publisher>,
}

impl Deliverer {
    #[must_use]
    pub fn new(outputs: Outputs) -> Self {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("candybar/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            outputs,
            http,
            publisher: None,
        }
    }

    /// One attempt at one item; the error is in words for the history and the screen.
    pub async fn deliver(&mut self, item: &OutboxItem) -> Result<(), String> {
        match item.output {
            Output::Webhook => self.post(item).await,
            Output::Bus => self.publish(item).await,
            Output::Clipboard | Output::Typed => Ok(()), // never queued
        }
    }

    async fn post(&self, item: &OutboxItem) -> Result<(), String> {
        // The target was stored masked; deliver to the configured URL when it is the same one.
        let configured = self
            .outputs
            .webhook
            .as_ref()
            .filter(|w| mask_url(&w.url) == item.target);
        let url = configured.map_or(item.target.as_str(), |w| w.url.as_str());
        let mut req = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(item.payload.clone());
        if let Some(token) = configured.and_then(|w| w.token.as_ref().map(Secret::expose)) {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.map_err(|e| {
            // reqwest's messages carry the URL; ours is already masked.
            let kind = if e.is_timeout() {
                "no answer in time".to_owned()
            } else if e.is_connect() {
                "cannot connect".to_owned()
            } else {
                e.without_url().to_string()
            };
            format!("webhook {}: {kind}", item.target)
        })?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("webhook {} answered HTTP {status}", item.target))
        }
    }

    async fn publish(&mut self, item: &OutboxItem) -> Result<(), String> {
        let Some(bus) = &self.outputs.bus else {
            return Err(
                "no broker configured for bus deliveries: set --amqp or CANDYBAR_AMQP_URL".into(),
            );
        };
        let (exchange, routing_key) = item
            .target
            .split_once('/')
            .unwrap_or((bus.exchange.as_str(), item.target.as_str()));
        let publisher = match &mut self.publisher {
            Some(p) if p.exchange() == exchange => p,
            slot => slot.insert(Publisher::new(bus.url.expose(), exchange)),
        };
        let msg = candybar_core::event::RawMessage {
            received_us: now_us(),
            routing_key: routing_key.to_owned(),
            props: None,
            body: item.payload.clone(),
            precut: None,
        };
        match tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            publisher.publish_window(std::slice::from_ref(&msg)),
        )
        .await
        {
            Err(_) => Err(format!("broker {}: no confirm in time", bus.url.masked())),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(_)) => Err(format!(
                "broker {} refused the event (nack)",
                bus.url.masked()
            )),
        }
    }

    /// Tries every item due now once; failures wait with a growing delay.
    pub async fn run_due(&mut self, history: &History) -> Result<DeliveryReport, HistoryError> {
        let mut report = DeliveryReport::default();
        for item in history.due(now_us(), 100)? {
            match self.deliver(&item).await {
                Ok(()) => {
                    history.delivered(item.id, now_us())?;
                    report.delivered += 1;
                }
                Err(e) => {
                    tracing::info!("{} delivery {} failed: {e}", item.output.as_str(), item.id);
                    history.failed(&item, &e, now_us())?;
                    report.failed_attempts += 1;
                }
            }
        }
        report.pending = history.pending_count()?;
        Ok(report)
    }

    /// Delivers until the outbox is empty or `wait` has passed, retrying with backoff.
    pub async fn drain(
        &mut self,
        history: &History,
        wait: Duration,
    ) -> Result<DeliveryReport, HistoryError> {
        let deadline = Instant::now() + wait;
        let mut total = DeliveryReport::default();
        loop {
            let r = self.run_due(history).await?;
            total.delivered += r.delivered;
            total.failed_attempts += r.failed_attempts;
            total.pending = r.pending;
            if r.pending == 0 || Instant::now() >= deadline {
                return Ok(total);
            }
            let next: Micros = history.next_due_us()?.unwrap_or_else(now_us);
            let until_next = Duration::from_micros((next - now_us()).max(0) as u64);
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(until_next.min(left).max(Duration::from_millis(10))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_payloads_carry_no_secrets() {
        let outputs = Outputs {
            webhook: Some(Webhook {
                url: "https://n8n.example/webhook/abc?token=s3cret".into(),
                token: Some(Secret::new("t0ken")),
            }),
            bus: Some(Bus {
                url: "amqp://u:hunter2@h/".into(),
                exchange: "bloodbank.events.v1".into(),
                routing_key: "talkytonny.transcription.completed".into(),
            }),
        };
        let t = NewTranscript {
            created_us: 1_700_000_000_000_000,
            duration_ms: 2500,
            text: "Ship it.".into(),
            model: "ggml-tiny.en.bin".into(),
            ..NewTranscript::default()
        };
        let plan = outputs.plan(&t);
        assert_eq!(plan.len(), 3);
        let hook: serde_json::Value = serde_json::from_slice(&plan[0].payload).unwrap();
        assert_eq!(hook["text"], "Ship it.");
        assert_eq!(hook["source"], "candybar");
        assert!(
            hook["timestamp"]
                .as_str()
                .unwrap()
                .starts_with("2023-11-14T")
        );
        let bus: serde_json::Value = serde_json::from_slice(&plan[1].payload).unwrap();
        assert_eq!(bus["event_type"], "talkytonny.transcription.completed");
        assert_eq!(bus["payload"]["duration_seconds"], 2.5);
        assert_eq!(
            plan[1].target,
            "bloodbank.events.v1/talkytonny.transcription.completed"
        );
        let canonical: serde_json::Value = serde_json::from_slice(&plan[2].payload).unwrap();
        assert_eq!(
            plan[2].target,
            "bloodbank.events.v1/transcription.voice.completed"
        );
        assert_eq!(canonical["payload"]["text"], "Ship it.");
        assert_eq!(canonical["payload"]["source"], "dictation");
        assert_eq!(
            canonical["payload"]["audio_metadata"]["duration_seconds"],
            2.5
        );
        for p in &plan {
            let all = format!("{}{}", p.target, String::from_utf8_lossy(&p.payload));
            for secret in ["s3cret", "t0ken", "hunter2"] {
                assert!(!all.contains(secret), "{all}");
            }
        }
        // Nothing said, nothing sent.
        // What plays, recorded at length: also `audio.transcription.completed` with segments.
        let long = NewTranscript {
            source: "system".into(),
            segments: vec![candybar_core::voice::TimedText {
                start_ms: 0,
                end_ms: 2_500,
                text: "Ship it.".into(),
            }],
            ..t.clone()
        };
        let plan = outputs.plan(&long);
        assert_eq!(plan.len(), 4);
        let canonical: serde_json::Value = serde_json::from_slice(&plan[2].payload).unwrap();
        assert_eq!(canonical["payload"]["source"], "system");
        let segments: serde_json::Value = serde_json::from_slice(&plan[3].payload).unwrap();
        assert_eq!(segments["event_type"], "audio.transcription.completed");
        assert_eq!(segments["payload"]["segments"][0]["end"], 2.5);
        let empty = NewTranscript {
            text: "  ".into(),
            ..t
        };
        assert!(outputs.plan(&empty).is_empty());
    }
}
