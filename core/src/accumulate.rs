//! Turns a stream's chunks into the final `chat.completion` object, the
//! one accumulator behind every binding's helper (Python
//! `bifrost.Accumulator` / `Stream.collect()`, Node `Accumulator` /
//! `stream.collect()`, C `bifrost_stream_collect`).
//!
//! Per choice it joins `content`, `reasoning_content` and `refusal`
//! pieces, merges `tool_calls` deltas by their `index` (id, type and
//! function name as first given, `arguments` concatenated), and keeps the
//! last `finish_reason`; the last `usage` and the stream's `id`, `model`,
//! `created` and other top-level fields (`system_fingerprint`, …) carry
//! over. A **restart marker** (docs/failover.md "Stream recovery") drops
//! everything accumulated so far: the answer after it starts over, so the
//! result never holds two answers' text. `extra_fields.restarts` counts them.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::types::{Chunk, Usage};

/// One choice being accumulated.
#[derive(Default)]
struct Choice {
    role: Option<String>,
    content: Option<String>,
    reasoning: Option<String>,
    refusal: Option<String>,
    /// `index` → the merged call.
    tool_calls: BTreeMap<u64, Map<String, Value>>,
    finish_reason: Option<String>,
}

/// Accumulates chunks (see the module docs).
#[derive(Default)]
pub struct StreamAccumulator {
    id: String,
    model: String,
    created: u64,
    other: Map<String, Value>,
    choices: BTreeMap<u32, Choice>,
    usage: Option<Usage>,
    restarts: u32,
}

fn append(slot: &mut Option<String>, piece: &str) {
    slot.get_or_insert_with(String::new).push_str(piece);
}

impl StreamAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one chunk; a restart marker starts the answer over.
    pub fn push(&mut self, chunk: &Chunk) {
        if chunk.extra_fields.as_ref().is_some_and(|x| x.restart.is_some()) {
            let restarts = self.restarts + 1;
            *self = StreamAccumulator { restarts, ..Default::default() };
            return;
        }
        if self.id.is_empty() {
            self.id.clone_from(&chunk.id);
        }
        if !chunk.model.is_empty() {
            self.model.clone_from(&chunk.model);
        }
        if chunk.created != 0 {
            self.created = chunk.created;
        }
        for (k, v) in &chunk.other {
            self.other.insert(k.clone(), v.clone());
        }
        if let Some(u) = &chunk.usage {
            self.usage = Some(u.clone());
        }
        for c in &chunk.choices {
            let acc = self.choices.entry(c.index).or_default();
            let d = &c.delta;
            if let Some(role) = &d.role {
                acc.role = Some(role.to_string());
            }
            if let Some(t) = &d.content {
                append(&mut acc.content, t);
            }
            if let Some(t) = &d.reasoning_content {
                append(&mut acc.reasoning, t);
            }
            if let Some(t) = d.other.get("refusal").and_then(Value::as_str) {
                append(&mut acc.refusal, t);
            }
            if let Some(Value::Array(calls)) = &d.tool_calls {
                for (pos, call) in calls.iter().enumerate() {
                    let Value::Object(call) = call else { continue };
                    let index = call.get("index").and_then(Value::as_u64).unwrap_or(pos as u64);
                    merge_tool_call(acc.tool_calls.entry(index).or_default(), call);
                }
            }
            if let Some(f) = &c.finish_reason {
                acc.finish_reason = Some(f.to_string());
            }
        }
    }

    /// Adds a chunk given as JSON (what a binding holds); `Err` when it is
    /// not a `chat.completion.chunk`.
    pub fn push_value(&mut self, chunk: Value) -> Result<(), serde_json::Error> {
        let chunk: Chunk = serde_json::from_value(chunk)?;
        self.push(&chunk);
        Ok(())
    }

    /// Restart markers seen so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The content text of choice 0 so far.
    pub fn text(&self) -> &str {
        self.choices.get(&0).and_then(|c| c.content.as_deref()).unwrap_or("")
    }

    /// The `chat.completion` object of what was accumulated.
    pub fn message(&self) -> Value {
        let choices: Vec<Value> = self
            .choices
            .iter()
            .map(|(index, c)| {
                let mut m = Map::new();
                m.insert("role".into(), c.role.as_deref().unwrap_or("assistant").into());
                m.insert("content".into(), c.content.clone().map_or(Value::Null, Value::String));
                if let Some(r) = &c.reasoning {
                    m.insert("reasoning_content".into(), r.clone().into());
                }
                if let Some(r) = &c.refusal {
                    m.insert("refusal".into(), r.clone().into());
                }
                if !c.tool_calls.is_empty() {
                    let calls = c.tool_calls.values().map(|call| Value::Object(call.clone())).collect();
                    m.insert("tool_calls".into(), Value::Array(calls));
                }
                json!({"index": index, "message": m, "finish_reason": c.finish_reason})
            })
            .collect();
        let mut out = Map::new();
        out.insert("id".into(), self.id.clone().into());
        out.insert("object".into(), "chat.completion".into());
        out.insert("created".into(), self.created.into());
        out.insert("model".into(), self.model.clone().into());
        out.insert("choices".into(), Value::Array(choices));
        if let Some(u) = &self.usage {
            out.insert("usage".into(), serde_json::to_value(u).unwrap_or(Value::Null));
        }
        for (k, v) in &self.other {
            out.entry(k.clone()).or_insert_with(|| v.clone());
        }
        out.insert("extra_fields".into(), json!({"restarts": self.restarts}));
        Value::Object(out)
    }
}

