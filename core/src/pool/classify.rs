//! One classifier of failures (docs/failover.md has the table), for the
//! three rules that depend on what kind of failure a job met: whether to
//! try again on the same provider (a retry), whether to move on to the
//! next provider (a fallback), and whether the failure says the provider
//! itself is unwell (the circuit breaker).
//!
//! Every provider error is first put in one [`FailureClass`] of
//! docs/architecture.md §11, reading the provider's own codes and messages
//! (OpenAI `context_length_exceeded` / `content_policy_violation`, Anthropic
//! "prompt is too long", Bedrock `ValidationException` "Input is too
//! long", …). The rules then depend on the class, not on raw statuses.
//! Invariants: every retryable failure is also fallback-worthy; a full or
//! closed queue is fallback-worthy without being a retry or a health
//! signal; a content-policy refusal is neither retried nor resent
//! elsewhere, and a request too long for a model is never resent
//! unchanged to it.

use crate::error::{Error, TimeoutPhase};
use crate::failover::{FailoverAction, Policy};

/// What went wrong, as far as retrying and failing over are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureClass {
    /// 429, or a provider's throttling (Bedrock `ThrottlingException`).
    RateLimit,
    /// 5xx (Anthropic's 529 overloaded included) and 408.
    ServerError,
    /// No answer within the attempt limit.
    Timeout,
    /// No first content (a stream) or response head (unary) within
    /// `first_token_timeout_ms` / `headers_timeout_ms`.
    FirstTokenTimeout,
    /// The connection failed, was reset, or the body was cut mid-read.
    Network,
    /// A 200 that is not the protocol (not a completion, a bad event).
    Protocol,
    /// The request is too long for the model's context window.
    ContextLength,
    /// The provider refused the content (its safety or content filter).
    ContentPolicy,
    /// 401 / 403: the key was refused.
    Auth,
    /// Any other 4xx: the request itself is wrong for this provider.
    BadRequest,
}

/// What providers say when the prompt does not fit the model (matched in
/// the lower-cased message and body of a 400, 413 or 422).
const CONTEXT_LENGTH: &[&str] = &[
    "context_length_exceeded",              // OpenAI code
    "maximum context length",               // OpenAI and vLLM text
    "context window",                       // Anthropic, Mistral
    "model_context_window_exceeded",        // Anthropic stop reason as an error
    "prompt is too long",                   // Anthropic
    "input is too long",                    // Bedrock ValidationException
    "too many input tokens",                // Bedrock
    "exceeds the maximum number of tokens", // Bedrock (Titan, Llama)
    "reduce the length of the messages",    // OpenAI text
];

/// What providers say when they refuse the content itself.
const CONTENT_POLICY: &[&str] = &[
    "content_policy_violation",     // OpenAI code
    "content_filter",               // Azure OpenAI code
    "responsibleaipolicyviolation", // Azure OpenAI inner code
    "content management policy",    // Azure OpenAI text
    "content filtering policy",     // Anthropic text
    "safety system",                // OpenAI images / moderation text
    "guardrail",                    // Bedrock guardrails
];

fn mentions(e: &Error, needles: &[&str]) -> bool {
    let Error::Provider { message, body, .. } = e else { return false };
    let (message, body) = (message.to_ascii_lowercase(), body.to_ascii_lowercase());
    needles.iter().any(|n| message.contains(n) || body.contains(n))
}

/// The class of a failure at the provider; `None` for what happened
/// inside bifrost (a full queue, a cancel, a shutdown, an open breaker, an
/// invalid request, the request's own deadline).
pub(crate) fn class_of(e: &Error) -> Option<FailureClass> {
    Some(match e {
        Error::Provider { status, .. } => match status {
            429 => FailureClass::RateLimit,
            400 | 413 | 422 if mentions(e, CONTEXT_LENGTH) => FailureClass::ContextLength,
            400 | 403 | 422 if mentions(e, CONTENT_POLICY) => FailureClass::ContentPolicy,
            401 | 403 => FailureClass::Auth,
            408 | 500 | 502 | 503 | 504 | 529 => FailureClass::ServerError,
            // 501, 505, …: the server says it cannot do this at all.
            s if *s >= 500 => FailureClass::BadRequest,
            _ => FailureClass::BadRequest,
        },
        Error::Network { .. } => FailureClass::Network,
        Error::Protocol { .. } => FailureClass::Protocol,
        Error::Timeout { phase: TimeoutPhase::Processing | TimeoutPhase::Attempt, .. } => FailureClass::Timeout,
        Error::Timeout { phase: TimeoutPhase::FirstToken, .. } => FailureClass::FirstTokenTimeout,
        Error::WithFallbacks { primary, .. } => return class_of(primary),
        Error::Interrupted { error, .. } => return class_of(error),
        _ => return None,
    })
}

/// What `policy` says `class` does; the classes it does not name are fixed.
pub(crate) fn action(class: FailureClass, policy: &Policy) -> FailoverAction {
    match class {
        FailureClass::RateLimit => policy.rate_limit,
        FailureClass::ServerError => policy.server_error,
        FailureClass::Timeout => policy.timeout,
        FailureClass::FirstTokenTimeout => policy.first_token_timeout,
        FailureClass::Network => policy.network,
        FailureClass::ContextLength => policy.context_length,
        FailureClass::ContentPolicy => policy.content_policy,
        // The request was served; another provider may serve it better.
        FailureClass::Protocol => FailoverAction::Fallback,
        // Key rotation is the retry (pool::attempts); then elsewhere.
        FailureClass::Auth => FailoverAction::Fallback,
        FailureClass::BadRequest => FailoverAction::Return,
    }
}

