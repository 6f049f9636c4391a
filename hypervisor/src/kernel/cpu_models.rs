//! This host's side of CPU models (`vm::cpu_model`): the model a configured VM gets, and
//! `info cpu-models`.
//!
//! Why separate from `vm::cpu_model`: that module is portable and tested on the host with
//! made-up CPUs; this one asks the real CPU (`vm::machine::host_offer`: CPUID on
//! the bootstrap processor, which is the processor every VM runs on).

use alloc::string::String;
use core::fmt::Write;

use crate::console::CommandError;
use crate::vm::cpu_model::{CpuModel, FeatureMasks, describe_models};

pub use crate::vm::machine::{host_cpuid, host_offer};

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
