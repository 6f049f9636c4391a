//! Tests of MMIO emulation: page walks and instruction fetch, the decoder, the bus, and the
//! exit path against a fake VMCS, fake RAM and a register-file device.

mod access;
mod bus;
mod decode;
mod paging;
