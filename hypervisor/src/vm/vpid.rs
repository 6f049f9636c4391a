//! VPID allocation: every live VM's vCPU gets its own virtual-processor identifier so that
//! TLB entries of different guests never mix (SDM Vol. 3C §29.1). VPID 0 belongs to the
//! host (§27.2.1.1 forbids it for guests); a freed VPID must be flushed with INVVPID
//! before reuse, which `vmx::hw::vcpu::HwVcpu::new` does.

use alloc::vec::Vec;

/// Hands out VPIDs 1..=0xffff, reusing freed ones first.
#[derive(Debug, Default)]
pub struct VpidAllocator {
    next: u16,
    free: Vec<u16>,
}

impl VpidAllocator {
    /// An allocator with every VPID available.
    pub fn new() -> Self {
        Self::default()
    }

    /// A VPID, or `None` when all 65535 are in use.
    pub fn allocate(&mut self) -> Option<u16> {
        if let Some(v) = self.free.pop() {
            return Some(v);
        }
        let v = self.next.checked_add(1)?;
        self.next = v;
        Some(v)
    }

    /// Give a VPID back.
    pub fn free(&mut self, vpid: u16) {
        if vpid != 0 && vpid <= self.next && !self.free.contains(&vpid) {
            self.free.push(vpid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_zero_reuses_and_runs_out() {
        let mut a = VpidAllocator::new();
        assert_eq!(a.allocate(), Some(1));
        assert_eq!(a.allocate(), Some(2));
        a.free(1);
        a.free(1);
        a.free(0);
        a.free(999);
        assert_eq!(a.allocate(), Some(1));
        assert_eq!(a.allocate(), Some(3));
        let mut a = VpidAllocator::new();
        for _ in 0..0xffff {
            assert!(a.allocate().is_some());
        }
        assert_eq!(a.allocate(), None);
    }
}
