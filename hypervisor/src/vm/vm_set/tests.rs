use alloc::string::String;
use alloc::vec::Vec;

use super::*;
use crate::vm::state::{InvalidTransition, transition};

/// A VM that records its slices and follows the real state machine.
struct FakeVm {
    name: &'static str,
    state: VmState,
    slices: u32,
    idle: bool,
    fail: bool,
}

fn vm(name: &'static str) -> FakeVm {
    FakeVm {
        name,
        state: VmState::Created,
        slices: 0,
        idle: false,
        fail: false,
    }
}

impl ManagedVm for FakeVm {
    type Context = Vec<&'static str>;
    type Error = InvalidTransition;

    fn name(&self) -> &str {
        self.name
    }
    fn state(&self) -> VmState {
        self.state
    }
    fn ram_bytes(&self) -> u64 {
        32 << 20
    }
    fn total_exits(&self) -> u64 {
        u64::from(self.slices) * 10
    }
    fn write_info(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        writeln!(
            out,
            "{}: {} slices={}",
            self.name,
            self.state.name(),
            self.slices
        )
    }
    fn command(&mut self, _ctx: &mut Self::Context, cmd: VmCommand) -> Result<(), Self::Error> {
        self.state = transition(self.state, cmd)?.0;
        Ok(())
    }
    fn run_slice(
        &mut self,
        ctx: &mut Self::Context,
        _ticks: u64,
    ) -> Result<SliceResult, Self::Error> {
        if self.fail {
            return Err(InvalidTransition {
                from: self.state,
                command: VmCommand::Resume,
            });
        }
        if self.idle {
            return Ok(SliceResult::Idle);
        }
        self.slices += 1;
        ctx.push(self.name);
        Ok(SliceResult::Ran)
    }
}

fn run(set: &mut VmSet<FakeVm>, line: &str) -> String {
    let mut out = String::new();
    set.execute(&mut Vec::new(), line, &mut out).unwrap();
    out
}

#[test]
fn round_robin_skips_stopped_paused_and_idle_vms() {
    let mut set = VmSet::new();
    for name in ["a", "b", "c", "d"] {
        assert!(set.add(vm(name)).is_ok());
    }
    assert!(set.add(vm("a")).is_err(), "names are unique");
    let mut ctx = Vec::new();
    assert_eq!(
        set.run_next_slice(&mut ctx, 1, |_, _| {}),
        SliceResult::Idle
    );
    run(&mut set, "start a");
    run(&mut set, "start b");
    run(&mut set, "start c");
    run(&mut set, "pause b");
    set.vms[2].idle = true;
    for _ in 0..4 {
        set.run_next_slice(&mut ctx, 1, |_, _| {});
    }
    assert_eq!(ctx, ["a", "a", "a", "a"]);
    run(&mut set, "resume b");
    ctx.clear();
    for _ in 0..4 {
        set.run_next_slice(&mut ctx, 1, |_, _| {});
    }
    assert_eq!(ctx, ["b", "a", "b", "a"]);
}

#[test]
fn slice_errors_stop_the_vm_and_are_reported() {
    let mut set = VmSet::new();
    let _ = set.add(vm("x"));
    run(&mut set, "start x");
    set.vms[0].fail = true;
    let mut reports = Vec::new();
    let r = set.run_next_slice(&mut Vec::new(), 1, |name, e| {
        reports.push(alloc::format!("{name}: {e}"))
    });
    assert_eq!(r, SliceResult::Crashed);
    assert_eq!(set.vms[0].state, VmState::Stopped);
    assert_eq!(reports.len(), 1);
}

#[test]
fn console_commands_answer_every_line() {
    let mut set = VmSet::new();
    assert_eq!(run(&mut set, "list"), "no VMs configured\n");
    let _ = set.add(vm("hb1"));
    assert_eq!(run(&mut set, "start hb1"), "hb1: running\n");
    assert_eq!(
        run(&mut set, "start hb1"),
        "vm hb1: cannot Start a VM that is running\n"
    );
    assert_eq!(run(&mut set, "stop nope"), "vm: no VM named 'nope'\n");
    assert_eq!(run(&mut set, "info hb1"), "hb1: running slices=0\n");
    let list = run(&mut set, "list");
    assert!(list.starts_with("NAME"));
    assert!(list.contains("hb1              running        32"));
    assert!(run(&mut set, "frobnicate").starts_with("vm: unknown subcommand 'frobnicate'"));
}

#[test]
fn a_vm_being_migrated_out_refuses_operator_commands_until_the_hold_ends() {
    let mut set = VmSet::new();
    let _ = set.add(vm("hb"));
    run(&mut set, "start hb");
    run(&mut set, "pause hb"); // as the source engine does at stop-and-copy
    assert!(set.hold("hb", VmHold::MigratingOut));
    for line in ["resume hb", "stop hb", "start hb", "pause hb"] {
        assert!(
            run(&mut set, line).contains("being migrated out"),
            "{line} must be refused"
        );
    }
    assert_eq!(set.vms[0].state, VmState::Paused);
    assert!(run(&mut set, "list").contains("hb               migrating"));
    set.release_hold("hb");
    assert_eq!(run(&mut set, "resume hb"), "hb: running\n");
    assert!(!set.hold("nope", VmHold::MigratingOut));
}

#[test]
fn an_in_doubt_vm_is_listed_never_scheduled_and_refuses_commands() {
    let mut set = VmSet::new();
    let _ = set.add(vm("hb"));
    run(&mut set, "start hb");
    set.hold("hb", VmHold::InDoubt);
    assert!(run(&mut set, "list").contains("hb               in-doubt"));
    assert!(run(&mut set, "stop hb").contains("migrate_resolve"));
    let mut ctx = Vec::new();
    assert_eq!(
        set.run_next_slice(&mut ctx, 1, |_, _| {}),
        SliceResult::Idle,
        "an in-doubt VM never runs, whatever its state"
    );
    assert!(set.remove("hb").is_some());
    assert_eq!(set.hold_of("hb"), None, "removing a VM drops its hold");
}

#[test]
fn an_unrunnable_vm_never_runs_and_says_how_to_remove_it() {
    let mut set = VmSet::new();
    let _ = set.add(vm("hb"));
    run(&mut set, "start hb");
    set.hold("hb", VmHold::Unrunnable);
    assert!(run(&mut set, "list").contains("hb               unrunnable"));
    for line in ["resume hb", "start hb"] {
        let answer = run(&mut set, line);
        assert!(
            answer.contains("vCPU state could not be loaded"),
            "{answer}"
        );
        assert!(answer.contains("migrate_resolve VM discard"), "{answer}");
    }
    let mut ctx = Vec::new();
    assert_eq!(
        set.run_next_slice(&mut ctx, 1, |_, _| {}),
        SliceResult::Idle
    );
}
