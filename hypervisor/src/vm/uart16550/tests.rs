use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use proptest::prelude::*;

use super::state::{MAX_STATE_LEN, RestoreError};
use super::*;

/// Records every level change of the interrupt line.
#[derive(Clone, Default)]
struct RecordingIrq(Rc<RefCell<Vec<bool>>>);

impl InterruptLine for RecordingIrq {
    fn set_level(&mut self, asserted: bool) {
        self.0.borrow_mut().push(asserted);
    }
}

#[derive(Default)]
struct Buffer(Vec<u8>);

impl SerialSink for Buffer {
    fn write_byte(&mut self, byte: u8) {
        self.0.push(byte);
    }
}

fn uart() -> (Uart16550<RecordingIrq, Buffer>, RecordingIrq) {
    let irq = RecordingIrq::default();
    (Uart16550::new(irq.clone(), Buffer::default()), irq)
}

#[test]
fn transmit_goes_to_sink_and_lsr_stays_empty() {
    let (mut u, _) = uart();
    for b in b"hi\n" {
        assert_ne!(u.read(reg::LSR) & LSR_THR_EMPTY, 0);
        u.write(reg::DATA, *b);
    }
    assert_eq!(u.sink_mut().0, b"hi\n");
    assert_eq!(u.read(reg::LSR), LSR_THR_EMPTY | LSR_TX_EMPTY);
}

#[test]
fn divisor_latch_is_behind_dlab_and_does_not_transmit() {
    let (mut u, _) = uart();
    u.write(reg::LCR, 0x80 | 0x03);
    u.write(reg::DATA, 0x01);
    u.write(reg::IER, 0x02);
    assert_eq!(u.read(reg::DATA), 0x01);
    assert_eq!(u.read(reg::IER), 0x02);
    u.write(reg::LCR, 0x03);
    assert_eq!(u.read(reg::IER), 0, "IER untouched by divisor writes");
    assert!(u.sink_mut().0.is_empty());
    assert_eq!(u.registers().divisor, 0x0201);
    assert_eq!(u.read(reg::LCR), 0x03);
}

#[test]
fn receive_sets_data_ready_and_rx_interrupt() {
    let (mut u, irq) = uart();
    u.write(reg::IER, IER_RX_AVAILABLE);
    assert_eq!(u.receive(b"ab"), 1, "no FIFO: one holding register");
    assert_eq!(u.read(reg::LSR) & LSR_DATA_READY, LSR_DATA_READY);
    assert_eq!(u.read(reg::IIR_FCR), IIR_RX_AVAILABLE);
    assert!(u.interrupt_asserted());
    assert_eq!(u.read(reg::DATA), b'a');
    assert_eq!(u.read(reg::LSR) & LSR_DATA_READY, 0);
    assert_eq!(u.read(reg::IIR_FCR), IIR_NONE);
    assert!(!u.interrupt_asserted());
    assert_eq!(*irq.0.borrow(), [true, false]);
}

#[test]
fn fifo_mode_holds_sixteen_bytes_in_order() {
    let (mut u, _) = uart();
    u.write(reg::IIR_FCR, FCR_ENABLE);
    assert_eq!(u.read(reg::IIR_FCR) & IIR_FIFO_ENABLED, IIR_FIFO_ENABLED);
    let input: Vec<u8> = (0..20).collect();
    assert_eq!(u.receive(&input), FIFO_DEPTH);
    assert_eq!(u.rx_space(), 0);
    for expected in 0..16u8 {
        assert_eq!(u.read(reg::DATA), expected);
    }
    assert_eq!(u.read(reg::LSR) & LSR_DATA_READY, 0);
    // FCR bit 1 clears the receive FIFO.
    u.receive(b"xyz");
    u.write(reg::IIR_FCR, FCR_ENABLE | FCR_CLEAR_RX);
    assert_eq!(u.read(reg::LSR) & LSR_DATA_READY, 0);
}

