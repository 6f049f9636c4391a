use super::*;

/// CPUID leaf 0xD of a CPU with x87, SSE, AVX and the three AVX-512 components at their
/// usual standard-format offsets.
fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let r = |eax, ebx, ecx, edx| CpuidResult { eax, ebx, ecx, edx };
    match (leaf, subleaf) {
        (0xd, 0) => r(0xe7, 832, 2688, 0),
        (0xd, 2) => r(256, 576, 0, 0),
        (0xd, 5) => r(64, 1088, 0, 0),
        (0xd, 6) => r(512, 1152, 0, 0),
        (0xd, 7) => r(1024, 1664, 0, 0),
        _ => r(0, 0, 0, 0),
    }
}

fn avx_layout() -> XsaveLayout {
    XsaveLayout::from_cpuid(0b111, 0xffff, cpuid)
}

/// An area as a tern source sends it: x87, SSE and AVX saved.
fn sent_area() -> Vec<u8> {
    let mut a = alloc::vec![0u8; 832];
    a[MXCSR..MXCSR + 4].copy_from_slice(&MXCSR_AT_RESET.to_le_bytes());
    a[XSTATE_BV] = 0b111;
    a[160] = 0x5a; // XMM0
    a[600] = 0xa5; // upper half of YMM1
    a
}

fn refused(edit: impl FnOnce(&mut Vec<u8>), layout: &XsaveLayout, why: XsaveRefusal) {
    let mut a = sent_area();
    edit(&mut a);
    assert_eq!(validate(&a, layout), Err(why));
}

#[test]
fn layout_takes_only_offered_components_the_host_has() {
    let l = avx_layout();
    assert_eq!(l.mask, 0b111);
    assert_eq!(l.area_len, 832);
    assert_eq!(l.component(2), Some((576, 256)));
    assert_eq!(l.component(5), None, "AVX-512 is not offered");
    assert_eq!(l.mxcsr_mask, 0xffff);
    // A host without AVX: x87 + SSE in the legacy region only.
    let sse = XsaveLayout::from_cpuid(0b111, 0, |l, s| match (l, s) {
        (0xd, 0) => CpuidResult {
            eax: 0b11,
            ebx: 576,
            ecx: 576,
            edx: 0,
        },
        _ => cpuid(l, s),
    });
    assert_eq!((sse.mask, sse.area_len), (0b11, MIN_LEN));
    assert_eq!(
        sse.mxcsr_mask, MXCSR_MASK_DEFAULT,
        "0 means the default mask"
    );
    let wide = XsaveLayout::from_cpuid(0xe7, 0, cpuid);
    assert_eq!(wide.area_len, 2688);
    assert_eq!(wide.standard_len(0b11), MIN_LEN);
    assert_eq!(wide.standard_len(0b111), 832);
}

#[test]
fn area_is_aligned_and_starts_in_the_reset_state() {
    let l = avx_layout();
    let mut area = XsaveArea::at_reset(&l).unwrap();
    assert_eq!(area.as_mut_ptr() as usize % 64, 0);
    assert_eq!(area.bytes().len(), 832);
    assert_eq!(u32_at(area.bytes(), MXCSR), MXCSR_AT_RESET);
    assert_eq!(u64_at(area.bytes(), XSTATE_BV), 0);
    // Nothing saved yet: only the legacy region and header travel, and they load.
    let sent = area.export(&l);
    assert_eq!(sent.len(), MIN_LEN);
    assert_eq!(validate(&sent, &l), Ok(()));
    // An odd size is rounded up to whole blocks.
    let odd = XsaveLayout { area_len: 600, ..l };
    assert_eq!(XsaveArea::at_reset(&odd).unwrap().bytes().len(), 640);
}

#[test]
fn export_then_import_round_trips() {
    let l = avx_layout();
    let mut src = XsaveArea::at_reset(&l).unwrap();
    src.bytes_mut().copy_from_slice(&sent_area());
    let wire = src.export(&l);
    assert_eq!(wire, sent_area());
    let mut dst = XsaveArea::at_reset(&l).unwrap();
    dst.bytes_mut().fill(0xee);
    dst.import(&wire, &l).unwrap();
    assert_eq!(dst.bytes(), src.bytes());
    // A shorter area (no AVX state) clears what lies past it.
    let mut legacy = sent_area();
    legacy.truncate(MIN_LEN);
    legacy[XSTATE_BV] = 0b11;
    dst.import(&legacy, &l).unwrap();
    assert!(dst.bytes()[MIN_LEN..].iter().all(|&b| b == 0));
    assert_eq!(&dst.bytes()[..MIN_LEN], &legacy[..]);
}

