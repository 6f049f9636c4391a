//! Reading files from the EFI system partition the loader itself was started from.

use crate::error::LoaderError;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use uefi::CString16;
use uefi::fs::FileSystem;

/// The ESP volume of the running image.
pub struct Esp {
    fs: FileSystem,
}

impl Esp {
    /// Opens the file system of the device the loader was loaded from.
    pub fn open() -> Result<Esp, LoaderError> {
        let proto = uefi::boot::get_image_file_system(uefi::boot::image_handle()).map_err(|e| {
            LoaderError::FileRead {
                path: "(boot volume)".to_string(),
                status: e.status(),
            }
        })?;
        Ok(Esp {
            fs: FileSystem::new(proto),
        })
    }

    /// Reads a whole file. `path` uses `/` or `\` separators, relative to the ESP root.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, uefi::Status> {
        let uefi_path = to_uefi_path(path).ok_or(uefi::Status::INVALID_PARAMETER)?;
        self.fs.read(uefi_path.as_ref()).map_err(|e| match e {
            uefi::fs::Error::Io(io) => io.uefi_error.status(),
            _ => uefi::Status::NOT_FOUND,
        })
    }
}

/// `tern/guests/hb.elf` -> `\tern\guests\hb.elf` as UCS-2; `None` if not representable.
fn to_uefi_path(path: &str) -> Option<CString16> {
    let mut s = String::with_capacity(path.len() + 1);
    if !path.starts_with(['/', '\\']) {
        s.push('\\');
    }
    for c in path.chars() {
        s.push(if c == '/' { '\\' } else { c });
    }
    CString16::try_from(s.as_str()).ok()
}
