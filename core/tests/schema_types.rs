//! One schema, generated types: the Python TypedDicts
//! (`python/bifrost/_types.pyi`) and the TypeScript interfaces
//! (`bindings-node/types.d.ts`) of the config, request, response and stats
//! shapes are generated from the serde types themselves (their JSON Schema,
//! by schemars), so no binding can describe a shape the core does not read
//! or write. Inputs (config, requests) use the deserialize contract (a field
//! with a default is optional); outputs (responses, stats, health, reports)
//! the serialize contract (every field is there). `ErrorCode` comes from
//! `ErrorKind::ALL`.
//!
//! This test fails when a checked-in file differs from what the types say;
//! `BIFROST_BLESS=1 cargo test -p bifrost-core --test schema_types` rewrites
//! both (as the C header's test does for `include/bifrost.h`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use bifrost_core::gateway::{Health, ShutdownReport};
use bifrost_core::types::{Chunk, EmbedRequest, EmbedResponse, Request, Response};
use bifrost_core::{Config, ErrorKind, Sizing, Stats};
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::Value;

/// Every definition reachable from the roots, by name.
type Defs = BTreeMap<String, Value>;

fn collect(settings: SchemaSettings, roots: &[fn(&mut schemars::SchemaGenerator) -> schemars::Schema]) -> Defs {
    let mut generator = settings.into_generator();
    for root in roots {
        root(&mut generator);
    }
    generator.definitions().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn root<T: JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

/// Input and output definitions, merged (a name in both must agree).
fn definitions() -> Defs {
    let input = collect(
        SchemaSettings::draft2020_12().for_deserialize(),
        &[root::<Config>, root::<Request>, root::<EmbedRequest>],
    );
    let output = collect(
        SchemaSettings::draft2020_12().for_serialize(),
        &[
            root::<Response>,
            root::<Chunk>,
            root::<EmbedResponse>,
            root::<Stats>,
            root::<Health>,
            root::<ShutdownReport>,
            root::<Sizing>,
        ],
    );
    let mut defs = input;
    for (name, schema) in output {
        if let Some(existing) = defs.get(&name) {
            assert_eq!(existing, &schema, "{name} is both an input and an output, with two shapes: rename one");
            continue;
        }
        defs.insert(name, schema);
    }
    name_inline_objects(defs)
}

/// An inline object alternative of a union (`Secret`'s object form, say)
/// becomes a definition of its own, `<Name>Object`, so both languages can
/// spell its fields (a Python TypedDict cannot be written inline).
fn name_inline_objects(defs: Defs) -> Defs {
    let mut out = Defs::new();
    for (name, mut schema) in defs {
        for key in ["anyOf", "oneOf"] {
            let Some(Value::Array(alts)) = schema.get_mut(key) else { continue };
            let objects = alts.iter().filter(|a| a.get("properties").is_some()).count();
            let mut n = 0;
            for alt in alts.iter_mut() {
                if alt.get("properties").is_none() {
                    continue;
                }
                n += 1;
                let synthetic = if objects == 1 { format!("{name}Object") } else { format!("{name}Object{n}") };
                let object = std::mem::replace(alt, serde_json::json!({ "$ref": format!("#/$defs/{synthetic}") }));
                out.insert(synthetic, object);
            }
        }
        out.insert(name, schema);
    }
    out
}

fn ref_name(s: &Value) -> Option<&str> {
    s.get("$ref")?.as_str()?.strip_prefix("#/$defs/")
}

/// The JSON types a schema allows, as listed in its `type`.
fn types_of(s: &Value) -> Vec<&str> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The two target languages' spellings.
trait Lang {
    fn any(&self) -> &'static str;
    fn scalar(&self, json_type: &str) -> &'static str;
    fn literal(&self, v: &Value) -> String;
    fn array(&self, item: String) -> String;
    fn map(&self, value: String) -> String;
    fn union(&self, parts: Vec<String>) -> String;
}

struct Ts;
struct Py;

impl Lang for Ts {
    fn any(&self) -> &'static str {
        "unknown"
    }
    fn scalar(&self, t: &str) -> &'static str {
        match t {
            "string" => "string",
            "integer" | "number" => "number",
            "boolean" => "boolean",
            "null" => "null",
            _ => "unknown",
        }
    }
    fn literal(&self, v: &Value) -> String {
        match v {
            Value::String(s) => format!("'{s}'"),
            other => other.to_string(),
        }
    }
    fn array(&self, item: String) -> String {
        if item.contains(' ') {
            format!("Array<{item}>")
        } else {
            format!("{item}[]")
        }
    }
    fn map(&self, value: String) -> String {
        format!("Record<string, {value}>")
    }
    fn union(&self, parts: Vec<String>) -> String {
        parts.join(" | ")
    }
}

