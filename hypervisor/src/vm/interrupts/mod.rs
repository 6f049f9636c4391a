//! Interrupt plumbing between the device models and the vCPU.
pub mod message;
