//! Per-instance copies of the ESP directory. Both emulators may write to the FAT they are
//! given (QEMU `fat:rw:`, Bochs vvfat), Bochs leaves lock files beside it, and each host
//! needs its own `tern/tern.cfg`: so every instance boots its own copy.

use crate::HarnessError;
use std::path::Path;

/// Path of the host config inside an ESP (contract with the loader).
pub const CONFIG_PATH: &str = "tern/tern.cfg";

/// Copy the directory tree `from` to `to` (created; must not exist or be empty).
pub fn copy_tree(from: &Path, to: &Path) -> Result<(), HarnessError> {
    let io = |what: &str, path: &Path, e| HarnessError::io(format!("{what} {}", path.display()), e);
    std::fs::create_dir_all(to).map_err(|e| io("create", to, e))?;
    let entries = std::fs::read_dir(from).map_err(|e| io("read directory", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io("read directory", from, e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(|e| io("stat", &source, e))?;
        if kind.is_dir() {
            copy_tree(&source, &target)?;
        } else {
            std::fs::copy(&source, &target).map_err(|e| io("copy", &source, e))?;
        }
    }
    Ok(())
}

/// Write `text` as the host config of the ESP at `esp`.
pub fn write_config(esp: &Path, text: &str) -> Result<(), HarnessError> {
    write_file(esp, CONFIG_PATH, text.as_bytes())
}

/// Write `contents` to `relative` inside the ESP at `esp`, creating directories.
pub fn write_file(esp: &Path, relative: &str, contents: &[u8]) -> Result<(), HarnessError> {
    let path = esp.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| HarnessError::io(format!("create {}", parent.display()), e))?;
    }
    std::fs::write(&path, contents)
        .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}
