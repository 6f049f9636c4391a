//! Carving the host disk into VM regions: `[vm NAME] host_disk = SIZE@OFFSET`.
//!
//! Why explicit offsets rather than an allocator: the regions must land on the same sectors
//! after every reboot, whatever VMs are added or removed in between, or a guest would find
//! another guest's data. A fixed `SIZE@OFFSET` (the notation of Linux's `memmap=` and of
//! `virtio_mmio.device=`) written by the operator is stable by construction; the hypervisor
//! checks at boot that every region lies on the disk and that no two overlap, naming the
//! VMs and tern.cfg lines involved.

use alloc::string::String;
use core::fmt;

pub use boot_proto::config::host_disk::{HostRegion, REGION_SYNTAX, REGION_UNIT, parse_region};

/// One VM's claim on the host disk, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionClaim {
    /// The VM.
    pub vm: String,
    /// Its region.
    pub region: HostRegion,
    /// Line of its `host_disk` key in tern.cfg.
    pub line: u32,
}

/// Why the configured regions cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CarveError {
    /// VMs claim host-disk regions but `[host] host_disk` names no drive.
    NoHostDisk {
        /// The first claiming VM.
        vm: String,
        /// Its line.
        line: u32,
    },
    /// A region ends past the end of the disk.
    PastEnd {
        /// The claim.
        claim: RegionClaim,
        /// The disk's size in bytes.
        disk_bytes: u64,
    },
    /// Two regions share sectors.
    Overlap {
        /// The earlier claim (by line).
        first: RegionClaim,
        /// The later one.
        second: RegionClaim,
    },
}

impl fmt::Display for CarveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHostDisk { vm, line } => write!(
                f,
                "line {line}: [vm {vm}] host_disk needs a host disk: set [host] host_disk = \
                 ata1-master (or another ATA drive)"
            ),
            Self::PastEnd { claim, disk_bytes } => write!(
                f,
                "line {}: [vm {}] host_disk = {} ends at {} MiB, past the end of the {} MiB \
                 host disk",
                claim.line,
                claim.vm,
                claim.region,
                claim.region.end() >> 20,
                disk_bytes >> 20
            ),
            Self::Overlap { first, second } => write!(
                f,
                "line {}: [vm {}] host_disk = {} overlaps [vm {}] host_disk = {} (line {})",
                second.line, second.vm, second.region, first.vm, first.region, first.line
            ),
        }
    }
}

/// Checks every claim against a disk of `disk_bytes` and against each other. Claims are
/// judged in line order, so the message names the later line as the one to fix.
pub fn check_claims(claims: &[RegionClaim], disk_bytes: u64) -> Result<(), CarveError> {
    let mut sorted: alloc::vec::Vec<&RegionClaim> = claims.iter().collect();
    sorted.sort_by_key(|c| c.line);
    for (i, claim) in sorted.iter().enumerate() {
        if claim.region.end() > disk_bytes {
            return Err(CarveError::PastEnd {
                claim: (*claim).clone(),
                disk_bytes,
            });
        }
        if let Some(first) = sorted[..i]
            .iter()
            .find(|c| c.region.overlaps(&claim.region))
        {
            return Err(CarveError::Overlap {
                first: (*first).clone(),
                second: (*claim).clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn claim(vm: &str, spec: &str, line: u32) -> RegionClaim {
        RegionClaim {
            vm: vm.into(),
            region: parse_region(spec).expect("spec"),
            line,
        }
    }

    #[test]
    fn specs_parse_in_mib_and_gib() {
        assert_eq!(
            parse_region("16M@64M"),
            Ok(HostRegion {
                offset: 64 << 20,
                size: 16 << 20
            })
        );
        assert_eq!(parse_region("1G@0M").map(|r| r.size), Ok(1 << 30));
        assert_eq!(parse_region("16m@1g").map(|r| r.offset), Ok(1 << 30));
        for bad in [
            "",
            "16M",
            "@64M",
            "16@64M",
            "0M@0M",
            "16K@0M",
            "-1M@0M",
            "16M@",
            "x@y",
            "99999999999G@99999999999G",
        ] {
            assert_eq!(parse_region(bad), Err(REGION_SYNTAX), "{bad}");
        }
    }

    #[test]
    fn region_sectors() {
        let r = parse_region("2M@1M").expect("spec");
        assert_eq!(r.first_sector(), 2048);
        assert_eq!(r.sectors(), 4096);
        assert_eq!(format!("{r}"), "2M@1M");
    }

    #[test]
    fn disjoint_regions_that_fit_are_accepted() {
        let claims = [claim("a", "16M@0M", 10), claim("b", "16M@16M", 20)];
        assert_eq!(check_claims(&claims, 32 << 20), Ok(()));
        assert_eq!(check_claims(&[], 0), Ok(()));
    }

    #[test]
    fn a_region_past_the_end_names_vm_line_and_sizes() {
        let err = check_claims(&[claim("a", "16M@24M", 7)], 32 << 20).unwrap_err();
        assert_eq!(
            format!("{err}"),
            "line 7: [vm a] host_disk = 16M@24M ends at 40 MiB, past the end of the 32 MiB \
             host disk"
        );
    }

    #[test]
    fn overlaps_name_both_vms_and_blame_the_later_line() {
        let claims = [claim("b", "8M@12M", 30), claim("a", "16M@0M", 10)];
        let err = check_claims(&claims, 64 << 20).unwrap_err();
        assert_eq!(
            format!("{err}"),
            "line 30: [vm b] host_disk = 8M@12M overlaps [vm a] host_disk = 16M@0M (line 10)"
        );
        // Touching is not overlapping.
        let claims = [claim("a", "16M@0M", 1), claim("b", "8M@16M", 2)];
        assert_eq!(check_claims(&claims, 64 << 20), Ok(()));
    }
}