#[test]
fn thr_empty_interrupt_raised_by_enable_and_write_acked_by_iir_read() {
    let (mut u, _) = uart();
    u.write(reg::IER, IER_THR_EMPTY);
    assert!(
        u.interrupt_asserted(),
        "enabling ETBEI with empty THR interrupts"
    );
    assert_eq!(u.read(reg::IIR_FCR), IIR_THR_EMPTY);
    assert!(!u.interrupt_asserted(), "reading IIR acknowledges THRE");
    assert_eq!(u.read(reg::IIR_FCR), IIR_NONE);
    u.write(reg::DATA, b'x');
    assert!(u.interrupt_asserted());
    assert_eq!(u.read(reg::IIR_FCR), IIR_THR_EMPTY);
}

#[test]
fn rx_interrupt_has_priority_over_thr_empty() {
    let (mut u, _) = uart();
    u.write(reg::IER, IER_RX_AVAILABLE | IER_THR_EMPTY);
    u.receive(b"k");
    assert_eq!(u.read(reg::IIR_FCR), IIR_RX_AVAILABLE);
    u.read(reg::DATA);
    assert_eq!(u.read(reg::IIR_FCR), IIR_THR_EMPTY);
}

#[test]
fn loopback_echoes_data_and_mirrors_modem_lines() {
    let (mut u, _) = uart();
    u.write(reg::MCR, MCR_LOOP);
    assert_eq!(u.read(reg::MSR) & 0xf0, 0, "loop with all outputs low");
    u.write(reg::MCR, MCR_LOOP | MCR_RTS | MCR_OUT2);
    let msr = u.read(reg::MSR);
    assert_eq!(msr & 0xf0, MSR_CTS | MSR_DCD);
    assert_eq!(msr & MSR_DELTA_MASK, 0x01 | 0x08, "DCTS and DDCD");
    assert_eq!(u.read(reg::MSR) & MSR_DELTA_MASK, 0, "deltas clear on read");
    u.write(reg::DATA, 0x5a);
    assert!(
        u.sink_mut().0.is_empty(),
        "loopback does not reach the line"
    );
    assert_eq!(u.read(reg::DATA), 0x5a);
    assert_eq!(u.receive(b"q"), 0, "external input ignored in loopback");
}

#[test]
fn modem_status_interrupt() {
    let (mut u, _) = uart();
    u.write(reg::IER, IER_MODEM_STATUS);
    assert!(!u.interrupt_asserted());
    u.write(reg::MCR, MCR_LOOP | MCR_DTR);
    assert!(u.interrupt_asserted());
    assert_eq!(u.read(reg::IIR_FCR), IIR_MODEM_STATUS);
    u.read(reg::MSR);
    assert!(!u.interrupt_asserted());
}

#[test]
fn scratch_and_reserved_bits_and_undecoded_offsets() {
    let (mut u, _) = uart();
    u.write(reg::SCR, 0xa5);
    assert_eq!(u.read(reg::SCR), 0xa5);
    u.write(reg::IER, 0xff);
    assert_eq!(u.read(reg::IER), IER_IMPLEMENTED);
    u.write(reg::MCR, 0xff);
    assert_eq!(u.read(reg::MCR), MCR_IMPLEMENTED);
    u.write(reg::LSR, 0);
    assert_eq!(u.read(reg::LSR) & LSR_THR_EMPTY, LSR_THR_EMPTY);
    assert_eq!(u.read(9), 0xff);
    u.write(9, 1);
}

#[test]
fn default_modem_inputs_report_ready() {
    let (mut u, _) = uart();
    assert_eq!(u.read(reg::MSR), MSR_CTS | MSR_DSR | MSR_DCD);
}

#[test]
fn save_restore_round_trip_preserves_behaviour() {
    let (mut u, _) = uart();
    u.write(reg::IIR_FCR, FCR_ENABLE);
    u.write(reg::IER, IER_RX_AVAILABLE | IER_THR_EMPTY);
    u.write(reg::LCR, 0x83);
    u.write(reg::DATA, 3);
    u.write(reg::LCR, 0x03);
    u.write(reg::SCR, 0x42);
    u.receive(b"abc");
    let saved = u.save_state();
    let irq = RecordingIrq::default();
    let mut r = Uart16550::restore_state(&saved, irq.clone(), Buffer::default())
        .expect("own state restores");
    assert_eq!(r.registers(), u.registers());
    assert_eq!(r.save_state(), saved);
    assert_eq!(*irq.0.borrow(), [true], "line driven to the restored level");
    assert_eq!(r.read(reg::DATA), b'a');
    assert_eq!(r.read(reg::SCR), 0x42);
}

