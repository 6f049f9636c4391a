//! What the kernel learned at boot, readable by every subsystem afterwards.

use boot_proto::BootInfo;
use boot_proto::config::Config;
use spin::Once;

use super::banner::MemorySummary;
use crate::arch::cpu::CpuInfo;
use crate::arch::tsc::TscSource;
use crate::memory::heap::HeapInfo;
use crate::vmx::caps::report::VmxStatus;

/// Facts about this host, fixed after boot.
pub struct Host {
    pub boot_info: &'static BootInfo,
    /// The config file text as the loader read it (empty if not readable).
    pub config_text: &'static str,
    /// The parsed config. The loader refuses to boot with a bad config, so `None` means the
    /// text did not survive the hand-over (reported at boot).
    pub config: Option<Config>,
    pub cpu: CpuInfo,
    pub vmx: VmxStatus,
    pub tsc_hz: u64,
    pub tsc_source: TscSource,
    pub heap: HeapInfo,
    pub memory: MemorySummary,
}

impl Host {
    /// The `[host] name`, if the config was readable.
    pub fn name(&self) -> Option<&str> {
        self.config.as_ref().map(|c| c.host.name.as_str())
    }
}

static HOST: Once<Host> = Once::new();

/// Records the boot facts (once).
pub fn set(host: Host) -> &'static Host {
    HOST.call_once(|| host)
}

/// The boot facts; `None` only during early boot.
pub fn get() -> Option<&'static Host> {
    HOST.get()
}
