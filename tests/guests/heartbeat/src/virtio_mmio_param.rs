//! Where the guest's virtio-mmio device is: Linux's `virtio_mmio.device=<size>@<base>:<irq>`
//! command-line parameter (size with an optional K/M/G suffix, base in hex or decimal), the
//! one tern appends for a VM's disk.

/// One `virtio_mmio.device=` device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioDevice {
    /// Window size in bytes.
    pub size: u64,
    /// Guest-physical base address.
    pub base: u64,
    /// Interrupt line.
    pub irq: u32,
}

fn number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    number(digits)?.checked_mul(1 << shift)
}

/// The first well-formed `virtio_mmio.device=` parameter of `cmdline`.
pub fn find(cmdline: &str) -> Option<MmioDevice> {
    cmdline.split_ascii_whitespace().find_map(|token| {
        let spec = token.strip_prefix("virtio_mmio.device=")?;
        let (size_text, rest) = spec.split_once('@')?;
        let (base_text, irq_text) = rest.split_once(':')?;
        Some(MmioDevice {
            size: size(size_text)?,
            base: number(base_text)?,
            irq: u32::try_from(number(irq_text)?).ok()?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tern_s_parameter_among_others() {
        assert_eq!(
            find("hb.disk=1 virtio_mmio.device=4K@0xfeb00000:5 quiet"),
            Some(MmioDevice {
                size: 4096,
                base: 0xfeb0_0000,
                irq: 5
            })
        );
        assert_eq!(
            find("virtio_mmio.device=1M@4096:12").map(|d| (d.size, d.base, d.irq)),
            Some((1 << 20, 4096, 12))
        );
    }

    #[test]
    fn malformed_parameters_are_skipped() {
        for bad in [
            "",
            "virtio_mmio.device=",
            "virtio_mmio.device=4K",
            "virtio_mmio.device=4K@0xzz:5",
            "virtio_mmio.device=4Q@0x1000:5",
            "virtio_mmio.device=4K@0x1000",
            "virtio_mmio.device=4K@0x1000:99999999999",
        ] {
            assert_eq!(find(bad), None, "{bad}");
        }
    }
}