#[test]
fn restore_rejects_malformed_state() {
    let (mut u, _) = uart();
    u.write(reg::IIR_FCR, FCR_ENABLE);
    u.receive(b"xy");
    let good = u.save_state();
    let restore =
        |bytes: &[u8]| Uart16550::restore_state(bytes, NoInterrupt, Buffer::default()).map(|_| ());
    assert_eq!(restore(&good[..10]), Err(RestoreError::Truncated));
    assert_eq!(
        restore(&good[..good.len() - 1]),
        Err(RestoreError::Truncated)
    );
    let mut long = good.clone();
    long.push(0);
    assert_eq!(restore(&long), Err(RestoreError::TrailingBytes));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(restore(&bad), Err(RestoreError::BadMagic));
    let mut bad = good.clone();
    bad[4] = 2;
    assert_eq!(restore(&bad), Err(RestoreError::UnsupportedVersion(2)));
    let mut bad = good.clone();
    bad[8] = 0x10;
    assert_eq!(restore(&bad), Err(RestoreError::ReservedIerBits(0x10)));
    let mut bad = good.clone();
    bad[10] = 0x20;
    assert_eq!(restore(&bad), Err(RestoreError::ReservedMcrBits(0x20)));
    let mut bad = good.clone();
    bad[12] |= 0x80;
    assert_eq!(restore(&bad), Err(RestoreError::UnknownFlags(0x81)));
    let mut bad = good.clone();
    bad[13] = 0x10;
    assert_eq!(restore(&bad), Err(RestoreError::ReservedMsrBits(0x10)));
    // Two bytes queued but FIFO disabled: the holding register takes only one.
    let mut bad = good.clone();
    bad[12] &= !0x01;
    assert_eq!(
        restore(&bad),
        Err(RestoreError::FifoOverfull {
            len: 2,
            capacity: 1
        })
    );
}

proptest! {
    /// Arbitrary bytes never panic the decoder, and whatever it accepts re-encodes to the
    /// same bytes (the encoding is canonical).
    #[test]
    fn restore_of_arbitrary_bytes_is_safe_and_canonical(
        bytes in proptest::collection::vec(any::<u8>(), 0..MAX_STATE_LEN + 4)
    ) {
        if let Ok(u) = Uart16550::restore_state(&bytes, NoInterrupt, Buffer::default()) {
            prop_assert_eq!(u.save_state(), bytes);
        }
    }

    /// Any sequence of guest accesses leaves a state that saves and restores exactly.
    #[test]
    fn any_access_sequence_round_trips(
        ops in proptest::collection::vec((0u8..10, any::<u8>(), any::<bool>()), 0..64)
    ) {
        let (mut u, _) = uart();
        for (offset, value, is_write) in ops {
            if is_write { u.write(offset, value); } else { u.read(offset); }
            if value % 7 == 0 { u.receive(&[value]); }
        }
        let saved = u.save_state();
        let r = Uart16550::restore_state(&saved, NoInterrupt, Buffer::default())
            .expect("state produced by the device restores");
        prop_assert_eq!(r.registers(), u.registers());
        prop_assert_eq!(r.interrupt_asserted(), u.interrupt_asserted());
    }
}

#[test]
fn the_pc_irq_line_is_intr_gated_by_out2() {
    let (mut u, _irq) = uart();
    u.write(reg::IER, IER_RX_AVAILABLE);
    assert_eq!(u.receive(b"a"), 1);
    assert!(u.interrupt_asserted());
    assert!(!u.pc_irq_line(), "OUT2 clear: the IRQ driver is off");
    u.write(reg::MCR, MCR_OUT2);
    assert!(u.pc_irq_line());
    assert_eq!(u.read(reg::DATA), b'a');
    assert!(!u.pc_irq_line(), "INTR dropped");
}
