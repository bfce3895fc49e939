//! Python values ⇄ core types, through serde (pythonize): no JSON text
//! round trip. Shape errors name the failing key path.
//!
//! Before a Python value is converted it is walked once ([`check_json`]):
//! pythonize recurses without a limit (a dict nested 16k deep, or one that
//! contains itself, overflowed the stack and killed the interpreter) and
//! turns `nan`/`inf` into JSON null, i.e. "not set". The walk refuses
//! those with a typed error instead (docs/architecture.md §13): nesting deeper than
//! `bounds::MAX_NESTING`, a reference cycle, a non-finite float. JSON text
//! goes through `bounds::parse_strict` (duplicate keys, trailing text and
//! depth refused). Messages never quote a string value (`bounds::scrub`).

use std::borrow::Cow;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyList, PyMapping, PySequence, PyString, PyTuple};
use serde::de::DeserializeOwned;
use serde::Serialize;

use bifrost_core::bounds::{self, Step, MAX_NESTING};
use bifrost_core::Error;

/// What the value is for: says which error kind a bad value is.
#[derive(Clone, Copy)]
pub enum Role {
    /// A request (INVALID_REQUEST).
    Request,
    /// A gateway config (CONFIG, with the key path).
    Config,
}

/// A Python object → a core type; a bad shape is INVALID_REQUEST naming the key.
pub fn from_py<T: DeserializeOwned>(obj: &Bound<'_, PyAny>, what: &str) -> Result<T, Error> {
    if let Ok(text) = obj.cast::<PyString>() {
        let text = text.to_cow().map_err(|e| Error::InvalidRequest { message: format!("{what}: {e}") })?;
        return bounds::parse_strict(&text).map_err(|e| shape_error(what, &e.path, &e.message));
    }
    check_json(obj, what, Role::Request)?;
    if let Ok(v) = pythonize::depythonize(obj) {
        return Ok(v);
    }
    // Only a failure pays for path tracking.
    let mut de = pythonize::Depythonizer::from_object(obj);
    serde_path_to_error::deserialize(&mut de)
        .map_err(|e| shape_error(what, &e.path().to_string(), &bounds::scrub(&e.inner().to_string())))
}

fn shape_error(what: &str, path: &str, inner: &str) -> Error {
    let inner = match inner.find(" at line ") {
        Some(i) => &inner[..i],
        None => inner,
    };
    let message =
        if path == "." || path.is_empty() { format!("{what}: {inner}") } else { format!("{what}.{path}: {inner}") };
    Error::InvalidRequest { message }
}

/// A core value → plain Python dicts, lists and scalars.
pub fn to_py<T: Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    Ok(pythonize::pythonize(py, value)?.unbind())
}

/// A Python object → a JSON value (gateway configs).
pub fn json_from_py(obj: &Bound<'_, PyAny>) -> Result<serde_json::Value, Error> {
    check_json(obj, "config", Role::Config)?;
    pythonize::depythonize(obj)
        .map_err(|e| Error::Config { path: String::new(), message: bounds::scrub(&e.to_string()) })
}

/// Refuses what JSON cannot carry as given: a non-finite float, a value
/// that contains itself, nesting deeper than `MAX_NESTING`. The error
/// names the key path, as the core spells it (`messages[0].content`).
pub fn check_json(obj: &Bound<'_, PyAny>, what: &str, role: Role) -> Result<(), Error> {
    let mut open = Vec::new();
    let Err((mut steps, problem)) = walk(obj, &mut open) else { return Ok(()) };
    // Collected on the way out of the failed walk: innermost first.
    steps.reverse();
    let path = bounds::path_of(&steps);
    Err(match role {
        Role::Request => shape_error(what, &path, &problem),
        Role::Config => Error::Config { path, message: problem },
    })
}

type Walk = Result<(), (Vec<Step<'static>>, String)>;

/// Visits `obj` and what it contains; `open` holds the containers on the
/// current path (cycle check). Recursion is at most `MAX_NESTING + 1` deep.
fn walk(obj: &Bound<'_, PyAny>, open: &mut Vec<usize>) -> Walk {
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        if v.is_finite() {
            return Ok(());
        }
        let shown = if v.is_nan() {
            "nan"
        } else if v > 0.0 {
            "inf"
        } else {
            "-inf"
        };
        return Err((
            Vec::new(),
            format!(
                "{shown} is not a JSON number (it would be sent as null); use a finite number or leave the key out"
            ),
        ));
    }
    // Scalars first: the common leaves cost one type check each.
    if obj.is_instance_of::<PyString>() || obj.is_none() || obj.is_instance_of::<pyo3::types::PyInt>() {
        return Ok(());
    }
    let id = obj.as_ptr() as usize;
    let enter = |open: &mut Vec<usize>| -> Walk {
        if open.contains(&id) {
            return Err((
                Vec::new(),
                "the value contains itself (a reference cycle), which JSON cannot represent".into(),
            ));
        }
        if open.len() >= MAX_NESTING {
            return Err((Vec::new(), format!("nested deeper than {MAX_NESTING} levels")));
        }
        open.push(id);
        Ok(())
    };
    let at = |step: Step<'static>| {
        move |(mut steps, p): (Vec<Step<'static>>, String)| {
            steps.push(step);
            (steps, p)
        }
    };
    if let Ok(d) = obj.cast::<PyDict>() {
        enter(open)?;
        for (k, v) in d.iter() {
            walk(&v, open).map_err(at(Step::Key(key_name(&k))))?;
        }
    } else if let Ok(l) = obj.cast::<PyList>() {
        enter(open)?;
        for (i, v) in l.iter().enumerate() {
            walk(&v, open).map_err(at(Step::Index(i)))?;
        }
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        enter(open)?;
        for (i, v) in t.iter().enumerate() {
            walk(&v, open).map_err(at(Step::Index(i)))?;
        }
    } else if obj.is_instance_of::<pyo3::types::PyBytes>() {
        return Ok(());
    } else if let Ok(m) = obj.cast::<PyMapping>() {
        // A Mapping that is not a dict: pythonize reads it too.
        enter(open)?;
        let items = m.items().map_err(|e| (Vec::new(), format!("cannot read this mapping: {e}")))?;
        for kv in items.iter() {
            let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                kv.extract().map_err(|e| (Vec::new(), format!("cannot read this mapping: {e}")))?;
            walk(&v, open).map_err(at(Step::Key(key_name(&k))))?;
        }
    } else if let Ok(s) = obj.cast::<PySequence>() {
        enter(open)?;
        let n = s.len().map_err(|e| (Vec::new(), format!("cannot read this sequence: {e}")))?;
        for i in 0..n {
            let v = s.get_item(i).map_err(|e| (Vec::new(), format!("cannot read this sequence: {e}")))?;
            walk(&v, open).map_err(at(Step::Index(i)))?;
        }
    } else {
        return Ok(());
    }
    open.pop();
    Ok(())
}

/// A dict key as a path step (`bounds::path_of` cuts long ones).
fn key_name(k: &Bound<'_, PyAny>) -> Cow<'static, str> {
    Cow::Owned(match k.cast::<PyString>() {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => k.str().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|_| "?".into()),
    })
}
