//! A writer for the `newc` cpio format (the one the Linux kernel unpacks as an initramfs,
//! Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Written here rather than by running `cpio`: the archive must hold a `/dev/console`
//! character device (the kernel opens it for init's stdio before init could create it), and
//! only root may `mknod` one on the host; an archive writer just writes the header. It also
//! makes the archive reproducible: fixed inode numbers, owner root, mtime 0.
//!
//! Format: each entry is the ASCII magic `070701`, thirteen 8-digit hex fields, the NUL
//! terminated name padded to a multiple of 4 bytes (counting from the header's start), then
//! the data padded to a multiple of 4; the archive ends with an entry named `TRAILER!!!`.

/// File type bits of `st_mode` (POSIX).
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// What an archive entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind<'a> {
    /// A directory.
    Directory,
    /// A regular file with these contents.
    File(&'a [u8]),
    /// A symbolic link pointing at this target.
    Symlink(&'a str),
    /// A character device with this major and minor number.
    CharDevice { major: u32, minor: u32 },
}

/// Why an entry cannot be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// Names are relative paths without NUL bytes (the kernel unpacks them under `/`).
    BadName(String),
    /// Permission bits are 12 bits at most (rwx for three classes, setuid/setgid/sticky).
    BadPermissions { name: String, permissions: u32 },
    /// A file larger than the format's 32-bit size field.
    TooLarge { name: String, len: usize },
}

impl core::fmt::Display for CpioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CpioError::BadName(name) => write!(
                f,
                "cpio entry name `{name}` must be relative, non-empty and free of NUL bytes"
            ),
            CpioError::BadPermissions { name, permissions } => write!(
                f,
                "cpio entry `{name}`: permissions {permissions:o} have bits beyond 0o7777"
            ),
            CpioError::TooLarge { name, len } => {
                write!(
                    f,
                    "cpio entry `{name}`: {len} bytes exceed the 4 GiB newc limit"
                )
            }
        }
    }
}

impl std::error::Error for CpioError {}

/// Builds a newc archive in memory.
pub struct CpioWriter {
    out: Vec<u8>,
    next_inode: u32,
}

impl Default for CpioWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CpioWriter {
    /// An empty archive.
    pub fn new() -> CpioWriter {
        CpioWriter {
            out: Vec::new(),
            next_inode: 1,
        }
    }

    /// Append one entry owned by root with mtime 0.
    pub fn add(
        &mut self,
        name: &str,
        permissions: u32,
        kind: EntryKind<'_>,
    ) -> Result<(), CpioError> {
        if name.is_empty() || name.starts_with('/') || name.contains('\0') || name == TRAILER {
            return Err(CpioError::BadName(name.to_string()));
        }
        if permissions & !0o7777 != 0 {
            return Err(CpioError::BadPermissions {
                name: name.to_string(),
                permissions,
            });
        }
        let (file_type, data, rdev) = match kind {
            EntryKind::Directory => (S_IFDIR, &[][..], (0, 0)),
            EntryKind::File(data) => (S_IFREG, data, (0, 0)),
            EntryKind::Symlink(target) => (S_IFLNK, target.as_bytes(), (0, 0)),
            EntryKind::CharDevice { major, minor } => (S_IFCHR, &[][..], (major, minor)),
        };
        let size = u32::try_from(data.len()).map_err(|_| CpioError::TooLarge {
            name: name.to_string(),
            len: data.len(),
        })?;
        let nlink = if file_type == S_IFDIR { 2 } else { 1 };
        let inode = self.next_inode;
        self.next_inode += 1;
        self.entry(
            name,
            inode,
            file_type | permissions,
            nlink,
            size,
            rdev,
            data,
        );
        Ok(())
    }

    /// Append the trailer and return the archive.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry(TRAILER, 0, 0, 1, 0, (0, 0), &[]);
        self.out
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        &mut self,
        name: &str,
        inode: u32,
        mode: u32,
        nlink: u32,
        size: u32,
        rdev: (u32, u32),
        data: &[u8],
    ) {
        let name_size = name.len() as u32 + 1;
        let fields = [
            inode, mode, 0, // uid
            0, // gid
            nlink, 0, // mtime
            size, 0, // devmajor
            0, // devminor
            rdev.0, rdev.1, name_size, 0, // check (unused by newc)
        ];
        self.out.extend_from_slice(MAGIC);
        for field in fields {
            self.out
                .extend_from_slice(format!("{field:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }
}

const MAGIC: &[u8] = b"070701";
const TRAILER: &str = "TRAILER!!!";

#[cfg(test)]
mod tests;
