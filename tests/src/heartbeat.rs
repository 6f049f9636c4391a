//! Reading the heartbeat test guest's console lines (`[NAME] HB seq=N tsc=T ...`) and
//! writing host configs that run it with migration enabled: shared by the migration tests.

use crate::HarnessError;
use crate::pair::{Pair, host_config};
use std::time::Duration;

/// Host `index`'s config (see [`host_config`]) with `[migration]` on port 4444 and `key`,
/// plus, when `vm_memory` is given, a heartbeat VM named `hb` with that memory size and
/// `cmdline`.
pub fn migration_config(index: usize, key: &str, vm_memory: Option<&str>, cmdline: &str) -> String {
    let mut text = host_config(index);
    text.push_str(&format!("\n[migration]\nport = 4444\nkey = {key}\n"));
    if let Some(memory) = vm_memory {
        text.push_str(&format!(
            "\n[vm hb]\nimage = tern/guests/heartbeat.elf\nmemory = {memory}\ncmdline = \"{cmdline}\"\nautostart = yes\n"
        ));
    }
    text
}

/// Like [`migration_config`] with a VM, in disk mode: `hb` has the ESP's test disk
/// (`tern/disks/test.img`) and `hb.disk=1` is added to `cmdline`.
pub fn disk_config(index: usize, key: &str, vm_memory: &str, cmdline: &str) -> String {
    let cmdline = format!("{cmdline} hb.disk=1");
    let mut text = migration_config(index, key, Some(vm_memory), cmdline.trim());
    text.push_str("disk = tern/disks/test.img\n");
    text
}

/// The sequence number of the next `[hb] HB seq=N` line on host `index`.
pub fn next_beat(pair: &mut Pair, index: usize, timeout: Duration) -> Result<u64, HarnessError> {
    pair.expect(index, "[hb] HB seq=", timeout)?;
    let rest = pair.expect(index, " ", timeout)?;
    Ok(rest
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("`[hb] HB seq=` followed by `{rest}`")))
}

/// `transcript` up to and including its last newline. The console is read while the guest
/// writes, so the text after the last newline may be a line cut short (`seq=2` of
/// `seq=26`): whoever parses beat lines must only look at complete ones.
pub fn complete_lines(transcript: &str) -> &str {
    transcript.rfind('\n').map_or("", |end| &transcript[..=end])
}

/// Every `[hb] HB seq=N` number in the complete lines of `transcript`, in order.
pub fn beats(transcript: &str) -> Vec<u64> {
    complete_lines(transcript)
        .split("[hb] HB seq=")
        .skip(1)
        .filter_map(|t| t.split_whitespace().next()?.parse().ok())
        .collect()
}

/// `(seq, blk)` of every complete disk-mode beat line (`[hb] HB seq=N ... blk=W`) in
/// `transcript`, in order; beat lines without `blk=` (not in disk mode) are skipped.
pub fn disk_beats(transcript: &str) -> Vec<(u64, u64)> {
    beat_field(transcript, "blk")
}

/// `(seq, value)` of every complete beat line of `transcript` with a numeric `FIELD=value`
/// (`blk`, `irqs`, ...), in order; lines without it are skipped.
pub fn beat_field(transcript: &str, field: &str) -> Vec<(u64, u64)> {
    complete_lines(transcript)
        .split("[hb] HB seq=")
        .skip(1)
        .filter_map(|t| {
            let line = t.lines().next()?;
            let seq = line.split_whitespace().next()?.parse().ok()?;
            let value = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix(field)?.strip_prefix('='))?
                .parse()
                .ok()?;
            Some((seq, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn beats_are_read_in_order_and_garbage_is_skipped() {
        let t = "x [hb] HB seq=3 tsc=1\n[hb] HB seq=oops\n[hb] HB seq=4 tsc=2\n";
        assert_eq!(super::beats(t), vec![3, 4]);
    }

    #[test]
    fn a_beat_line_still_being_written_is_not_counted() {
        // The console reader may catch `[hb] HB seq=26 ...` after its first digit.
        let t = "[hb] HB seq=25 tsc=1 blk=7\n[hb] HB seq=2";
        assert_eq!(super::beats(t), vec![25]);
        assert_eq!(super::disk_beats(t), vec![(25, 7)]);
        let t = "[hb] HB seq=25 tsc=1 blk=7\n[hb] HB seq=26 tsc=2 blk=";
        assert_eq!(super::beats(t), vec![25]);
        assert_eq!(super::disk_beats(t), vec![(25, 7)]);
        assert_eq!(super::beats("[hb] HB seq=26 tsc"), Vec::<u64>::new());
    }

    #[test]
    fn disk_beats_pair_seq_and_blk() {
        let t = "[hb] HB seq=3 tsc=1 corrupt=0 blk=40\r\n[hb] HB seq=4 tsc=2 corrupt=0\n\
                 [hb] HB seq=5 tsc=3 corrupt=0 blk=x\n[hb] HB seq=6 tsc=4 corrupt=1 blk=61\n";
        assert_eq!(super::disk_beats(t), vec![(3, 40), (6, 61)]);
    }

    #[test]
    fn beat_field_reads_the_named_field_only() {
        let t =
            "[hb] HB seq=3 blk=40 irqs=7\n[hb] HB seq=4 irqsx=9 blk=41\n[hb] HB seq=5 irqs=12\n";
        assert_eq!(super::beat_field(t, "irqs"), vec![(3, 7), (5, 12)]);
        assert_eq!(super::beat_field(t, "blk"), vec![(3, 40), (4, 41)]);
    }
}