impl Lang for Py {
    fn any(&self) -> &'static str {
        "Any"
    }
    fn scalar(&self, t: &str) -> &'static str {
        match t {
            "string" => "str",
            "integer" => "int",
            "number" => "float",
            "boolean" => "bool",
            "null" => "None",
            _ => "Any",
        }
    }
    fn literal(&self, v: &Value) -> String {
        format!("Literal[{v}]")
    }
    fn array(&self, item: String) -> String {
        format!("List[{item}]")
    }
    fn map(&self, value: String) -> String {
        format!("Dict[str, {value}]")
    }
    fn union(&self, parts: Vec<String>) -> String {
        format!("Union[{}]", parts.join(", "))
    }
}

/// A schema as a type expression of `lang`.
fn type_expr(lang: &dyn Lang, s: &Value) -> String {
    if s == &Value::Bool(true) || s.as_object().is_some_and(|o| o.is_empty()) {
        return lang.any().into();
    }
    if let Some(name) = ref_name(s) {
        return name.to_string();
    }
    if let Some(c) = s.get("const") {
        return lang.literal(c);
    }
    if let Some(Value::Array(vs)) = s.get("enum") {
        let lits: Vec<String> = vs.iter().map(|v| lang.literal(v)).collect();
        return if lits.len() == 1 { lits.into_iter().next().unwrap_or_default() } else { lang.union(lits) };
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = s.get(key) {
            let mut parts: Vec<String> = Vec::new();
            for a in alts {
                let t = type_expr(lang, a);
                if !parts.contains(&t) {
                    parts.push(t);
                }
            }
            return if parts.len() == 1 { parts.remove(0) } else { lang.union(parts) };
        }
    }
    let mut parts: Vec<String> = Vec::new();
    for t in types_of(s) {
        let expr = match t {
            "array" => lang.array(s.get("items").map_or_else(|| lang.any().to_string(), |i| type_expr(lang, i))),
            "object" => match s.get("additionalProperties") {
                Some(v @ Value::Object(_)) => lang.map(type_expr(lang, v)),
                _ => lang.map(lang.any().into()),
            },
            other => lang.scalar(other).to_string(),
        };
        if !parts.contains(&expr) {
            parts.push(expr);
        }
    }
    match parts.len() {
        0 => lang.any().into(),
        1 => parts.remove(0),
        _ => lang.union(parts),
    }
}

/// `(name, schema, required)` of an object schema's properties, in order.
fn properties(s: &Value) -> Vec<(&str, &Value, bool)> {
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    s.get("properties")
        .and_then(Value::as_object)
        .map(|p| p.iter().map(|(k, v)| (k.as_str(), v, required.contains(&k.as_str()))).collect())
        .unwrap_or_default()
}

fn description(s: &Value) -> Option<String> {
    let d = s.get("description")?.as_str()?.trim();
    (!d.is_empty()).then(|| d.to_string())
}

const HEADER: &str = "Generated from the serde types of bifrost-core by core/tests/schema_types.rs\n\
                      (BIFROST_BLESS=1 cargo test -p bifrost-core --test schema_types); do not edit.";

