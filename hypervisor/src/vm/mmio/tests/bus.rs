use alloc::vec::Vec;

use crate::vm::mmio::{MmioBus, MmioBusError, MmioHandler, MmioRegion};

/// Records accesses; reads return the offset with the size in the top byte.
#[derive(Default)]
pub(super) struct Recorder {
    pub(super) writes: Vec<(u64, u8, u64)>,
}

impl MmioHandler for Recorder {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        (u64::from(size) << 56) | offset
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        self.writes.push((offset, size, value));
    }
}

#[test]
fn routes_by_address_with_offsets() {
    let mut a = Recorder::default();
    let mut b = Recorder::default();
    {
        let mut bus = MmioBus::new();
        bus.add(
            MmioRegion {
                base: 0xfec0_0000,
                len: 0x1000,
            },
            &mut a,
        )
        .unwrap();
        bus.add(
            MmioRegion {
                base: 0xd000_0000,
                len: 0x200,
            },
            &mut b,
        )
        .unwrap();
        assert!(bus.covers(0xfec0_0fff));
        assert!(!bus.covers(0xfec0_1000));
        assert_eq!(bus.read(0xfec0_0010, 8), Some((8 << 56) | 0x10));
        assert_eq!(bus.read(0xfec0_0010, 4), Some(0x10));
        assert!(bus.write(0xd000_0100, 4, 0x1_2345_6789));
        assert!(bus.write(0xfec0_0000, 1, 0xab));
        // Nothing decodes these, or the access straddles a region's end.
        assert_eq!(bus.read(0xd000_0200, 4), None);
        assert_eq!(bus.read(0xd000_01fe, 4), None);
        assert!(!bus.write(0x1000, 4, 0));
    }
    assert_eq!(b.writes, [(0x100, 4, 0x2345_6789)]);
    assert_eq!(a.writes, [(0, 1, 0xab)]);
}

#[test]
fn refuses_overlaps_empty_wrapping_and_too_many() {
    let mut handlers: Vec<Recorder> = (0..10).map(|_| Recorder::default()).collect();
    let mut bus = MmioBus::new();
    let mut it = handlers.iter_mut();
    bus.add(
        MmioRegion {
            base: 0x1000,
            len: 0x1000,
        },
        it.next().unwrap(),
    )
    .unwrap();
    let overlap = MmioRegion {
        base: 0x1fff,
        len: 2,
    };
    assert_eq!(
        bus.add(overlap, it.next().unwrap()),
        Err(MmioBusError::Overlap(overlap))
    );
    let empty = MmioRegion {
        base: 0x9000,
        len: 0,
    };
    assert_eq!(
        bus.add(empty, it.next().unwrap()),
        Err(MmioBusError::BadRegion(empty))
    );
    let wraps = MmioRegion {
        base: u64::MAX,
        len: 2,
    };
    assert_eq!(
        bus.add(wraps, it.next().unwrap()),
        Err(MmioBusError::BadRegion(wraps))
    );
    for (i, h) in it.by_ref().take(4).enumerate() {
        let base = 0x10_0000 * (i as u64 + 1);
        bus.add(MmioRegion { base, len: 0x1000 }, h).unwrap();
    }
    // 5 of 8 used; fill the remaining 3 from fresh handlers.
    let mut more: Vec<Recorder> = (0..4).map(|_| Recorder::default()).collect();
    let mut extra = more.iter_mut();
    for i in 0..3u64 {
        let base = 0x100_0000 * (i + 1);
        bus.add(MmioRegion { base, len: 0x1000 }, extra.next().unwrap())
            .unwrap();
    }
    assert_eq!(
        bus.add(
            MmioRegion {
                base: 0x7000_0000,
                len: 1
            },
            extra.next().unwrap()
        ),
        Err(MmioBusError::Full)
    );
}