/// Merges one `tool_calls` delta into its call: `id`, `type` and
/// `function.name` as first given, `function.arguments` concatenated.
fn merge_tool_call(into: &mut Map<String, Value>, delta: &Map<String, Value>) {
    for (k, v) in delta {
        match (k.as_str(), v) {
            ("index", _) => {
                into.entry("index").or_insert_with(|| v.clone());
            }
            ("function", Value::Object(f)) => {
                let Value::Object(into_f) = into.entry("function").or_insert_with(|| json!({})) else { continue };
                for (fk, fv) in f {
                    match (fk.as_str(), fv, into_f.get_mut(fk)) {
                        ("arguments", Value::String(piece), Some(Value::String(acc))) => acc.push_str(piece),
                        (_, _, Some(existing)) if !existing.is_null() => {}
                        _ => {
                            into_f.insert(fk.clone(), fv.clone());
                        }
                    }
                }
            }
            (_, Value::Null) => {}
            _ => {
                into.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(v: Value) -> Chunk {
        serde_json::from_value(v).expect("chunk")
    }

    #[test]
    fn joins_text_merges_tool_calls_and_restarts_on_a_marker() {
        let mut acc = StreamAccumulator::new();
        acc.push(&chunk(json!({"id": "a", "model": "m1", "created": 1, "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]})));
        acc.push(&chunk(json!({"id": "a", "choices": [{"index": 0, "delta": {"content": "lo, wor"}}]})));
        assert_eq!(acc.text(), "Hello, wor");
        // The stream failed; a new answer starts after the marker.
        acc.push(&chunk(json!({"id": "", "object": "chat.completion.chunk", "choices": [],
            "extra_fields": {"restart": {"attempt": 2, "provider": "b", "model": "m2", "reason": "cut"}}})));
        assert_eq!((acc.text(), acc.restarts()), ("", 1));
        acc.push(&chunk(json!({"id": "b", "model": "m2", "created": 2, "system_fingerprint": "fp", "choices": [
            {"index": 0, "delta": {"role": "assistant", "content": "Hi", "tool_calls": [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\""}}]}}]})));
        acc.push(&chunk(json!({"id": "b", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": ": 1}"}}]}, "finish_reason": "tool_calls"}]})));
        acc.push(&chunk(json!({"id": "b", "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})));
        let m = acc.message();
        assert_eq!(m["id"], "b");
        assert_eq!(m["model"], "m2");
        assert_eq!(m["system_fingerprint"], "fp");
        assert_eq!(m["choices"][0]["message"]["content"], "Hi", "nothing of the first answer");
        assert_eq!(
            m["choices"][0]["message"]["tool_calls"],
            json!([{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\": 1}"}}])
        );
        assert_eq!(m["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(m["usage"]["total_tokens"], 7);
        assert_eq!(m["extra_fields"]["restarts"], 1);
    }

    #[test]
    fn a_value_that_is_not_a_chunk_is_an_error() {
        let mut acc = StreamAccumulator::new();
        assert!(acc.push_value(json!({"choices": "nope"})).is_err());
        assert!(acc.push_value(json!({"choices": []})).is_ok());
    }
}
