//! CPU models across hosts with different CPUs (issue 12 item 1): alpha emulates a Tiger
//! Lake, beta a Westmere (Bochs `corei5_arrandale_m520`: VMX with EPT and unrestricted
//! guest, no PML, no AVX). A VM shown everything alpha offers (`cpu = host`) is refused by
//! beta with the list of what beta lacks; the same guest with the common baseline
//! (`cpu = nehalem`) migrates to beta and back and keeps beating, with no gap and no
//! corruption.

use system_tests::TestResult;
use system_tests::migration::{HB_CMDLINE, MigrationPair};

/// The older host's Bochs model: the oldest Bochs 2.7 model with EPT and unrestricted guest
/// (measured: `corei5_lynnfield_750` has EPT without unrestricted guest, `core2_penryn_t9600`
/// no EPT; tern needs both).
const OLDER_CPU: &str = "corei5_arrandale_m520";

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn a_host_model_vm_is_refused_by_an_older_cpu_and_a_baseline_vm_migrates_both_ways() -> TestResult {
    // `hb` (the scenario's guest, the last section of alpha's config) gets the baseline;
    // `hbnew` sees all of alpha.
    let hbnew = format!(
        "\n[vm hbnew]\nimage = tern/guests/heartbeat.elf\nmemory = 8M\ncmdline = \"{HB_CMDLINE}\"\ncpu = host\n"
    );
    // Beta is configured with a VM it cannot offer and one with a model nobody has.
    let beta_vms = "\n[vm newer]\nimage = tern/guests/heartbeat.elf\nmemory = 8M\ncpu = tigerlake\n\
                    \n[vm odd]\nimage = tern/guests/heartbeat.elf\nmemory = 8M\ncpu = pentium\n";
    let mut pair = MigrationPair::builder("cpu-models")
        .bochs_cpu(1, OLDER_CPU)
        .extra_config(0, &format!("cpu = nehalem\n{hbnew}"))
        .extra_config(1, beta_vms)
        .boot()?;
    let beta_boot = pair.hosts[1].console().transcript();
    assert!(
        beta_boot.contains(
            "vm newer: not created: CPU model 'tigerlake' needs features this host lacks: fma movbe xsave avx"
        ),
        "{beta_boot}"
    );
    assert!(
        beta_boot
            .contains("vm odd: not created: unknown CPU model 'pentium' (known: host, nehalem,"),
        "{beta_boot}"
    );

    let models = pair.command(1, "info cpu-models")?;
    assert!(models.contains("nehalem      yes"), "{models}");
    assert!(models.contains("sandybridge  no   lacks:"), "{models}");
    assert!(models.contains("tigerlake    no   lacks:"), "{models}");
    let list = pair.command(0, "vm list")?;
    assert!(list.contains("hbnew"), "{list}");

    // The host-model VM: beta names what it lacks, alpha keeps the VM.
    let answer = pair.migrate(0, "", "hbnew")?;
    assert!(answer.contains("live migration of 'hbnew'"), "{answer}");
    let failure = pair.expect_rolled_back()?;
    assert!(failure.contains("CPU incompatible"), "{failure}");
    for feature in ["avx", "avx2", "bmi2"] {
        assert!(failure.contains(feature), "{feature} not named: {failure}");
    }

    // The baseline VM goes to beta ...
    let answer = pair.migrate(0, "", "hb")?;
    assert!(answer.contains("live migration of 'hb'"), "{answer}");
    let there = pair.expect_completed(0)?;
    pair.assert_arrived(1, &there)?;
    let info = pair.command(1, "vm info hb")?;
    assert!(
        info.contains("cpu model: nehalem"),
        "the model travelled: {info}"
    );
    // ... and comes back to alpha.
    pair.listen_on(0, 4444)?;
    let answer = pair.migrate(1, "", "hb")?;
    assert!(answer.contains("live migration of 'hb'"), "{answer}");
    let back = pair.expect_completed(1)?;
    pair.assert_arrived(0, &back)?;
    pair.assert_no_corruption();
    Ok(())
}
