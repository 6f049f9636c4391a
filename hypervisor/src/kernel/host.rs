//! What the kernel learned at boot, readable by every subsystem afterwards.

use boot_proto::BootInfo;
use spin::Once;

use super::banner::MemorySummary;
use crate::arch::cpu::CpuInfo;
use crate::arch::tsc::TscSource;
use crate::arch::vmx_capabilities::VmxStatus;
use crate::memory::heap::HeapInfo;

/// Facts about this host, fixed after boot.
pub struct Host {
    pub boot_info: &'static BootInfo,
    /// The config file text as the loader read it (empty if not readable).
    pub config: &'static str,
    pub host_name: Option<&'static str>,
    pub cpu: CpuInfo,
    pub vmx: VmxStatus,
    pub tsc_hz: u64,
    pub tsc_source: TscSource,
    pub heap: HeapInfo,
    pub memory: MemorySummary,
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
