//! One draft per section kind: the keys each section has, how each value is parsed, and the
//! checks that need the whole section (required keys, defaults, keys that depend on others).

use alloc::format;
use alloc::string::{String, ToString};

use super::super::{
    ConfigError, ConfigErrorKind, DEFAULT_MIGRATION_PORT, DEFAULT_MTU, DiskConfig, GuestBoot,
    HostConfig, MAX_CMDLINE_LEN, MAX_IMAGE_PATH_LEN, MigrationConfig, NetConfig, NetMode, VmConfig,
};
use super::super::{bounds, host_disk, value};
use super::slot::{Slot, unknown_key};

/// Sections that can appear once know where they started, for duplicate-section messages.
pub(crate) trait HeaderLine {
    fn header_line(&self) -> u32;
}

fn missing(section: &str, key: &'static str, line: u32) -> ConfigError {
    ConfigError::new(
        line,
        ConfigErrorKind::MissingKey {
            section: section.to_string(),
            key,
        },
    )
}

/// `[host]`.
pub(crate) struct HostDraft {
    header_line: u32,
    name: Slot<String>,
    host_disk: Slot<String>,
}

impl HostDraft {
    pub(crate) fn new(header_line: u32) -> Self {
        Self {
            header_line,
            name: Slot::empty(),
            host_disk: Slot::empty(),
        }
    }

    pub(crate) fn set(&mut self, key: &str, raw: &str, line: u32) -> Result<(), ConfigError> {
        match key {
            "name" => self
                .name
                .fill("host", "name", raw, line, |e| e.parse(value::name)),
            "host_disk" => self.host_disk.fill("host", "host_disk", raw, line, |e| {
                e.parse(host_disk::drive)
            }),
            _ => Err(unknown_key("host", key, line)),
        }
    }

    pub(crate) fn finish(self) -> Result<HostConfig, ConfigError> {
        let name = self
            .name
            .take()
            .ok_or_else(|| missing("host", "name", self.header_line))?;
        let host_disk = self
            .host_disk
            .take_with_line()
            .map(|(drive, line)| host_disk::HostDiskDrive { drive, line });
        Ok(HostConfig { name, host_disk })
    }
}

impl HeaderLine for HostDraft {
    fn header_line(&self) -> u32 {
        self.header_line
    }
}

/// The `mode` key's value before the address is attached to it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ModeKind {
    None,
    Dhcp,
    Static,
}

/// `[net]`.
pub(crate) struct NetDraft {
    header_line: u32,
    mode: Slot<ModeKind>,
    address: Slot<([u8; 4], u8)>,
    gateway: Slot<[u8; 4]>,
    mac: Slot<[u8; 6]>,
    mtu: Slot<u16>,
}

impl NetDraft {
    pub(crate) fn new(header_line: u32) -> Self {
        Self {
            header_line,
            mode: Slot::empty(),
            address: Slot::empty(),
            gateway: Slot::empty(),
            mac: Slot::empty(),
            mtu: Slot::empty(),
        }
    }

    pub(crate) fn set(&mut self, key: &str, raw: &str, line: u32) -> Result<(), ConfigError> {
        match key {
            "mode" => self.mode.fill("net", "mode", raw, line, |e| match e.value {
                "none" => Ok(ModeKind::None),
                "dhcp" => Ok(ModeKind::Dhcp),
                "static" => Ok(ModeKind::Static),
                _ => Err(e.invalid("none, dhcp or static")),
            }),
            "address" => self.address.fill("net", "address", raw, line, |e| {
                e.parse(value::ipv4_with_prefix)
            }),
            "gateway" => self
                .gateway
                .fill("net", "gateway", raw, line, |e| e.parse(value::ipv4)),
            "mac" => self
                .mac
                .fill("net", "mac", raw, line, |e| e.parse(value::mac)),
            "mtu" => self
                .mtu
                .fill("net", "mtu", raw, line, |e| e.parse(value::mtu)),
            _ => Err(unknown_key("net", key, line)),
        }
    }

