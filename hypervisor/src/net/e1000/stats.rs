//! Hardware statistics registers (SDM 13.7): clear-on-read, so they are folded into 64-bit
//! running totals every time they are read.

use super::hal::RegisterAccess;
use super::regs::stats;

/// Running totals of the statistics registers the console reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HwStats {
    /// CRC errors (frame dropped by the NIC).
    pub crc_errors: u64,
    /// Alignment errors.
    pub alignment_errors: u64,
    /// Symbol errors.
    pub symbol_errors: u64,
    /// Receive errors.
    pub receive_errors: u64,
    /// Missed packets (no receive buffer or FIFO overrun).
    pub missed: u64,
    /// Frames shorter than 64 bytes received.
    pub undersize: u64,
    /// Frames longer than the maximum received (dropped; LPE is off).
    pub oversize: u64,
    /// Good packets received.
    pub good_rx_packets: u64,
    /// Good packets transmitted.
    pub good_tx_packets: u64,
    /// Good octets received.
    pub good_rx_octets: u64,
    /// Good octets transmitted.
    pub good_tx_octets: u64,
    /// Collisions.
    pub collisions: u64,
}

impl HwStats {
    /// Read every register once so that totals start at zero.
    pub fn clear<R: RegisterAccess + ?Sized>(&mut self, regs: &mut R) {
        self.accumulate(regs);
        *self = Self::default();
    }

    /// Fold the current register values into the totals (reading clears them).
    pub fn accumulate<R: RegisterAccess + ?Sized>(&mut self, regs: &mut R) {
        let mut read = |offset| u64::from(regs.read(offset));
        self.crc_errors += read(stats::CRCERRS);
        self.alignment_errors += read(stats::ALGNERRC);
        self.symbol_errors += read(stats::SYMERRS);
        self.receive_errors += read(stats::RXERRC);
        self.missed += read(stats::MPC);
        self.undersize += read(stats::RUC);
        self.oversize += read(stats::ROC);
        self.collisions += read(stats::COLC);
        self.good_rx_packets += read(stats::GPRC);
        self.good_tx_packets += read(stats::GPTC);
        // Low dword first: reading the high dword clears the pair.
        let low = read(stats::GORCL);
        self.good_rx_octets += low | (read(stats::GORCH) << 32);
        let low = read(stats::GOTCL);
        self.good_tx_octets += low | (read(stats::GOTCH) << 32);
        // Not kept, but read so that they do not saturate: RNBC, TPR, TPT.
        read(stats::RNBC);
        read(stats::TPR);
        read(stats::TPT);
    }

    /// Frames the NIC dropped as damaged.
    pub fn rx_errors(&self) -> u64 {
        self.crc_errors + self.alignment_errors + self.symbol_errors + self.receive_errors
    }

    /// Frames the NIC dropped for lack of buffers or bad length.
    pub fn rx_missed(&self) -> u64 {
        self.missed + self.undersize + self.oversize
    }
}
