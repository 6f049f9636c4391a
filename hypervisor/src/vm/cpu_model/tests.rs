use super::*;

fn bits(m: &FeatureMasks) -> u32 {
    m.0.iter().map(|r| r.count_ones()).sum()
}

#[test]
fn every_name_in_the_model_tables_is_a_known_feature() {
    for part in [
        X86_64_BASE,
        NEHALEM,
        SANDYBRIDGE,
        HASWELL,
        SKYLAKE,
        TIGERLAKE,
    ] {
        for name in part {
            assert!(
                features::by_name(name).is_some(),
                "{name} is not in FEATURES"
            );
        }
    }
    for &name in &EMULATED {
        assert!(features::by_name(name).is_some(), "{name}");
    }
}

#[test]
fn each_generation_is_a_strict_superset_of_the_one_before() {
    for pair in NAMED_MODELS.windows(2) {
        let (old, new) = (pair[0].features(), pair[1].features());
        assert!(
            old.missing_from(&new).is_empty(),
            "{} lacks something of {}",
            pair[1].name,
            pair[0].name
        );
        assert!(bits(&new) > bits(&old), "{} adds nothing", pair[1].name);
    }
    let tgl = CpuModel::parse("tigerlake")
        .unwrap()
        .masks_on(&FeatureMasks::all());
    assert!(tgl.is_ok());
}

#[test]
fn a_host_offers_its_allowed_features_plus_the_emulated_ones() {
    // A CPU that claims every bit, VMX and MONITOR included.
    let everything = |_, _| CpuidResult {
        eax: u32::MAX,
        ebx: u32::MAX,
        ecx: u32::MAX,
        edx: u32::MAX,
    };
    assert_eq!(FeatureMasks::host_offer(everything), FeatureMasks::all());
    let offer = FeatureMasks::host_offer(everything);
    assert_eq!(
        offer.mask(1, 0, Ecx).unwrap() & (1 << 5),
        0,
        "no nested VMX"
    );
    // A CPU with nothing still gets the APIC, x2APIC, TSC deadline and MTRRs from tern.
    let nothing = FeatureMasks::host_offer(|_, _| CpuidResult::default());
    for name in EMULATED {
        assert!(nothing.has(name), "{name}");
    }
    assert!(!nothing.has("sse2"));
}

#[test]
fn a_named_model_on_a_host_without_it_names_what_is_missing() {
    let haswell_host = NAMED_MODELS[2].features();
    let tgl = CpuModel::parse("TigerLake").unwrap();
    assert_eq!(tgl.name(), "tigerlake");
    let missing = tgl.masks_on(&haswell_host).unwrap_err();
    assert_eq!(
        missing,
        [
            "rdseed",
            "adx",
            "smap",
            "clflushopt",
            "clwb",
            "sha_ni",
            "gfni",
            "vaes",
            "vpclmulqdq",
            "rdpid",
            "movdiri",
            "movdir64b",
            "fsrm",
            "md_clear",
            "3dnowprefetch",
            "pdpe1gb",
        ]
    );
    // `host` always fits and shows exactly the offer.
    assert_eq!(CpuModel::Host.masks_on(&haswell_host), Ok(haswell_host));
    // The older model fits the newer host and shows only its own features.
    let nehalem = CpuModel::parse("nehalem").unwrap();
    let shown = nehalem.masks_on(&FeatureMasks::all()).unwrap();
    assert!(!shown.has("avx"));
    assert!(shown.has("sse4_2"));
}

#[test]
fn unknown_model_message_lists_the_known_ones() {
    let e = CpuModel::parse("pentium").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown CPU model 'pentium' (known: host, nehalem, sandybridge, haswell, skylake, tigerlake)"
    );
}

#[test]
fn xcr0_follows_xsave_and_avx() {
    assert_eq!(NAMED_MODELS[0].features().xcr0(), 0b001);
    assert_eq!(NAMED_MODELS[1].features().xcr0(), 0b111);
    assert_eq!(FeatureMasks::from_names(["xsave"]).xcr0(), 0b011);
}

#[test]
fn wire_form_round_trips_and_drops_what_tern_never_shows() {
    let m = NAMED_MODELS[3].features();
    assert_eq!(FeatureMasks::from_bytes(&m.to_bytes()), Some(m));
    assert_eq!(FeatureMasks::from_bytes(&[0; 27]), None);
    let everything = [0xff; 28];
    assert_eq!(
        FeatureMasks::from_bytes(&everything),
        Some(FeatureMasks::all())
    );
}

#[test]
fn info_cpu_models_says_what_runs_here_and_what_lacks() {
    let lines = describe_models(&NAMED_MODELS[1].features());
    assert_eq!(lines.len(), NAMED_MODELS.len() + 1);
    assert!(lines[0].starts_with("host         yes"), "{}", lines[0]);
    assert!(
        lines[1].starts_with("nehalem      yes  SSE4.2"),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with("sandybridge  yes"), "{}", lines[2]);
    assert!(
        lines[3].starts_with("haswell      no   lacks: fma movbe f16c rdrand fsgsbase bmi1 avx2"),
        "{}",
        lines[3]
    );
}

#[test]
fn masks_are_named_for_vm_info() {
    let offer = FeatureMasks::all();
    assert_eq!(model_name(&NAMED_MODELS[0].features(), &offer), "nehalem");
    assert_eq!(model_name(&offer, &offer), "host");
    let other_host = NAMED_MODELS[2]
        .features()
        .intersect(&FeatureMasks::from_names(["avx"]));
    assert_eq!(model_name(&other_host, &offer), "custom");
}