fn typescript(defs: &Defs) -> String {
    let mut out = String::new();
    for line in HEADER.lines() {
        let _ = writeln!(out, "// {}", line.trim());
    }
    for (name, s) in defs {
        out.push('\n');
        if let Some(d) = description(s) {
            let _ = writeln!(out, "/** {} */", d.replace('\n', "\n * ").replace("*/", "*\\/"));
        }
        let props = properties(s);
        if props.is_empty() {
            let _ = writeln!(out, "export type {name} = {}", type_expr(&Ts, s));
            continue;
        }
        let _ = writeln!(out, "export interface {name} {{");
        for (key, ps, required) in props {
            if let Some(d) = description(ps) {
                let _ = writeln!(out, "  /** {} */", d.replace('\n', " ").replace("*/", "*\\/"));
            }
            let key = if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                key.to_string()
            } else {
                format!("'{key}'")
            };
            let _ = writeln!(out, "  {key}{}: {}", if required { "" } else { "?" }, type_expr(&Ts, ps));
        }
        out.push_str("}\n");
    }
    out.push_str("\n/** The error kinds, as `BifrostError#code` values. */\nexport type ErrorCode =\n");
    for (i, k) in ErrorKind::ALL.iter().enumerate() {
        let _ = writeln!(out, "  {} '{}'", if i == 0 { " " } else { "|" }, k.as_str());
    }
    out
}

fn python_identifier(key: &str) -> bool {
    const KEYWORDS: &[&str] = &["from", "class", "def", "import", "global", "in", "is", "not", "or", "and", "lambda"];
    key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&key)
}

fn python(defs: &Defs) -> String {
    let mut out = String::from("\"\"\"");
    out.push_str(HEADER);
    out.push_str("\"\"\"\n\nfrom __future__ import annotations\n\n");
    out.push_str("from typing import Any, Dict, List, Literal, TypedDict, Union\n\n");
    out.push_str("from typing_extensions import NotRequired\n");
    for (name, s) in defs {
        out.push_str("\n\n");
        let props = properties(s);
        if props.is_empty() {
            let _ = writeln!(out, "{name} = {}", type_expr(&Py, s));
            if let Some(d) = description(s) {
                let _ = writeln!(out, "\"\"\"{}\"\"\"", d.replace("\"\"\"", "'''"));
            }
            continue;
        }
        let field = |ps: &Value, required: bool| {
            let t = type_expr(&Py, ps);
            if required {
                t
            } else {
                format!("NotRequired[{t}]")
            }
        };
        if props.iter().all(|(k, _, _)| python_identifier(k)) {
            let _ = writeln!(out, "class {name}(TypedDict):");
            if let Some(d) = description(s) {
                let _ = writeln!(out, "    \"\"\"{}\"\"\"\n", d.replace("\"\"\"", "'''").replace('\n', "\n    "));
            }
            for (key, ps, required) in props {
                if let Some(d) = description(ps) {
                    let _ = writeln!(out, "    # {}", d.replace('\n', "\n    # "));
                }
                let _ = writeln!(out, "    {key}: {}", field(ps, required));
            }
        } else {
            // A key that is no Python identifier (`$schema`): the functional form.
            let _ = writeln!(out, "{name} = TypedDict(\"{name}\", {{");
            for (key, ps, required) in props {
                let _ = writeln!(out, "    \"{key}\": {},", field(ps, required));
            }
            out.push_str("})\n");
            if let Some(d) = description(s) {
                let _ = writeln!(out, "\"\"\"{}\"\"\"", d.replace("\"\"\"", "'''"));
            }
        }
    }
    out.push_str("\n\nErrorCode = Literal[\n");
    for k in ErrorKind::ALL {
        let _ = writeln!(out, "    \"{}\",", k.as_str());
    }
    out.push_str("]\n\"\"\"The error kinds, as `BifrostError.kind` values.\"\"\"\n");
    out
}

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn check_or_bless(rel: &str, generated: &str) {
    let path = repo_file(rel);
    if std::env::var_os("BIFROST_BLESS").is_some() {
        std::fs::write(&path, generated).unwrap_or_else(|e| panic!("write {rel}: {e}"));
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{rel} is out of date with the serde types: rerun with BIFROST_BLESS=1 \
         (cargo test -p bifrost-core --test schema_types) and commit it"
    );
}

