//! A provider's `limits` section (docs/architecture.md §10) and what one
//! request claims from it.
//!
//! [`LimitsConfig`] is the section as written; [`Limits::from_config`]
//! validates it (every number has a range, the message names the key and
//! never quotes a value) and turns each limit into a [`Rate`]. A request
//! then claims (`gate.rs`) one request and its estimated tokens
//! ([`estimate_tokens`]) from the provider's requests and tokens buckets,
//! and from its model's when the model has limits of its own.
//!
//! Token estimate: about 4 bytes of text per token (`ceil(bytes / 4)` over
//! every message's text, name and tool-call JSON), plus the request's
//! `max_completion_tokens` or `max_tokens`, else the section's
//! `default_completion_tokens`. A request that states `estimated_tokens`
//! (the caller ran a tokenizer) reserves exactly that instead. It is only
//! the reservation: the provider's reported usage replaces it after the
//! response.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::check_range;
use crate::error::{Error, Result};
use crate::types::{Content, Request};

use super::Rate;

const SECOND: u64 = 1_000_000_000;
const MINUTE: u64 = 60 * SECOND;
const DAY: u64 = 24 * 60 * MINUTE;

/// Largest request limit and largest token limit or burst accepted.
const MAX_REQUESTS: u64 = 1_000_000_000;
const MAX_TOKENS: u64 = 1_000_000_000_000;
/// Largest completion a request may reserve (larger `max_tokens` count as this).
const MAX_COMPLETION: u64 = 10_000_000;
/// Largest `estimated_tokens` a request may state.
pub(crate) const MAX_ESTIMATED_TOKENS: u64 = 100_000_000;

/// Whose buckets a request draws from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitScope {
    /// One set of buckets for the provider, whichever key serves.
    #[default]
    Provider,
    /// Every key its own buckets (a key with capacity is preferred).
    Key,
}

/// Bucket capacities, when not one period's worth.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BurstConfig {
    /// Requests a full bucket holds (1..=1000000000).
    pub requests: Option<u64>,
    /// Tokens a full bucket holds (1..=1000000000000).
    pub tokens: Option<u64>,
}

/// Request and token rates: at most one period per resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Requests per second / minute / day (1..=1000000000; one of the three).
    pub requests_per_second: Option<u64>,
    pub requests_per_minute: Option<u64>,
    pub requests_per_day: Option<u64>,
    /// Tokens per second / minute / day (1..=1000000000000; one of the three).
    pub tokens_per_second: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
    /// Capacities; default one period's worth.
    pub burst: Option<BurstConfig>,
}

/// A provider's `limits` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Requests per second / minute / day (1..=1000000000; one of the three).
    pub requests_per_second: Option<u64>,
    pub requests_per_minute: Option<u64>,
    pub requests_per_day: Option<u64>,
    /// Tokens per second / minute / day (1..=1000000000000; one of the three).
    pub tokens_per_second: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    pub tokens_per_day: Option<u64>,
    /// Capacities; default one period's worth.
    pub burst: Option<BurstConfig>,
    /// Requests at the upstream at once (1..=100000); a stream counts until
    /// it ends.
    pub max_in_flight: Option<u64>,
    /// `provider` (default): one set of buckets; `key`: one set per key
    /// (1..=64 keys), and a job takes a key with capacity.
    #[serde(default)]
    pub scope: LimitScope,
    /// Limits of single models (by the name a request uses), on top of
    /// the provider's.
    #[serde(default)]
    pub models: BTreeMap<String, RateConfig>,
    /// Lower the buckets to what the provider's rate-limit headers and a
    /// 429's `Retry-After` say (default false).
    pub learn_from_headers: Option<bool>,
    /// Completion tokens reserved for a request without `max_tokens`
    /// (1..=10000000, default 256).
    pub default_completion_tokens: Option<u64>,
}

