//! Host tests of the virtio-blk device on virtio-mmio, driven by a fake guest driver.

mod driver;
mod fuzz;
mod malformed;
mod requests;
mod state;