    pub(crate) fn finish(self) -> Result<NetConfig, ConfigError> {
        let kind = self.mode.value().copied().unwrap_or(ModeKind::None);
        if kind != ModeKind::Static {
            for (key, line) in [
                ("address", self.address.line()),
                ("gateway", self.gateway.line()),
            ] {
                if let Some(line) = line {
                    return Err(ConfigError::new(
                        line,
                        ConfigErrorKind::NetKeyNeedsStaticMode { key },
                    ));
                }
            }
        }
        let mode = match kind {
            ModeKind::None => NetMode::None,
            ModeKind::Dhcp => NetMode::Dhcp,
            ModeKind::Static => {
                let mode_line = self.mode.line().unwrap_or(self.header_line);
                let (address, prefix_len) = self
                    .address
                    .take()
                    .ok_or_else(|| missing("net", "address", mode_line))?;
                NetMode::Static {
                    address,
                    prefix_len,
                    gateway: self.gateway.take(),
                }
            }
        };
        Ok(NetConfig {
            mode,
            mac: self.mac.take(),
            mtu: self.mtu.take().unwrap_or(DEFAULT_MTU),
        })
    }
}

impl HeaderLine for NetDraft {
    fn header_line(&self) -> u32 {
        self.header_line
    }
}

/// `[migration]`.
pub(crate) struct MigrationDraft {
    header_line: u32,
    port: Slot<u16>,
    key: Slot<[u8; 32]>,
    downtime_limit_ms: Slot<u32>,
    max_bandwidth_mib: Slot<u32>,
}

impl MigrationDraft {
    pub(crate) fn new(header_line: u32) -> Self {
        Self {
            header_line,
            port: Slot::empty(),
            key: Slot::empty(),
            downtime_limit_ms: Slot::empty(),
            max_bandwidth_mib: Slot::empty(),
        }
    }

    pub(crate) fn set(&mut self, key: &str, raw: &str, line: u32) -> Result<(), ConfigError> {
        const S: &str = "migration";
        match key {
            "port" => self
                .port
                .fill(S, "port", raw, line, |e| e.parse(value::port)),
            "key" => self
                .key
                .fill(S, "key", raw, line, |e| e.parse(value::key256)),
            "downtime_limit_ms" => {
                self.downtime_limit_ms
                    .fill(S, "downtime_limit_ms", raw, line, |e| {
                        e.parse(|v| bounds::DOWNTIME_LIMIT_MS.parse_u32(v))
                    })
            }
            "max_bandwidth_mib" => {
                self.max_bandwidth_mib
                    .fill(S, "max_bandwidth_mib", raw, line, |e| {
                        e.parse(|v| bounds::MAX_BANDWIDTH_MIB.parse_u32(v))
                    })
            }
            _ => Err(unknown_key(S, key, line)),
        }
    }

    pub(crate) fn finish(self) -> MigrationConfig {
        MigrationConfig {
            port: self.port.take().unwrap_or(DEFAULT_MIGRATION_PORT),
            key: self.key.take(),
            downtime_limit_ms: self.downtime_limit_ms.take(),
            max_bandwidth_mib: self.max_bandwidth_mib.take(),
        }
    }
}

impl HeaderLine for MigrationDraft {
    fn header_line(&self) -> u32 {
        self.header_line
    }
}

/// `[vm NAME]`.
pub(crate) struct VmDraft {
    pub(crate) name: String,
    pub(crate) header_line: u32,
    /// `vm NAME`, as messages show it.
    section: String,
    image: Slot<String>,
    /// `kernel` and `initrd`: see [`VmDraft::boot`].
    kernel: Slot<String>,
    initrd: Slot<String>,
    memory_bytes: Slot<u64>,
    cmdline: Slot<String>,
    vcpus: Slot<u32>,
    autostart: Slot<bool>,
    disk: Slot<DiskConfig>,
    host_disk: Slot<host_disk::HostRegion>,
    cpu: Slot<String>,
}

impl VmDraft {
    pub(crate) fn new(name: &str, header_line: u32) -> Self {
        Self {
            name: name.to_string(),
            header_line,
            section: format!("vm {name}"),
            image: Slot::empty(),
            kernel: Slot::empty(),
            initrd: Slot::empty(),
            memory_bytes: Slot::empty(),
            cmdline: Slot::empty(),
            vcpus: Slot::empty(),
            autostart: Slot::empty(),
            disk: Slot::empty(),
            host_disk: Slot::empty(),
            cpu: Slot::empty(),
        }
    }

