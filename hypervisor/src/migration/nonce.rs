//! Session nonces: 32 bytes that must never repeat under one key (they make every proof
//! and session key fresh, docs/migration-protocol.md) and should not be predictable.
//!
//! The hypervisor mixes hardware randomness (RDSEED/RDRAND, `arch::random`) with what makes
//! a nonce unique even without it (the TSC, a per-boot session counter, the host name)
//! through BLAKE3 in key-derivation mode: with hardware randomness the nonce is
//! unpredictable; without it (an old CPU, an emulator without RDRAND) it is still unique,
//! and the boot log says so.

/// What goes into one nonce.
#[derive(Clone, Copy, Debug)]
pub struct NonceInputs<'a> {
    /// 256 bits from RDSEED/RDRAND, when the CPU delivered them.
    pub hardware: Option<[u64; 4]>,
    /// The TSC at the time of the call.
    pub tsc: u64,
    /// Sessions started since boot, this one included.
    pub counter: u64,
    /// This host's name.
    pub host_name: &'a str,
}

/// The nonce for `inputs`.
pub fn session_nonce(inputs: &NonceInputs<'_>) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("tern migration session nonce v2");
    match inputs.hardware {
        Some(words) => {
            h.update(&[1]);
            for w in words {
                h.update(&w.to_le_bytes());
            }
        }
        None => {
            h.update(&[0]);
        }
    }
    h.update(&inputs.tsc.to_le_bytes());
    h.update(&inputs.counter.to_le_bytes());
    h.update(inputs.host_name.as_bytes());
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(hardware: Option<[u64; 4]>, counter: u64) -> NonceInputs<'static> {
        NonceInputs {
            hardware,
            tsc: 1000,
            counter,
            host_name: "alpha",
        }
    }

    #[test]
    fn hardware_randomness_changes_the_nonce() {
        let a = session_nonce(&inputs(Some([1, 2, 3, 4]), 1));
        let b = session_nonce(&inputs(Some([1, 2, 3, 5]), 1));
        assert_ne!(a, b, "every hardware bit counts");
        assert_ne!(a, session_nonce(&inputs(None, 1)));
    }

    #[test]
    fn without_hardware_randomness_nonces_are_still_unique_per_session() {
        let a = session_nonce(&inputs(None, 1));
        let b = session_nonce(&inputs(None, 2));
        assert_ne!(a, b);
        let mut other_host = inputs(None, 1);
        other_host.host_name = "beta";
        assert_ne!(a, session_nonce(&other_host));
    }
}
