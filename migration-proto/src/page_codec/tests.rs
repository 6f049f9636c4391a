//! Round trips and rejections of the page codec.

use super::*;
use crate::dirty::DirtyBitmap;
use crate::wire::DecodeError;
use alloc::vec;
use alloc::vec::Vec;

fn sample_pages() -> Vec<u8> {
    let mut pages = vec![0u8; 4 * PAGE_SIZE];
    for (i, b) in pages[PAGE_SIZE..2 * PAGE_SIZE].iter_mut().enumerate() {
        *b = b"the quick brown fox "[i % 20];
    }
    let mut x = 0x1234_5678_9abc_def0u64;
    for b in &mut pages[2 * PAGE_SIZE..3 * PAGE_SIZE] {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    pages[4 * PAGE_SIZE - 1] = 1;
    pages
}

#[test]
fn every_encoding_round_trips() {
    let pages = sample_pages();
    let all = Capabilities::ZERO_PAGES.union(Capabilities::LZ4_PAGES);
    let mut enc = PageEncoder::new();
    let mut out = Vec::new();
    let counts = enc
        .encode_run(0x10_0000, &pages, all, None, &mut out)
        .unwrap();
    assert_eq!(
        counts,
        PageCounts {
            zero: 1,
            lz4: 2,
            raw: 1,
            delta: 0
        }
    );
    let view = PageRunView::parse(&out).unwrap();
    assert_eq!(view.first_gpa(), 0x10_0000);
    assert_eq!(view.required_capabilities(), all);
    assert_eq!(view.decode().unwrap(), pages);

    let mut plain = Vec::new();
    let counts = enc
        .encode_run(0, &pages, Capabilities::NONE, None, &mut plain)
        .unwrap();
    assert_eq!(counts.raw, 4);
    let view = PageRunView::parse(&plain).unwrap();
    assert_eq!(view.required_capabilities(), Capabilities::NONE);
    assert_eq!(view.decode().unwrap(), pages);
}

#[test]
fn tracked_decode_skips_known_zero_pages_only() {
    let pages = sample_pages();
    let all = Capabilities::ZERO_PAGES.union(Capabilities::LZ4_PAGES);
    let mut enc = PageEncoder::new();
    let mut wire = Vec::new();
    enc.encode_run(0, &pages, all, None, &mut wire).unwrap();
    let mut mem = vec![0u8; 4 * PAGE_SIZE];
    let mut maybe_nonzero = DirtyBitmap::new(4);
    PageRunView::parse(&wire)
        .unwrap()
        .decode_into_tracked(&mut mem, &mut maybe_nonzero, 0)
        .unwrap();
    assert_eq!(mem, pages);
    assert_eq!(maybe_nonzero.iter_set().collect::<Vec<_>>(), [1, 2, 3]);
    // The pages become zero: tracked pages are cleared again.
    let zeros = vec![0u8; 4 * PAGE_SIZE];
    let mut wire = Vec::new();
    enc.encode_run(0, &zeros, all, None, &mut wire).unwrap();
    PageRunView::parse(&wire)
        .unwrap()
        .decode_into_tracked(&mut mem, &mut maybe_nonzero, 0)
        .unwrap();
    assert_eq!(mem, zeros);
    assert_eq!(maybe_nonzero.count(), 0);
}

#[test]
fn malformed_runs_are_rejected() {
    let mut enc = PageEncoder::new();
    assert_eq!(
        enc.encode_run(
            1,
            &[0; PAGE_SIZE],
            Capabilities::NONE,
            None,
            &mut Vec::new()
        ),
        Err(PageRunError::Unaligned(1))
    );
    assert!(
        enc.encode_run(0, &[0; 100], Capabilities::NONE, None, &mut Vec::new())
            .is_err()
    );
    let mut out = Vec::new();
    enc.encode_run(0, &sample_pages(), Capabilities::LZ4_PAGES, None, &mut out)
        .unwrap();
    assert!(PageRunView::parse(&out[..out.len() - 1]).is_err());
    let mut longer = out.clone();
    longer.push(0);
    assert_eq!(
        PageRunView::parse(&longer).err(),
        Some(DecodeError::TrailingBytes { count: 1 })
    );
    // Corrupt the LZ4 data of page 1: must fail cleanly, not panic.
    let mut bad = out.clone();
    let data_start = RUN_HEADER_LEN + 8;
    for b in &mut bad[data_start..data_start + 40] {
        *b = 0xff;
    }
    let view = PageRunView::parse(&bad).unwrap();
    assert!(view.decode().is_err());
}

#[test]
fn random_pages_skip_lz4_and_text_does_not() {
    let pages = sample_pages();
    assert!(looks_incompressible(&pages[2 * PAGE_SIZE..3 * PAGE_SIZE]));
    assert!(!looks_incompressible(&pages[PAGE_SIZE..2 * PAGE_SIZE]));
    assert!(is_zero_page(&pages[..PAGE_SIZE]));
    assert!(!is_zero_page(&pages[3 * PAGE_SIZE..]));
}

#[test]
fn a_page_sent_again_goes_as_a_small_delta_and_applies_to_the_old_copy() {
    use super::DeltaCache;
    let caps = Capabilities::ZERO_PAGES
        .union(Capabilities::LZ4_PAGES)
        .union(Capabilities::DELTA_PAGES);
    let mut cache = DeltaCache::try_new(8 * PAGE_SIZE).unwrap();
    let mut enc = PageEncoder::new();
    // Two incompressible pages: the first copy goes raw.
    let mut memory: Vec<u8> = (0..2 * PAGE_SIZE)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let mut first = Vec::new();
    let counts = enc
        .encode_run(0x2000, &memory, caps, Some(&mut cache), &mut first)
        .unwrap();
    assert_eq!(counts.raw, 2);
    let mut destination = vec![0u8; 2 * PAGE_SIZE];
    destination.copy_from_slice(&PageRunView::parse(&first).unwrap().decode().unwrap());

    // The guest rewrites 16 bytes of the second page.
    memory[PAGE_SIZE + 100..PAGE_SIZE + 116].fill(0xee);
    let mut second = Vec::new();
    let counts = enc
        .encode_run(0x2000, &memory, caps, Some(&mut cache), &mut second)
        .unwrap();
    assert_eq!(counts.delta, 2, "{counts:?}");
    assert!(
        second.len() < 200,
        "deltas of 2 pages took {} bytes",
        second.len()
    );
    let view = PageRunView::parse(&second).unwrap();
    assert_eq!(view.required_capabilities(), Capabilities::DELTA_PAGES);
    // A fresh buffer has no old copy to apply a delta to.
    assert!(view.decode().is_err());
    let mut scratch = vec![0u8; PAGE_SIZE];
    for (index, ((enc, stored), page)) in view
        .stored_pages()
        .zip(destination.chunks_exact_mut(PAGE_SIZE))
        .enumerate()
    {
        super::decode_page(index, enc, stored, page, Some(&mut scratch), |_| {}).unwrap();
    }
    assert_eq!(destination, memory);
}

#[test]
fn delta_descriptors_are_checked() {
    use super::PageEncoding;
    assert_eq!(PageEncoding::from_descriptor(0x8000), None, "empty delta");
    assert_eq!(
        PageEncoding::from_descriptor(0x9000),
        None,
        "delta of a whole page"
    );
    assert_eq!(PageEncoding::from_descriptor(0x1001), None);
    assert_eq!(
        PageEncoding::from_descriptor(0x8010),
        Some(PageEncoding::Delta(0x10))
    );
    for e in [
        PageEncoding::Zero,
        PageEncoding::Raw,
        PageEncoding::Lz4(7),
        PageEncoding::Delta(4095),
    ] {
        assert_eq!(PageEncoding::from_descriptor(e.descriptor()), Some(e));
    }
}
