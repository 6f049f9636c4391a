//! ACPI, only as far as power control needs it: find the FADT and the DSDT's `\_S5_` package
//! (portable parsing in [`tables`] and [`s5`], host-tested with synthetic tables), then power
//! off or reset the machine ([`power`], bare metal). [`mcfg`] finds the PCIe ECAM window.
//!
//! We deliberately avoid a full AML interpreter: soft-off needs two 3-bit constants and the
//! reset needs one register, and every line of firmware-facing code is attack surface.

pub mod mcfg;
pub mod s5;
pub mod tables;

#[cfg(target_os = "none")]
pub mod power;

pub use s5::SleepType;
pub use tables::{AcpiError, Fadt, PhysMemory, PowerInfo, RegisterAddress, discover_power};
