//! The gateway's `limits_store` section (docs/architecture.md §10): where
//! every provider's `limits` buckets live. `memory` (the default) keeps
//! them in this process; `redis` keeps them in a Redis server that every
//! process of the fleet points at, so they share the limits exactly.
//!
//! The URL is a credential (it may carry a password): it is a
//! [`Secret`], may be `env.NAME`, and no error or stats field ever quotes
//! it. Every other number has a range; messages name the key.

use serde::Deserialize;

use crate::config::{check_range, Secret};
use crate::error::{Error, Result};

/// What a process does while the store does not answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnUnavailable {
    /// Enforce each limit ÷ `fleet_size` in this process (default).
    #[default]
    LocalShare,
    /// Admit without limits.
    FailOpen,
    /// Refuse: RATE_LIMITED.
    FailClosed,
}

/// Which store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// This process only (default).
    #[default]
    Memory,
    /// A Redis server (≥ 7) shared by the fleet.
    Redis,
}

/// The `limits_store` section.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsStoreConfig {
    /// `memory` (default) or `redis`.
    #[serde(default)]
    pub kind: StoreKind,
    /// `redis://[:password@]host:port/db` (or `env.NAME`); required for
    /// `redis`.
    #[schemars(with = "Option<String>")]
    pub url: Option<Secret>,
    /// `url` is one node of a Redis Cluster (default false); the others
    /// are found from it.
    pub cluster: Option<bool>,
    /// Put before every key (default `bifrost:`; at most 64 bytes, no `{`
    /// or `}`, which would change the hash tag).
    pub prefix: Option<String>,
    /// Longest one store call may take, in ms (1..=10000, default 50).
    pub timeout_ms: Option<u64>,
    /// `local_share` (default), `fail_open` or `fail_closed`.
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
    /// Processes sharing the limits (1..=100000); required with
    /// `local_share`, which enforces limit ÷ `fleet_size` per process.
    pub fleet_size: Option<u64>,
    /// How long a `max_in_flight` lease outlives a process that stopped
    /// renewing it (killed), in ms (1000..=600000, default 10000).
    pub lease_ttl_ms: Option<u64>,
}

/// The section, validated.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoreSettings {
    pub url: Secret,
    pub cluster: bool,
    pub prefix: String,
    pub timeout_ms: u64,
    pub on_unavailable: OnUnavailable,
    /// 1 unless `local_share`.
    pub fleet_size: u64,
    pub lease_ttl_ms: u64,
}

const DEFAULT_TIMEOUT_MS: u64 = 50;
const MAX_PREFIX_BYTES: usize = 64;

impl LimitsStoreConfig {
    /// The Redis settings, or `None` for the memory store; a CONFIG error
    /// naming the key otherwise.
    pub(crate) fn settings(&self) -> Result<Option<StoreSettings>> {
        const P: &str = "limits_store";
        if self.kind == StoreKind::Memory {
            for (set, key) in [
                (self.url.is_some(), "url"),
                (self.prefix.is_some(), "prefix"),
                (self.timeout_ms.is_some(), "timeout_ms"),
                (self.fleet_size.is_some(), "fleet_size"),
                (self.lease_ttl_ms.is_some(), "lease_ttl_ms"),
                (self.cluster.is_some(), "cluster"),
            ] {
                if set {
                    return Err(Error::config(format!("{P}.{key}"), "applies to kind \"redis\" only"));
                }
            }
            return Ok(None);
        }
        let url = self.url.clone().ok_or_else(|| Error::config(format!("{P}.url"), "required for kind \"redis\""))?;
        let text = url.expose();
        // Read only after `env.NAME` is resolved; never quoted.
        if !(text.starts_with("env.") || text.starts_with("redis://") || text.starts_with("rediss://")) {
            return Err(Error::config(format!("{P}.url"), "must be a redis:// URL"));
        }
        if text.starts_with("rediss://") {
            return Err(Error::config(format!("{P}.url"), "TLS (rediss://) is not supported yet"));
        }
        let prefix = self.prefix.clone().unwrap_or_else(|| "bifrost:".to_string());
        if prefix.len() > MAX_PREFIX_BYTES || prefix.contains(['{', '}']) {
            return Err(Error::config(format!("{P}.prefix"), "at most 64 bytes, without '{' or '}'"));
        }
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        check_range(&format!("{P}.timeout_ms"), timeout_ms, 1, 10_000)?;
        let lease_ttl_ms = self.lease_ttl_ms.unwrap_or(10_000);
        check_range(&format!("{P}.lease_ttl_ms"), lease_ttl_ms, 1_000, 600_000)?;
        let fleet_size = match (self.on_unavailable, self.fleet_size) {
            (OnUnavailable::LocalShare, None) => {
                return Err(Error::config(
                    format!("{P}.fleet_size"),
                    "required with on_unavailable \"local_share\" (each process then enforces limit ÷ fleet_size)",
                ))
            }
            (_, Some(n)) => {
                check_range(&format!("{P}.fleet_size"), n, 1, 100_000)?;
                n
            }
            (_, None) => 1,
        };
        Ok(Some(StoreSettings {
            url,
            cluster: self.cluster.unwrap_or(false),
            prefix,
            timeout_ms,
            on_unavailable: self.on_unavailable,
            fleet_size,
            lease_ttl_ms,
        }))
    }

    /// Resolves an `env.NAME` URL (done with the providers' keys).
    pub(crate) fn resolve_env(&mut self) -> Result<()> {
        match &mut self.url {
            Some(url) => url.resolve("limits_store.url"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(v: serde_json::Value) -> Result<Option<StoreSettings>> {
        serde_json::from_value::<LimitsStoreConfig>(v).unwrap().settings()
    }

    #[test]
    fn redis_settings_have_defaults_ranges_and_never_quote_the_url() {
        let s = settings(json!({"kind": "redis", "url": "redis://:hunter2@127.0.0.1:6379/0", "fleet_size": 8}))
            .unwrap()
            .unwrap();
        assert_eq!((s.prefix.as_str(), s.timeout_ms, s.fleet_size), ("bifrost:", 50, 8));
        assert!(!format!("{s:?}").contains("hunter2"), "the URL is a secret");
        assert_eq!(settings(json!({})).unwrap(), None, "memory by default");
        for (v, path) in [
            (json!({"kind": "redis", "fleet_size": 2}), "limits_store.url"),
            (json!({"kind": "redis", "url": "redis://h"}), "limits_store.fleet_size"),
            (json!({"kind": "redis", "url": "http://:hunter2@h", "fleet_size": 2}), "limits_store.url"),
            (json!({"kind": "redis", "url": "redis://h", "fleet_size": 0}), "limits_store.fleet_size"),
            (json!({"kind": "redis", "url": "redis://h", "fleet_size": 2, "timeout_ms": 0}), "limits_store.timeout_ms"),
            (json!({"kind": "redis", "url": "redis://h", "fleet_size": 2, "prefix": "a{b"}), "limits_store.prefix"),
            (json!({"kind": "memory", "url": "redis://:hunter2@h"}), "limits_store.url"),
        ] {
            let e = settings(v.clone()).unwrap_err();
            assert!(e.to_string().contains(path), "{v}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let open = settings(json!({"kind": "redis", "url": "redis://h", "on_unavailable": "fail_open"})).unwrap();
        assert_eq!(open.map(|s| s.fleet_size), Some(1), "fleet_size matters to local_share only");
    }
}