#[test]
fn export_stops_after_the_last_saved_component() {
    let l = avx_layout();
    let mut area = XsaveArea::at_reset(&l).unwrap();
    area.bytes_mut()[XSTATE_BV] = 0b011; // AVX initial: its bytes need not travel
    assert_eq!(area.export(&l).len(), MIN_LEN);
    area.bytes_mut()[XSTATE_BV] = 0b101;
    assert_eq!(area.export(&l).len(), 832);
}

#[test]
fn a_sound_area_is_accepted() {
    assert_eq!(validate(&sent_area(), &avx_layout()), Ok(()));
}

#[test]
fn each_header_fault_is_refused() {
    let l = avx_layout();
    refused(|a| a[XCOMP_BV + 7] = 0x80, &l, XsaveRefusal::Compacted);
    refused(|a| a[XCOMP_BV] = 1, &l, XsaveRefusal::Compacted);
    refused(|a| a[XCOMP_BV + 8] = 1, &l, XsaveRefusal::ReservedHeader);
    refused(|a| a[MIN_LEN - 1] = 1, &l, XsaveRefusal::ReservedHeader);
    refused(
        |a| a[XSTATE_BV] = 0b1111,
        &l,
        XsaveRefusal::UnsupportedComponent,
    );
    refused(
        |a| a[XSTATE_BV + 7] = 0x80,
        &l,
        XsaveRefusal::UnsupportedComponent,
    );
}

#[test]
fn sizes_are_checked() {
    let l = avx_layout();
    refused(|a| a.truncate(MIN_LEN - 1), &l, XsaveRefusal::TooShort);
    refused(|a| a.clear(), &l, XsaveRefusal::TooShort);
    refused(|a| a.push(0), &l, XsaveRefusal::TooLong);
    // AVX marked saved but its bytes missing.
    refused(|a| a.truncate(MIN_LEN), &l, XsaveRefusal::ComponentPastEnd);
    refused(|a| a.truncate(831), &l, XsaveRefusal::ComponentPastEnd);
}

#[test]
fn reserved_mxcsr_bits_are_refused_per_host_mask() {
    let l = avx_layout();
    refused(|a| a[MXCSR + 2] = 1, &l, XsaveRefusal::ReservedMxcsr);
    // DAZ (bit 6) is allowed by a mask of 0xffff but not by the default.
    let mut daz = sent_area();
    daz[MXCSR] |= 0x40;
    assert_eq!(validate(&daz, &l), Ok(()));
    let old = XsaveLayout::from_cpuid(0b111, 0, cpuid);
    assert_eq!(validate(&daz, &old), Err(XsaveRefusal::ReservedMxcsr));
}

#[test]
fn a_host_without_avx_refuses_avx_state() {
    let sse_only = XsaveLayout::from_cpuid(0b111, 0xffff, |l, s| match (l, s) {
        (0xd, 0) => CpuidResult {
            eax: 0b11,
            ebx: 576,
            ecx: 576,
            edx: 0,
        },
        _ => cpuid(l, s),
    });
    // Refused for the AVX state it carries, whatever its length.
    assert_eq!(
        validate(&sent_area(), &sse_only),
        Err(XsaveRefusal::UnsupportedComponent)
    );
    let mut a = sent_area();
    a.truncate(MIN_LEN);
    assert_eq!(
        validate(&a, &sse_only),
        Err(XsaveRefusal::UnsupportedComponent)
    );
    a[XSTATE_BV] = 0b11;
    assert_eq!(validate(&a, &sse_only), Ok(()));
    // Without AVX state but padded past this host's area: too long.
    a.resize(832, 0);
    assert_eq!(validate(&a, &sse_only), Err(XsaveRefusal::TooLong));
}