impl LimitsConfig {
    /// The provider-wide rates of the section.
    fn provider_rates(&self) -> RateConfig {
        RateConfig {
            requests_per_second: self.requests_per_second,
            requests_per_minute: self.requests_per_minute,
            requests_per_day: self.requests_per_day,
            tokens_per_second: self.tokens_per_second,
            tokens_per_minute: self.tokens_per_minute,
            tokens_per_day: self.tokens_per_day,
            burst: self.burst,
        }
    }
}

/// One resource's buckets: requests and tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Rates {
    pub requests: Option<Rate>,
    pub tokens: Option<Rate>,
}

/// A validated `limits` section.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limits {
    pub provider: Rates,
    /// Model name (lower case) → its own buckets.
    pub models: BTreeMap<String, Rates>,
    pub scope: LimitScope,
    pub max_in_flight: Option<u64>,
    pub learn_from_headers: bool,
    pub default_completion_tokens: u64,
}

impl Limits {
    /// Checks that the Redis store can hold every bucket exactly
    /// (`redis.rs`: `burst × period` must fit its arithmetic in some unit).
    pub fn check_redis(&self, path: &str) -> Result<()> {
        let named = std::iter::once((path.to_string(), &self.provider))
            .chain(self.models.iter().map(|(m, r)| (format!("{path}.models.{m}"), r)));
        for (at, rates) in named {
            for (what, rate) in [("requests", rates.requests), ("tokens", rates.tokens)] {
                if rate.is_some_and(|r| super::redis::Shape::of(r).is_none()) {
                    return Err(Error::config(
                        at,
                        format!(
                            "the {what} limit is too large for the Redis store to keep exactly (burst × period \
                             must stay below 2^51 seconds·units); lower its burst or use a shorter period"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks the section against the provider's `keys`: `scope: "key"`
    /// needs 1..=64 of them (each gets its own buckets).
    pub fn check_keys(&self, keys: usize, path: &str) -> Result<()> {
        if self.scope == LimitScope::Key && !(1..=super::gate::MAX_SCOPED_KEYS).contains(&keys) {
            return Err(Error::config(
                format!("{path}.scope"),
                format!(
                    "\"key\" gives each of the provider's keys its own buckets: it needs 1..={} keys, the \
                     provider has {keys}",
                    super::gate::MAX_SCOPED_KEYS
                ),
            ));
        }
        Ok(())
    }

    /// Validates `cfg` (at `path`, e.g. `providers.openai.limits`).
    pub fn from_config(cfg: &LimitsConfig, path: &str) -> Result<Limits> {
        let provider = rates(&cfg.provider_rates(), path)?;
        if cfg.models.len() > 1000 {
            return Err(Error::config(format!("{path}.models"), "at most 1000 models"));
        }
        let mut models = BTreeMap::new();
        for (name, m) in &cfg.models {
            if name.is_empty() || name.len() > 256 {
                return Err(Error::config(format!("{path}.models"), "a model name must be 1..=256 bytes"));
            }
            let r = rates(m, &format!("{path}.models.{name}"))?;
            if r == Rates::default() {
                return Err(Error::config(format!("{path}.models.{name}"), "sets no limit"));
            }
            models.insert(name.to_lowercase(), r);
        }
        if let Some(n) = cfg.max_in_flight {
            check_range(&format!("{path}.max_in_flight"), n, 1, 100_000)?;
        }

        let default_completion_tokens = cfg.default_completion_tokens.unwrap_or(256);
        check_range(&format!("{path}.default_completion_tokens"), default_completion_tokens, 1, MAX_COMPLETION)?;
        if provider == Rates::default() && models.is_empty() && cfg.max_in_flight.is_none() {
            return Err(Error::config(
                path,
                "sets no limit (set requests_per_minute, tokens_per_minute, max_in_flight or models)",
            ));
        }
        Ok(Limits {
            provider,
            models,
            scope: cfg.scope,
            max_in_flight: cfg.max_in_flight,
            learn_from_headers: cfg.learn_from_headers.unwrap_or(false),
            default_completion_tokens,
        })
    }
}

/// One resource's rate: the single period given, or none; `burst` or one
/// period's worth.
fn one_rate(
    path: &str,
    what: &str,
    given: [(Option<u64>, u64, &str); 3],
    max: u64,
    burst: Option<u64>,
) -> Result<Option<Rate>> {
    let set: Vec<_> = given.iter().filter(|(v, _, _)| v.is_some()).collect();
    if set.len() > 1 {
        return Err(Error::config(
            path,
            format!("give {what} in one period only ({})", set.iter().map(|g| g.2).collect::<Vec<_>>().join(", ")),
        ));
    }
    let Some(&&(Some(limit), period, key)) = set.first() else {
        if burst.is_some() {
            return Err(Error::config(format!("{path}.burst.{what}"), "has no rate to go with it"));
        }
        return Ok(None);
    };
    check_range(&format!("{path}.{key}"), limit, 1, max)?;
    let burst = burst.unwrap_or(limit);
    check_range(&format!("{path}.burst.{what}"), burst, 1, max)?;
    Ok(Some(Rate::new(limit, period, burst)))
}

fn rates(r: &RateConfig, path: &str) -> Result<Rates> {
    let burst = r.burst.unwrap_or_default();
    Ok(Rates {
        requests: one_rate(
            path,
            "requests",
            [
                (r.requests_per_second, SECOND, "requests_per_second"),
                (r.requests_per_minute, MINUTE, "requests_per_minute"),
                (r.requests_per_day, DAY, "requests_per_day"),
            ],
            MAX_REQUESTS,
            burst.requests,
        )?,
        tokens: one_rate(
            path,
            "tokens",
            [
                (r.tokens_per_second, SECOND, "tokens_per_second"),
                (r.tokens_per_minute, MINUTE, "tokens_per_minute"),
                (r.tokens_per_day, DAY, "tokens_per_day"),
            ],
            MAX_TOKENS,
            burst.tokens,
        )?,
    })
}

/// The tokens `request` reserves (see the module docs).
pub(crate) fn estimate_tokens(request: &Request, default_completion: u64) -> u64 {
    if let Some(n) = request.estimated_tokens {
        return n.min(MAX_ESTIMATED_TOKENS);
    }
    let mut bytes: u64 = 0;
    for m in &request.messages {
        bytes = bytes.saturating_add(match &m.content {
            Content::Text(t) => t.len() as u64,
            Content::Parts(parts) => parts.iter().map(part_bytes).fold(0u64, u64::saturating_add),
            _ => 0,
        });
        bytes = bytes.saturating_add(m.name.as_ref().map_or(0, |n| n.len() as u64));
        if let Some(calls) = &m.tool_calls {
            bytes = bytes.saturating_add(calls.to_string().len() as u64);
        }
    }
    let completion = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| request.params.get(*k).and_then(serde_json::Value::as_u64))
        .unwrap_or(default_completion)
        .min(MAX_COMPLETION);
    bytes.div_ceil(4).saturating_add(completion)
}

/// A content part's bytes: its `text` if it has one, else its JSON.
fn part_bytes(part: &serde_json::Value) -> u64 {
    match part.get("text").and_then(serde_json::Value::as_str) {
        Some(t) => t.len() as u64,
        None => part.to_string().len() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits(v: serde_json::Value) -> Result<Limits> {
        let cfg: LimitsConfig = serde_json::from_value(v).map_err(|e| Error::config("limits", e.to_string()))?;
        Limits::from_config(&cfg, "providers.p.limits")
    }

    #[test]
    fn rates_burst_and_defaults() {
        let l = limits(json!({"requests_per_minute": 500, "tokens_per_minute": 200000, "burst": {"tokens": 50000}}))
            .unwrap();
        assert_eq!(l.provider.requests, Some(Rate::new(500, MINUTE, 500)));
        assert_eq!(l.provider.tokens, Some(Rate::new(200_000, MINUTE, 50_000)));
        assert_eq!((l.scope, l.learn_from_headers, l.default_completion_tokens), (LimitScope::Provider, false, 256));
        assert!(limits(json!({"requests_per_day": 1, "learn_from_headers": true})).unwrap().learn_from_headers);
        let l = limits(json!({"requests_per_day": 10000, "learn_from_headers": false})).unwrap();
        assert_eq!(l.provider.requests, Some(Rate::new(10_000, DAY, 10_000)));
        assert_eq!(limits(json!({"max_in_flight": 5})).unwrap().max_in_flight, Some(5));
        let l = limits(json!({"requests_per_day": 1, "scope": "key"})).unwrap();
        assert!(l.check_keys(2, "p").is_ok());
        for n in [0, 65] {
            let e = l.check_keys(n, "providers.p.limits").unwrap_err();
            assert!(
                matches!(&e, Error::Config { path, message } if path == "providers.p.limits.scope" && message.contains("1..=64 keys")),
                "{e}"
            );
        }
    }

    #[test]
    fn bad_sections_are_config_errors_naming_the_key() {
        for (v, path, says) in [
            (json!({"requests_per_minute": 0}), "providers.p.limits.requests_per_minute", "1..=1000000000"),
            (json!({"requests_per_minute": 5, "requests_per_second": 1}), "providers.p.limits", "one period"),
            (json!({"burst": {"requests": 5}}), "providers.p.limits.burst.requests", "no rate"),
            (json!({}), "providers.p.limits", "sets no limit"),
            (json!({"max_in_flight": 0}), "providers.p.limits.max_in_flight", "1..=100000"),
            (
                json!({"tokens_per_minute": 10, "default_completion_tokens": 0}),
                "providers.p.limits.default_completion_tokens",
                "1..=",
            ),
            (json!({"models": {"gpt-4o": {}}}), "providers.p.limits.models.gpt-4o", "sets no limit"),
            (
                json!({"models": {"m": {"tokens_per_second": 2000000000000u64}}}),
                "providers.p.limits.models.m.tokens_per_second",
                "1..=",
            ),
        ] {
            let e = limits(v.clone()).unwrap_err();
            match &e {
                Error::Config { path: p, message } => {
                    assert_eq!(p, path, "{v}: {e}");
                    assert!(message.contains(says), "{v}: {e}");
                }
                other => panic!("{v}: {other}"),
            }
        }
        assert!(limits(json!({"requests_per_minute": 5, "bogus": 1})).is_err(), "unknown keys are refused");
    }

    #[test]
    fn the_estimate_is_bytes_over_four_plus_the_completion() {
        let mut r = Request::new("p/m", "12345678"); // 8 bytes: 2 tokens
        assert_eq!(estimate_tokens(&r, 256), 2 + 256);
        r.params.insert("max_tokens".into(), json!(10));
        assert_eq!(estimate_tokens(&r, 256), 12);
        r.params.insert("max_completion_tokens".into(), json!(u64::MAX));
        assert_eq!(estimate_tokens(&r, 256), 2 + MAX_COMPLETION, "absurd values are capped");
        r.messages.push(crate::types::Message {
            role: "user".into(),
            content: Content::Parts(vec![json!({"type": "text", "text": "abc"}), json!({"type": "image_url"})]),
            ..Default::default()
        });
        let image_json = json!({"type": "image_url"}).to_string().len() as u64;
        assert_eq!(estimate_tokens(&r, 256), (8 + 3 + image_json).div_ceil(4) + MAX_COMPLETION);
        r.estimated_tokens = Some(77);
        assert_eq!(estimate_tokens(&r, 256), 77, "the caller's own count wins");
        assert!(r.validate().is_ok());
        r.estimated_tokens = Some(0);
        assert!(r.validate().unwrap_err().to_string().contains("estimated_tokens must be 1..=100000000"));
    }
}
