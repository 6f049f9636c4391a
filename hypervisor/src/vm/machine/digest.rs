//! Hashing a VM's RAM, for the host's self-check (`selfcheck`): the RAM of a VM that is not
//! running must not change, whatever the other VMs do.

use super::Machine;
use crate::vm::console_out::LineOutput;
use crate::vmx::ept::PAGE_SIZE;
use crate::vmx::frames::FrameSource;

impl<O: LineOutput> Machine<O> {
    /// Feed every page of guest RAM, in guest-physical order, to `hasher`.
    pub fn hash_ram(&self, frames: &impl FrameSource, hasher: &mut blake3::Hasher) {
        let mut gpa = 0;
        while let Some(frame) = self.ram.host_frame(gpa) {
            // SAFETY: the frame is one of this VM's RAM frames, reachable for PAGE_SIZE bytes
            // through `phys_to_virt` (FrameSource contract); the caller holds the VM (and
            // so no vCPU of it runs) for the duration of the borrow.
            let page = unsafe {
                core::slice::from_raw_parts(frames.phys_to_virt(frame), PAGE_SIZE as usize)
            };
            hasher.update(page);
            gpa += PAGE_SIZE;
        }
    }
}
