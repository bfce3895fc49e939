//! Redaction of a provider's own secrets from text it sends back.
//!
//! An upstream error body may echo the credential it was sent (a proxy that
//! quotes the request, a provider that prints the key it rejected). Every
//! error a provider call produces passes through its pool's [`Redactor`]
//! before anyone sees it, so a key value never reaches an error message, an
//! error `body`, `health().last_error` or a log — in any language.
//!
//! The redactor knows every secret of the provider's config: key values,
//! Bedrock credentials, `extra_headers` values and proxy credentials. Each
//! occurrence becomes `***`. Secrets shorter than [`MIN_SECRET_LEN`] bytes
//! are not searched for (they would match ordinary words; no real
//! credential is that short). Redaction runs on error paths only.

use crate::config::{ProviderConfig, Secret};
use crate::error::Error;

/// Shorter values are not redacted (see the module doc).
pub const MIN_SECRET_LEN: usize = 6;

/// What a secret becomes.
const MASK: &str = "***";

/// The secrets of one provider, longest first (so a secret that contains
/// another is masked whole).
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} secrets)", self.secrets.len())
    }
}

impl Redactor {
    /// Collects every secret of a provider's (resolved) config.
    pub fn for_provider(cfg: &ProviderConfig) -> Redactor {
        let mut all: Vec<&Secret> = Vec::new();
        for k in &cfg.keys {
            all.push(&k.value);
            if let Some(b) = &k.bedrock_key_config {
                all.extend([&b.access_key, &b.secret_key, &b.session_token].into_iter().flatten());
            }
        }
        all.extend(cfg.network_config.extra_headers.values());
        if let Some(p) = &cfg.proxy_config {
            all.extend([&p.url, &p.username, &p.password].into_iter().flatten());
        }
        Redactor::new(all.into_iter().map(Secret::expose))
    }

    /// A redactor for these values.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut secrets: Vec<String> =
            values.into_iter().filter(|v| v.len() >= MIN_SECRET_LEN).map(str::to_string).collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every secret replaced by `***`.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }

    fn field(&self, s: &mut String) {
        if self.secrets.iter().any(|x| s.contains(x.as_str())) {
            *s = self.text(s);
        }
    }

    /// The error with every secret masked in its free text (messages and
    /// the provider's body).
    pub fn error(&self, mut e: Error) -> Error {
        if self.secrets.is_empty() {
            return e;
        }
        match &mut e {
            Error::Provider { message, body, .. } => {
                self.field(message);
                self.field(body);
            }
            Error::Network { message, .. }
            | Error::Protocol { message, .. }
            | Error::Internal { message }
            | Error::InvalidRequest { message } => self.field(message),
            Error::WithFallbacks { primary, fallbacks } => {
                **primary = self.error(std::mem::replace(&mut **primary, Error::Shutdown { provider: None }));
                for (_, fe) in fallbacks.iter_mut() {
                    *fe = self.error(std::mem::replace(fe, Error::Shutdown { provider: None }));
                }
            }
            _ => {}
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence_longest_first_and_ignores_short_values() {
        let r = Redactor::new(["sk-abc123", "sk-abc123-long", "abc"]);
        assert_eq!(r.text("key sk-abc123-long and sk-abc123; abc"), "key *** and ***; abc");
        let e = r.error(Error::Provider {
            provider: "p".into(),
            status: 401,
            message: "bad key sk-abc123".into(),
            body: "{\"key\": \"sk-abc123\"}".into(),
            retry_after_ms: None,
        });
        assert!(!format!("{e} {:?}", e.body()).contains("sk-abc"), "{e}");
        let nested = r.error(Error::WithFallbacks {
            primary: Box::new(Error::Network { provider: "p".into(), message: "sk-abc123".into() }),
            fallbacks: vec![("q/m".into(), Error::Protocol { provider: "q".into(), message: "x sk-abc123".into() })],
        });
        assert!(!nested.to_string().contains("sk-abc"), "{nested}");
    }
}