#[test]
fn a_host_without_xsave_refuses_every_area() {
    let none = XsaveLayout::none();
    assert_eq!(
        validate(&sent_area(), &none),
        Err(XsaveRefusal::NotSwitched)
    );
    let mut a = sent_area();
    a.truncate(MIN_LEN);
    a[XSTATE_BV] = 0;
    assert_eq!(validate(&a, &none), Err(XsaveRefusal::NotSwitched));
}

#[test]
fn import_refuses_without_touching_the_area() {
    let l = avx_layout();
    let mut area = XsaveArea::at_reset(&l).unwrap();
    area.bytes_mut().copy_from_slice(&sent_area());
    let mut bad = sent_area();
    bad[XCOMP_BV + 7] = 0x80;
    assert_eq!(area.import(&bad, &l), Err(XsaveRefusal::Compacted));
    assert_eq!(area.bytes(), &sent_area()[..]);
}

#[test]
fn reset_clears_saved_state() {
    let l = avx_layout();
    let mut area = XsaveArea::at_reset(&l).unwrap();
    area.bytes_mut().copy_from_slice(&sent_area());
    area.reset();
    assert_eq!(u64_at(area.bytes(), XSTATE_BV), 0);
    assert_eq!(u32_at(area.bytes(), MXCSR), MXCSR_AT_RESET);
    assert_eq!(area.bytes()[160], 0);
}

#[test]
fn a_host_without_xsave_takes_x87_and_sse_state_and_refuses_avx() {
    // The regression: a Westmere-class destination (FXSR, no XSAVE) refused every area a
    // Tiger Lake source sent for a baseline VM, so such a VM could not migrate at all.
    let legacy = XsaveLayout::legacy(0xffff);
    assert_eq!(legacy.mask, 0b11);
    assert_eq!(legacy.area_len, MIN_LEN);
    assert_eq!(legacy.loadable_xcr0(), 1, "no XSETBV without XSAVE");
    let mut a = sent_area();
    a.truncate(MIN_LEN);
    a[XSTATE_BV] = 0b11;
    assert_eq!(validate(&a, &legacy), Ok(()));
    assert_eq!(
        validate(&sent_area(), &legacy),
        Err(XsaveRefusal::UnsupportedComponent)
    );
    let mut area = XsaveArea::at_reset(&legacy).unwrap();
    assert_eq!(area.import(&a, &legacy), Ok(()));
    assert_eq!(area.bytes()[160], 0x5a, "XMM0 arrived");
}

#[test]
fn fxrstor_gets_initial_components_written_out() {
    let legacy = XsaveLayout::legacy(0xffff);
    let mut area = XsaveArea::at_reset(&legacy).unwrap();
    // A reset area marks both initial: FXRSTOR must see FCW 0x037F, not 0 (all x87
    // exceptions unmasked), and keep MXCSR.
    area.bytes_mut()[40] = 0x77; // stale ST0 byte
    area.bytes_mut()[170] = 0x66; // stale XMM0 byte
    area.prepare_fxrstor();
    let b = area.bytes();
    assert_eq!(u16::from_le_bytes([b[0], b[1]]), FCW_AT_INIT);
    assert_eq!((b[40], b[170]), (0, 0));
    assert_eq!(u32_at(b, MXCSR), MXCSR_AT_RESET);
    assert_eq!(u64_at(b, XSTATE_BV), 0b11);
    // Components marked saved are loaded as they are.
    area.bytes_mut()[0] = 0x7f;
    area.bytes_mut()[1] = 0x02;
    area.bytes_mut()[170] = 0x66;
    area.prepare_fxrstor();
    assert_eq!(
        (area.bytes()[0], area.bytes()[1], area.bytes()[170]),
        (0x7f, 0x02, 0x66)
    );
}

#[test]
fn after_fxsave_the_area_is_standard_format_with_x87_and_sse() {
    let legacy = XsaveLayout::legacy(0xffff);
    let mut area = XsaveArea::at_reset(&legacy).unwrap();
    area.bytes_mut()[XCOMP_BV] = 0xff; // whatever was there
    area.after_fxsave();
    assert_eq!(u64_at(area.bytes(), XSTATE_BV), 0b11);
    assert!(area.bytes()[XSTATE_BV + 8..MIN_LEN].iter().all(|&b| b == 0));
    assert_eq!(validate(&area.export(&legacy), &avx_layout()), Ok(()));
}