/// Worth another attempt on the same provider (with backoff) under `policy`.
pub(crate) fn retryable(e: &Error, policy: &Policy) -> bool {
    class_of(e).is_some_and(|c| action(c, policy) == FailoverAction::Retry)
}

/// Worth trying the request's next fallback provider under `policy`: a
/// class whose action is `retry` (its retries are spent) or `fallback`,
/// and bifrost's own refusals (a full queue, an open breaker, …).
pub(crate) fn fallback_worthy(e: &Error, policy: &Policy) -> bool {
    match class_of(e) {
        Some(c) => action(c, policy) != FailoverAction::Return,
        None => matches!(
            e,
            Error::QueueFull { .. }
                | Error::Dropped { .. }
                | Error::QueueTimeout { .. }
                | Error::CircuitOpen { .. }
                | Error::Timeout { .. }
        ),
    }
}

/// Says the provider itself is unwell (counts against its breaker).
pub(crate) fn unhealthy(e: &Error) -> bool {
    match e {
        Error::Provider { status, .. } => *status >= 500 || matches!(status, 408 | 429),
        Error::Network { .. } | Error::Protocol { .. } | Error::Timeout { .. } | Error::Internal { .. } => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Policy = Policy::DEFAULT;

    fn provider(status: u16, body: &str) -> Error {
        let message = crate::providers::openai::error_message(body)
            .or_else(|| crate::providers::anthropic::error_message(body))
            .or_else(|| crate::providers::bedrock::error_message(body))
            .unwrap_or_default();
        Error::Provider { provider: "p".into(), status, message, body: body.into(), retry_after_ms: None }
    }

    #[test]
    fn every_retryable_failure_is_fallback_worthy() {
        for status in [400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 501, 502, 503, 504, 505, 529] {
            let e = provider(status, "{}");
            assert!(!retryable(&e, &D) || fallback_worthy(&e, &D), "{status}");
        }
        assert!(retryable(&provider(503, ""), &D) && unhealthy(&provider(503, "")));
        assert!(retryable(&provider(529, ""), &D), "Anthropic's overloaded is a server error");
        let auth = provider(401, "");
        assert!(!retryable(&auth, &D) && fallback_worthy(&auth, &D) && !unhealthy(&auth));
        let full = Error::QueueFull { provider: "p".into(), buffer_size: 1, policy: "error" };
        assert!(!retryable(&full, &D) && fallback_worthy(&full, &D) && !unhealthy(&full));
    }

    /// Error bodies as each provider documents them.
    #[test]
    fn each_providers_codes_and_messages_decide_the_class() {
        use FailureClass::*;
        let cases = [
            // OpenAI
            (
                400,
                r#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130532 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
                ContextLength,
            ),
            (
                400,
                r#"{"error":{"message":"Your request was rejected as a result of our safety system.","type":"invalid_request_error","param":null,"code":"content_policy_violation"}}"#,
                ContentPolicy,
            ),
            (
                400,
                r#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation"}}}"#,
                ContentPolicy,
            ),
            (
                400,
                r#"{"error":{"message":"Invalid value for 'temperature': must be <= 2.","type":"invalid_request_error","param":"temperature","code":"invalid_value"}}"#,
                BadRequest,
            ),
            (
                429,
                r#"{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
                RateLimit,
            ),
            (
                401,
                r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
                Auth,
            ),
            (
                500,
                r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error"}}"#,
                ServerError,
            ),
            // Anthropic
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 215000 tokens > 200000 maximum"}}"#,
                ContextLength,
            ),
            (
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"Output blocked by content filtering policy"}}"#,
                ContentPolicy,
            ),
            (529, r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#, ServerError),
            (
                413,
                r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#,
                BadRequest,
            ),
            (
                403,
                r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#,
                Auth,
            ),
            // Bedrock
            (400, r#"{"message":"Input is too long for requested model."}"#, ContextLength),
            (
                400,
                r#"{"message":"The model returned the following errors: prompt is too long: 210000 tokens > 200000 maximum"}"#,
                ContextLength,
            ),
            (429, r#"{"message":"Too many tokens, please wait before trying again."}"#, RateLimit),
            (400, r#"{"message":"The guardrail blocked the request."}"#, ContentPolicy),
            (
                400,
                r#"{"message":"Malformed input request: #: extraneous key [x] is not permitted, please reformat your input and try again."}"#,
                BadRequest,
            ),
            (503, r#"{"message":"Bedrock is unable to process your request."}"#, ServerError),
        ];
        for (status, body, class) in cases {
            assert_eq!(class_of(&provider(status, body)), Some(class), "{status} {body}");
        }
        let too_long = provider(400, cases[0].1);
        assert!(!retryable(&too_long, &D) && fallback_worthy(&too_long, &D), "too long here may fit elsewhere");
        let refused = provider(400, cases[1].1);
        assert!(!retryable(&refused, &D) && !fallback_worthy(&refused, &D), "a refusal comes back as it is");
        assert!(!fallback_worthy(&provider(400, cases[3].1), &D), "a bad request is bad everywhere");
        let timeout = Error::Timeout { provider: "p".into(), phase: TimeoutPhase::Attempt, timeout_ms: 1 };
        assert_eq!(class_of(&timeout), Some(Timeout));
        assert_eq!(class_of(&Error::Network { provider: "p".into(), message: String::new() }), Some(Network));
        assert_eq!(class_of(&Error::Cancelled { provider: "p".into() }), None);
    }
}