#[test]
fn generated_types_match_the_serde_types() {
    let defs = definitions();
    for must in ["Config", "ProviderConfig", "KeyConfig", "ChatRequest", "ChatResponse", "Chunk", "Stats", "JobStats"] {
        assert!(defs.contains_key(must), "{must} missing from {:?}", defs.keys().collect::<Vec<_>>());
    }
    check_or_bless("bindings-node/types.d.ts", &typescript(&defs));
    check_or_bless("python/bifrost/_types.pyi", &python(&defs));
}

/// The generated shapes name what the core reads: a config and a request
/// using many keys parse in the core, and each of their keys (at every
/// depth) is a property of the generated type.
#[test]
fn the_schema_names_every_key_the_core_reads() {
    let defs = definitions();
    let config = serde_json::json!({
        "version": 2,
        "providers": {"a": {"kind": "mock", "keys": [{"value": "sk-test", "models": ["*"], "weight": 1, "aliases": {"m": {"model_id": "x"}}}],
            "network_config": {"retry_backoff_initial": "2s", "max_retries": 1},
            "concurrency_and_buffer_size": {"concurrency": 2, "buffer_size": 8},
            "queue": {"policy": "drop_oldest", "wait_timeout_ms": 10}}}
    });
    bifrost_core::Config::from_value(config.clone()).expect("the core reads it");
    assert_keys_known(&defs, "Config", &config);
    let request = serde_json::json!({
        "model": "a/m", "messages": [{"role": "user", "content": "hi", "name": "n"}],
        "params": {"temperature": 0.2}, "fallbacks": ["a/x"], "timeout_ms": 5, "mock": {"latency_ms": 1}
    });
    bifrost_core::Request::from_json(&request.to_string()).expect("the core reads it");
    assert_keys_known(&defs, "ChatRequest", &request);
}

/// The check above can fail: a key the schema lacks is reported.
#[test]
#[should_panic(expected = "missing from the schema")]
fn an_unknown_key_is_caught() {
    let defs = definitions();
    let config = serde_json::json!({"providers": {"a": {"kind": "mock", "keys": [{"valu": "x"}]}}});
    assert_keys_known(&defs, "Config", &config);
}

/// Checks that every key of `value` is a property of schema `name`
/// (following `$ref`s, arrays and maps of them).
fn assert_keys_known(defs: &Defs, name: &str, value: &Value) {
    let schema = &defs[name];
    let Value::Object(map) = value else { return };
    let props = properties(schema);
    for (k, v) in map {
        let Some((_, ps, _)) = props.iter().find(|(p, _, _)| p == k) else {
            panic!("{name}.{k} is read by the core but missing from the schema")
        };
        check_value(defs, ps, v);
    }
}

fn check_value(defs: &Defs, schema: &Value, v: &Value) {
    if let Some(r) = ref_name(schema) {
        if properties(&defs[r]).is_empty() {
            return;
        }
        return assert_keys_known(defs, r, v);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = schema.get(key) {
            // The object alternative, if the value is an object.
            if v.is_object() {
                if let Some(obj) = alts.iter().find(|a| ref_name(a).is_some_and(|r| !properties(&defs[r]).is_empty())) {
                    check_value(defs, obj, v);
                }
            }
            return;
        }
    }
    match v {
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                items.iter().for_each(|i| check_value(defs, item, i));
            }
        }
        Value::Object(entries) => {
            if let Some(add @ Value::Object(_)) = schema.get("additionalProperties") {
                entries.values().for_each(|e| check_value(defs, add, e));
            }
        }
        _ => {}
    }
}
