//! `vm console NAME` (issue 9 item 4) in Bochs: the operator's console attached to one of
//! two heartbeat VMs shows that VM's output raw (no `[NAME]` prefix) while the other VM's
//! lines keep theirs; what the operator types goes to the guest, not to the shell; Ctrl-]
//! returns to `tern> ` and the prefixes come back. (The heartbeat guest does not read its
//! serial input, so the test checks that typed text reaches no shell, not a guest echo.)

use std::time::Duration;
use system_tests::tern::{self, PROMPT};
use system_tests::{Emulator, EmulatorKind, TestResult};

const GUEST_TIMEOUT: Duration = Duration::from_secs(240);
const HB_CMDLINE: &str = "hb.interval_ms=250 hb.wss_mib=1 hb.dirty_pages_per_sec=20";

fn vm_section(name: &str) -> String {
    format!(
        "\n[vm {name}]\nimage = tern/guests/heartbeat.elf\nmemory = 8M\ncmdline = \"{HB_CMDLINE}\"\n"
    )
}

#[test]
#[ignore = "boots emulators: run with cargo xtask test"]
fn vm_console_attaches_raw_and_ctrl_bracket_detaches() -> TestResult {
    let config = format!(
        "[host]\nname = alpha\n\n[net]\nmode = none\n{}{}",
        vm_section("one"),
        vm_section("two")
    );
    let host = Emulator::builder(EmulatorKind::Bochs)
        .name("vm-console")
        .config(&config)
        .start()?;
    let mut host = tern::to_prompt(host)?.host;
    host.console().expect("[one] HB seq=", GUEST_TIMEOUT)?;

    let error = tern::command(&mut host, "vm console nosuch")?;
    assert!(error.contains("no VM named 'nosuch'"), "{error}");

    host.console().send_line("vm console one")?;
    host.console().expect(
        "attached to VM 'one' (escape character is Ctrl-])",
        GUEST_TIMEOUT,
    )?;
    // Raw: a beat of `one` starts a line without its prefix; `two` keeps its prefix.
    let attached = host.console().expect("\nHB seq=", GUEST_TIMEOUT)?;
    assert!(
        !attached.contains(PROMPT),
        "no prompt while attached: {attached}"
    );
    host.console().expect("[two] HB seq=", GUEST_TIMEOUT)?;
    let unprefixed = host.console().expect("\nHB seq=", GUEST_TIMEOUT)?;
    assert!(!unprefixed.contains("[one]"), "{unprefixed}");

    // Keystrokes belong to the guest: the shell neither runs nor echoes them.
    host.console().send_line("vm list")?;
    host.console()
        .expect_absent("unknown", Duration::from_secs(10))?;
    host.console()
        .expect_absent("vm list", Duration::from_secs(1))?;

    host.console().send_raw(&[0x1d])?;
    host.console().expect("detached", GUEST_TIMEOUT)?;
    host.console().expect(PROMPT, GUEST_TIMEOUT)?;
    let list = tern::command(&mut host, "vm list")?;
    assert!(list.contains("one") && list.contains("two"), "{list}");
    let info = tern::command(&mut host, "vm info one")?;
    assert!(info.contains("cpu model: host"), "{info}");
    host.console().expect("[one] HB seq=", GUEST_TIMEOUT)?;
    let transcript = host.console().transcript();
    assert!(!transcript.contains("CORRUPT"), "{transcript}");
    Ok(())
}
