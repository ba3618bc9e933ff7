//! Weights kept outside the `.onnx` file: PyTorch's default exporter (`dynamo=True`) writes
//! `model.onnx` plus `model.onnx.data`, and each initialiser names its file, offset and length.
//! The core reads no files: the caller supplies an [`ExternalData`] that reads them (the CLI
//! from the model's folder, the browser from files dropped with the model: [`DataFiles`]).

use std::borrow::Cow;

use onnx_ir::TensorProto;

use crate::error::TensorDataError;

/// Reads the bytes of tensors stored outside the model file.
pub trait ExternalData {
    /// `length` bytes at `offset` of the file `location` (relative to the model's folder, already
    /// checked to be a plain relative path without `..`).
    fn read(&self, location: &str, offset: u64, length: u64) -> Result<Vec<u8>, TensorDataError>;
}

/// For models given as bytes alone: any external tensor is refused with the re-export hint.
pub struct NoExternalData;

impl ExternalData for NoExternalData {
    fn read(&self, location: &str, _: u64, _: u64) -> Result<Vec<u8>, TensorDataError> {
        Err(TensorDataError(format!(
            "its data is in the external file `{location}`, which is not available here; put it next to the model, or re-export with the weights inside (`torch.onnx.export(..., external_data=False)`)"
        )))
    }
}

/// External data files held in memory by name (the browser page: files dropped together with
/// the model). A location is matched by its file name, since a dropped file has no folder.
#[derive(Default)]
pub struct DataFiles(Vec<(String, Vec<u8>)>);

impl DataFiles {
    /// Adds the file `name` with its bytes.
    pub fn add(&mut self, name: impl Into<String>, bytes: Vec<u8>) {
        self.0.push((name.into(), bytes));
    }
}

impl ExternalData for DataFiles {
    fn read(&self, location: &str, offset: u64, length: u64) -> Result<Vec<u8>, TensorDataError> {
        let file_name = location.rsplit(['/', '\\']).next().unwrap_or(location);
        let (_, bytes) = self
            .0
            .iter()
            .find(|(name, _)| name == file_name)
            .ok_or_else(|| {
                TensorDataError(format!(
                    "its data is in the external file `{location}`: give it together with the model (drop both files at once), or re-export with the weights inside (`torch.onnx.export(..., external_data=False)`)"
                ))
            })?;
        let range = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(length).ok())
            .and_then(|(o, l)| Some(o..o.checked_add(l)?))
            .filter(|r| r.end <= bytes.len())
            .ok_or_else(|| {
                TensorDataError(format!(
                    "external data `{location}` is {} bytes, but the tensor asks for {length} bytes at offset {offset}",
                    bytes.len()
                ))
            })?;
        Ok(bytes[range].to_vec())
    }
}

/// Bytes per value of the ONNX data types an initialiser may have here.
fn value_bytes(data_type: i32) -> Option<u64> {
    match data_type {
        1 | 6 => Some(4),  // float, int32
        7 | 11 => Some(8), // int64, double
        2 | 3 | 9 => Some(1),
        _ => None,
    }
}

/// Checks that `location` is a plain relative path inside the model's folder (no absolute
/// path, no `..`, no drive or root): the ONNX external-data CVEs came from these.
pub fn check_location(location: &str) -> Result<(), TensorDataError> {
    let path = std::path::Path::new(location);
    let plain = !location.is_empty()
        && !location.contains('\\')
        && !path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(TensorDataError(format!(
            "external data location `{location}` is not a file inside the model's folder (absolute paths and `..` are refused)"
        )))
    }
}

/// The tensor with its external bytes read into `raw_data` (unchanged when it has none). The
/// length read is the one the tensor's shape and type call for; a recorded `length` must agree.
pub fn resolve<'t>(
    t: &'t TensorProto,
    external: &dyn ExternalData,
) -> Result<Cow<'t, TensorProto>, TensorDataError> {
    if t.external_data.is_empty() {
        return Ok(Cow::Borrowed(t));
    }
    let name = &t.name;
    let entry = |key: &str| {
        t.external_data
            .iter()
            .find(|e| e.key == key)
            .map(|e| e.value.as_str())
    };
    let number = |key: &str| -> Result<Option<u64>, TensorDataError> {
        entry(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    TensorDataError(format!(
                        "tensor `{name}`: external data {key} `{v}` is not a number"
                    ))
                })
            })
            .transpose()
    };
    let location = entry("location").ok_or_else(|| {
        TensorDataError(format!("tensor `{name}`: external data without a location"))
    })?;
    check_location(location).map_err(|e| TensorDataError(format!("tensor `{name}`: {e}")))?;
    let per_value = value_bytes(t.data_type).ok_or_else(|| {
        TensorDataError(format!(
            "tensor `{name}` has ONNX data type {}, which igcam does not read",
            t.data_type
        ))
    })?;
    let dims: Option<Vec<usize>> = t.dims.iter().map(|&d| usize::try_from(d).ok()).collect();
    let expected = dims
        .as_deref()
        .and_then(crate::budget::elements)
        .and_then(|n| (n as u64).checked_mul(per_value))
        .ok_or_else(|| {
            TensorDataError(format!(
                "tensor `{name}` has shape {:?}, whose size overflows",
                t.dims
            ))
        })?;
    let offset = number("offset")?.unwrap_or(0);
    if let Some(length) = number("length")?
        && length != expected
    {
        return Err(TensorDataError(format!(
            "tensor `{name}`: external data length {length} does not match its shape {:?} ({expected} bytes)",
            t.dims
        )));
    }
    let bytes = external
        .read(location, offset, expected)
        .map_err(|e| TensorDataError(format!("tensor `{name}`: {e}")))?;
    if bytes.len() as u64 != expected {
        return Err(TensorDataError(format!(
            "tensor `{name}`: read {} bytes of external data, expected {expected}",
            bytes.len()
        )));
    }
    let mut owned = t.clone();
    owned.external_data.clear();
    owned.raw_data = bytes.into();
    Ok(Cow::Owned(owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_locations_pass() {
        for ok in ["model.onnx.data", "weights/part1.bin"] {
            assert!(check_location(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../secret",
            "a/../../b",
            "./x",
            "C:\\x",
            "a\\..\\b",
        ] {
            assert!(check_location(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dropped_files_are_read_by_name_within_their_bounds() {
        let mut files = DataFiles::default();
        files.add("model.onnx.data", (0u8..10).collect());
        assert_eq!(files.read("model.onnx.data", 2, 3).unwrap(), vec![2, 3, 4]);
        assert_eq!(
            files.read("weights/model.onnx.data", 8, 2).unwrap(),
            vec![8, 9]
        );
        assert_eq!(
            files.read("model.onnx.data", 8, 3).unwrap_err().0,
            "external data `model.onnx.data` is 10 bytes, but the tensor asks for 3 bytes at offset 8"
        );
        assert!(files.read("model.onnx.data", u64::MAX, 2).is_err());
        assert!(
            files
                .read("other.data", 0, 1)
                .unwrap_err()
                .0
                .starts_with("its data is in the external file `other.data`: give it together with the model (drop both files at once)")
        );
    }
}