    pub(crate) fn set(&mut self, key: &str, raw: &str, line: u32) -> Result<(), ConfigError> {
        let s = self.section.as_str();
        match key {
            "image" => self.image.fill(s, "image", raw, line, |e| {
                e.check_len(MAX_IMAGE_PATH_LEN)?;
                e.parse(value::image_path)
            }),
            "kernel" | "initrd" => self.set_linux(key, raw, line),
            "memory" => self
                .memory_bytes
                .fill(s, "memory", raw, line, |e| e.parse(value::memory_size)),
            "cmdline" => self.cmdline.fill(s, "cmdline", raw, line, |e| {
                e.check_len(MAX_CMDLINE_LEN)?;
                Ok(e.value.to_string())
            }),
            "vcpus" => self.vcpus.fill(s, "vcpus", raw, line, |e| {
                let count = e.parse(|v| value::u32_at_least(v, 1, "a vCPU count of at least 1"))?;
                if count > 1 {
                    return Err(ConfigError::new(
                        line,
                        ConfigErrorKind::UnsupportedVcpus {
                            section: s.to_string(),
                            count,
                        },
                    ));
                }
                Ok(count)
            }),
            "autostart" => self
                .autostart
                .fill(s, "autostart", raw, line, |e| e.parse(value::boolean)),
            "disk" => self.disk.fill(s, "disk", raw, line, |e| {
                e.check_len(MAX_IMAGE_PATH_LEN)?;
                let path = e.parse(value::disk_path)?;
                Ok(DiskConfig { path, line })
            }),
            "host_disk" => self.host_disk.fill(s, "host_disk", raw, line, |e| {
                e.parse(host_disk::parse_region)
            }),
            "cpu" => self
                .cpu
                .fill(s, "cpu", raw, line, |e| e.parse(value::cpu_model)),
            _ => Err(unknown_key(s, key, line)),
        }
    }

    /// `kernel = PATH`, `initrd = PATH`: the Linux boot keys (issue 9).
    fn set_linux(&mut self, key: &str, raw: &str, line: u32) -> Result<(), ConfigError> {
        let s = self.section.as_str();
        let (slot, key) = match key {
            "kernel" => (&mut self.kernel, "kernel"),
            _ => (&mut self.initrd, "initrd"),
        };
        slot.fill(s, key, raw, line, |e| {
            e.check_len(MAX_IMAGE_PATH_LEN)?;
            e.parse(value::image_path)
        })
    }

    /// What the VM boots: exactly one of `image` and `kernel`; `initrd` only with `kernel`.
    fn boot(&mut self) -> Result<GuestBoot, ConfigError> {
        let section = || self.section.clone();
        let image_line = self.image.line();
        let kernel_line = self.kernel.line();
        let initrd_line = self.initrd.line();
        let image = core::mem::replace(&mut self.image, Slot::empty()).take();
        let kernel = core::mem::replace(&mut self.kernel, Slot::empty()).take();
        let initrd = core::mem::replace(&mut self.initrd, Slot::empty()).take();
        match (image, kernel) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                kernel_line.unwrap_or(self.header_line),
                ConfigErrorKind::ImageAndKernel {
                    section: section(),
                    image_line: image_line.unwrap_or(self.header_line),
                },
            )),
            (None, None) => Err(missing(
                &self.section,
                "image (a PVH ELF) or kernel (a Linux bzImage)",
                self.header_line,
            )),
            (Some(image), None) => match initrd_line {
                Some(line) => Err(ConfigError::new(
                    line,
                    ConfigErrorKind::InitrdWithoutKernel { section: section() },
                )),
                None => Ok(GuestBoot::Pvh { image }),
            },
            (None, Some(kernel)) => Ok(GuestBoot::Linux {
                kernel,
                kernel_line: kernel_line.unwrap_or(self.header_line),
                initrd,
                initrd_line: initrd_line.unwrap_or(0),
            }),
        }
    }

    pub(crate) fn finish(mut self) -> Result<VmConfig, ConfigError> {
        let boot = self.boot()?;
        let memory_bytes = self
            .memory_bytes
            .take()
            .ok_or_else(|| missing(&self.section, "memory", self.header_line))?;
        Ok(VmConfig {
            name: self.name,
            boot,
            memory_bytes,
            cmdline: self.cmdline.take().unwrap_or_default(),
            vcpus: self.vcpus.take().unwrap_or(1),
            autostart: self.autostart.take().unwrap_or(true),
            cpu: self.cpu.take().unwrap_or_else(|| "host".to_string()),
            line: self.header_line,
            disk: self.disk.take(),
            host_disk: self
                .host_disk
                .take_with_line()
                .map(|(region, line)| host_disk::HostDiskRegionConfig { region, line }),
        })
    }
}
