//! This host's side of CPU models (`vm::cpu_model`): what its CPU offers, the model a
//! configured VM gets, and `info cpu-models`.
//!
//! Why separate from `vm::cpu_model`: that module is portable and tested on the host with
//! made-up CPUs; this one asks the real CPU (CPUID on the bootstrap processor, which is the
//! processor every VM runs on).

use alloc::string::String;
use core::fmt::Write;

use crate::console::CommandError;
use crate::vm::cpu_model::{CpuModel, FeatureMasks, describe_models};
use crate::vm::cpuid::CpuidResult;

/// The host's answer to CPUID(`leaf`, `subleaf`); zero for a basic or extended leaf above
/// the host's maximum (an Intel CPU would repeat its highest basic leaf there, SDM Vol. 2A
/// CPUID, which must not be mistaken for feature bits).
pub fn host_cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let range_max = core::arch::x86_64::__cpuid(leaf & 0x8000_0000).eax;
    if leaf > range_max {
        return CpuidResult::default();
    }
    let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    CpuidResult {
        eax: r.eax,
        ebx: r.ebx,
        ecx: r.ecx,
        edx: r.edx,
    }
}

/// What this host can show a guest.
pub fn host_offer() -> FeatureMasks {
    FeatureMasks::host_offer(host_cpuid)
}

/// The feature masks of a VM configured with `cpu = name`, or the operator's message.
pub fn vm_features(name: &str) -> Result<FeatureMasks, String> {
    let model = CpuModel::parse(name).map_err(|e| alloc::format!("{e}"))?;
    model.masks_on(&host_offer()).map_err(|missing| {
        alloc::format!(
            "CPU model '{}' needs features this host lacks: {}",
            model.name(),
            missing.join(" ")
        )
    })
}

/// `info cpu-models`.
pub fn info_cpu_models(out: &mut dyn Write) -> Result<(), CommandError> {
    writeln!(out, "model        here features")?;
    for line in describe_models(&host_offer()) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}
