//! Python values ⇄ core types, through serde (pythonize): no JSON text
//! round trip. Request-shape errors name the failing key path.

use pyo3::prelude::*;
use pyo3::types::PyString;
use serde::de::DeserializeOwned;
use serde::Serialize;

use bifrost_core::Error;

/// A Python object → a core type; a bad shape is INVALID_REQUEST naming the key.
pub fn from_py<T: DeserializeOwned>(obj: &Bound<'_, PyAny>, what: &str) -> Result<T, Error> {
    if let Ok(text) = obj.cast::<PyString>() {
        let text = text.to_cow().map_err(|e| Error::InvalidRequest { message: format!("{what}: {e}") })?;
        // The fast parse first; only a failure pays for path tracking.
        if let Ok(v) = serde_json::from_str(&text) {
            return Ok(v);
        }
        let mut de = serde_json::Deserializer::from_str(&text);
        return serde_path_to_error::deserialize(&mut de)
            .map_err(|e| shape_error(what, e.path().to_string(), e.inner()));
    }
    if let Ok(v) = pythonize::depythonize(obj) {
        return Ok(v);
    }
    let mut de = pythonize::Depythonizer::from_object(obj);
    serde_path_to_error::deserialize(&mut de).map_err(|e| shape_error(what, e.path().to_string(), e.inner()))
}

fn shape_error(what: &str, path: String, inner: &dyn std::fmt::Display) -> Error {
    let inner = inner.to_string();
    let inner = match inner.find(" at line ") {
        Some(i) => inner[..i].to_string(),
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
    pythonize::depythonize(obj).map_err(|e| Error::Config { path: String::new(), message: e.to_string() })
}
