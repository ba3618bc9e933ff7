//! Library errors as Python exceptions, worded for Python (`steps=`, `force=True`,
//! `Explainer.layers()`): input problems raise `igcam.InputError` (a `ValueError`), model
//! problems `igcam.ModelError`; both derive from `igcam.Error` (`igcam/_errors.py`).

use igcam::error::{Setting, Spelling};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// The keyword arguments' names.
struct PythonSpelling;

impl Spelling for PythonSpelling {
    fn name(&self, setting: Setting) -> String {
        match setting {
            Setting::LayerList => "`Explainer.layers()`".into(),
            Setting::Target => "`targets`".into(),
            s => format!("`{}`", s.name().replace("noise_tunnel.", "nt_")),
        }
    }

    fn set(&self, setting: Setting) -> String {
        match setting {
            Setting::Force | Setting::NoCrop | Setting::Lenient => {
                format!("pass {}=True", self.name(setting).trim_matches('`'))
            }
            s => format!("change {}", self.name(s)),
        }
    }
}

/// The exception class `name` of `igcam._errors`.
fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    Ok(py
        .import("igcam._errors")?
        .getattr(name)?
        .cast_into::<PyType>()?)
}

/// `error` as the Python exception of its kind, worded for Python.
pub fn to_py(error: igcam::Error) -> PyErr {
    use igcam::Error as E;
    let kind = match &error {
        E::OnnxParse(_)
        | E::TensorData(_)
        | E::UnsupportedOps { .. }
        | E::BadNode { .. }
        | E::NotClassifier(_)
        | E::UnsupportedHead(_)
        | E::MethodUnavailable(_)
        | E::Backend(_)
        | E::Internal(_) => "ModelError",
        _ => "InputError",
    };
    raise(kind, error.render(&PythonSpelling))
}

/// An input problem found by the binding itself.
pub fn input_error(text: impl Into<String>) -> PyErr {
    raise("InputError", text.into())
}

/// A model problem found by the binding itself (a panic caught in the library).
pub fn model_error(text: impl Into<String>) -> PyErr {
    raise("ModelError", text.into())
}

/// `igcam._errors.<kind>(text)`.
fn raise(kind: &str, text: String) -> PyErr {
    Python::attach(|py| match class(py, kind) {
        Ok(cls) => PyErr::from_type(cls, text),
        Err(e) => PyRuntimeError::new_err(format!("{text} (and igcam._errors: {e})")),
    })
}
