//! External weights next to a model file (`model.onnx` + `model.onnx.data`), read only from the
//! model's own folder: no absolute paths or `..` (checked by the library), no symlink that leads
//! out of the folder, only regular files, and no range past the file's end. For the native
//! front ends (the CLI, the Python binding); the core itself reads no files.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::external::ExternalData;
use crate::error::TensorDataError;

/// Reads external tensor data from the folder that holds the model.
pub struct ModelFolder {
    /// The folder, canonical (symlinks resolved).
    dir: PathBuf,
}

impl ModelFolder {
    /// The folder of `model` (a file path).
    pub fn of(model: &Path) -> std::io::Result<Self> {
        let dir = match model.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Ok(Self {
            dir: dir.canonicalize()?,
        })
    }
}

impl ExternalData for ModelFolder {
    fn read(&self, location: &str, offset: u64, length: u64) -> Result<Vec<u8>, TensorDataError> {
        self.read_file(location, offset, length)
            .map_err(TensorDataError)
    }
}

impl ModelFolder {
    /// [`ExternalData::read`] with the error as text.
    fn read_file(&self, location: &str, offset: u64, length: u64) -> Result<Vec<u8>, String> {
        let path = self.dir.join(location);
        let real = path
            .canonicalize()
            .map_err(|e| {
                format!(
                    "cannot open external data `{}`: {e}; keep it next to the model, or re-export with the weights inside (`torch.onnx.export(..., external_data=False)`)",
                    path.display()
                )
            })?;
        if !real.starts_with(&self.dir) {
            return Err(format!(
                "external data `{location}` leads out of the model's folder (a symlink); refused"
            ));
        }
        let meta = fs::metadata(&real).map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err(format!("external data `{location}` is not a regular file"));
        }
        if offset
            .checked_add(length)
            .is_none_or(|end| end > meta.len())
        {
            return Err(format!(
                "external data `{location}` is {} bytes, but the tensor asks for {length} bytes at offset {offset}",
                meta.len()
            ));
        }
        let mut file = fs::File::open(&real).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| e.to_string())?;
        let mut bytes = vec![0; usize::try_from(length).map_err(|e| e.to_string())?];
        file.read_exact(&mut bytes)
            .map_err(|e| format!("cannot read external data `{location}`: {e}"))?;
        Ok(bytes)
    }
}
