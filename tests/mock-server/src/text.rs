//! The echo semantics shared by every provider, identical to bifrost's
//! in-process mock: the reply is `"echo: <text of the last user message>"`,
//! and tokens are whitespace-separated words (prompt = every message and
//! system text, completion = the reply).
//!
//! Message content arrives as a string or as a list of blocks; [`Text`]
//! accepts both without building a JSON tree: a string is borrowed from the
//! request body when it has no escapes, and the `text` of every block (OpenAI
//! parts, Anthropic blocks, Bedrock content blocks) is joined with a space.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// The text of a `content` or `system` value: a string, the `text` of each block
/// joined with a space, or empty for `null`.
#[derive(Debug, Default)]
pub(crate) struct Text<'a>(pub Cow<'a, str>);

/// One content block; only its `text` matters (images, tool calls … are skipped).
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of content blocks")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Text<'a>, E> {
                Ok(Text::default())
            }
            fn visit_none<E>(self) -> Result<Text<'a>, E> {
                Ok(Text::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text<'a>, A::Error> {
                let mut out: Option<Cow<'a, str>> = None;
                while let Some(block) = seq.next_element::<Block<'a>>()? {
                    let Some(t) = block.text else { continue };
                    out = Some(match out {
                        None => t,
                        Some(prev) => {
                            let mut s = prev.into_owned();
                            s.push(' ');
                            s.push_str(&t);
                            Cow::Owned(s)
                        }
                    });
                }
                Ok(Text(out.unwrap_or_default()))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl Text<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whitespace-separated word count: the mock's token measure.
pub(crate) fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// The reply to a request, after an optional `max_tokens` cut.
pub(crate) struct Reply {
    pub text: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// The reply was cut to `max_tokens` words.
    pub truncated: bool,
}

impl Reply {
    /// `"echo: <last_user>"`, cut to `max_tokens` words when it has more.
    pub(crate) fn new(last_user: &str, prompt_tokens: u64, max_tokens: Option<u64>) -> Reply {
        let text = format!("echo: {last_user}");
        let n = words(&text);
        match max_tokens {
            Some(max) if n > max => {
                let cut = text.split_whitespace().take(max as usize).collect::<Vec<_>>().join(" ");
                Reply { text: cut, prompt_tokens, completion_tokens: max, truncated: true }
            }
            _ => Reply { text, prompt_tokens, completion_tokens: n, truncated: false },
        }
    }
}

impl Reply {
    /// The reply after an assistant prefill `prefix`: the rest of the echo
    /// when it starts with `prefix` (a continuation), else the whole echo.
    pub(crate) fn continued(mut self, prefix: &str) -> Reply {
        if !prefix.is_empty() {
            if let Some(rest) = self.text.strip_prefix(prefix) {
                self.text = rest.to_string();
                self.completion_tokens = words(&self.text);
            }
        }
        self
    }
}

/// Splits `s` into at most `n` pieces of equal character count (the last may be shorter),
/// like the in-process mock's stream.
pub(crate) fn split_chunks(s: &str, n: u32) -> Vec<&str> {
    let chars = s.chars().count();
    let per = chars.div_ceil(n.max(1) as usize).max(1);
    let mut out = Vec::with_capacity(n as usize);
    let mut start = 0;
    let mut count = 0;
    for (i, _) in s.char_indices() {
        if count == per {
            out.push(&s[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// A deterministic unit vector derived from `text` (the in-process mock's algorithm,
/// so both mocks return the same embeddings).
pub(crate) fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let seed = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut v: Vec<f32> = (0..dims).map(|_| rng.f32() * 2.0 - 1.0).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// Standard base64 (with padding) of little-endian `f32`s, as OpenAI sends
/// embeddings for `encoding_format: "base64"`.
pub(crate) fn base64_f32(v: &[f32]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let b = [c[0], c.get(1).copied().unwrap_or(0), c.get(2).copied().unwrap_or(0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { ALPHABET[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { ALPHABET[n as usize & 63] as char } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_accepts_strings_blocks_and_null() {
        let t: Text = serde_json::from_str(r#""hi there""#).unwrap();
        assert!(matches!(t.0, Cow::Borrowed("hi there")));
        let t: Text = serde_json::from_str(r#""a\nb""#).unwrap();
        assert_eq!(t.as_str(), "a\nb");
        let t: Text =
            serde_json::from_str(r#"[{"type":"text","text":"a"},{"type":"image","source":{"x":1}},{"text":"b c"}]"#)
                .unwrap();
        assert_eq!(t.as_str(), "a b c");
        let t: Text = serde_json::from_str("null").unwrap();
        assert_eq!(t.as_str(), "");
        assert!(serde_json::from_str::<Text>("3").is_err());
    }

    #[test]
    fn reply_and_cut() {
        let r = Reply::new("one two three", 3, None);
        assert_eq!((r.text.as_str(), r.completion_tokens, r.truncated), ("echo: one two three", 4, false));
        let r = Reply::new("one two three", 3, Some(2));
        assert_eq!((r.text.as_str(), r.completion_tokens, r.truncated), ("echo: one", 2, true));
        let r = Reply::new("one", 1, Some(2));
        assert!(!r.truncated);
    }

    #[test]
    fn chunks_cover_the_text() {
        assert_eq!(split_chunks("echo: hello", 4), vec!["ech", "o: ", "hel", "lo"]);
        assert_eq!(split_chunks("ab", 4), vec!["a", "b"]);
        assert_eq!(split_chunks("héllo wörld", 3).concat(), "héllo wörld");
        assert!(split_chunks("", 3).is_empty());
    }

    #[test]
    fn embeddings_are_unit_and_deterministic() {
        let a = embedding("hello", 16);
        assert_eq!(a, embedding("hello", 16));
        assert_ne!(a, embedding("world", 16));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }
}
