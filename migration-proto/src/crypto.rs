//! Key handling: the pre-shared key, the handshake proofs, the session keys, and the
//! per-frame protection (MAC or AEAD).
//!
//! Choices, and why:
//! - **Proofs and MAC: BLAKE3 keyed hash.** One primitive for hashing, key derivation and
//!   MAC; several GB/s on one core, so authenticating every page frame costs little.
//!   The frame tag is the first 128 bits of `BLAKE3-keyed(k_dir, header || payload)`.
//! - **Encryption: ChaCha20-Poly1305 (RFC 8439)**, optional (capability `ENCRYPTION`). Fast
//!   in software, no AES-NI needed, constant time. The nonce is the 64-bit frame sequence
//!   number (little-endian) behind 4 zero bytes: unique per key because every direction has
//!   its own key and sequence numbers never repeat within a session.
//! - **Key schedule:** `auth_key = BLAKE3-derive-key("…psk auth", psk)`;
//!   proofs are `BLAKE3-keyed(auth_key, role || transcript_hash)`; session keys are 64 bytes
//!   of `BLAKE3-derive-key("…session keys", psk || transcript_hash)` split into source-to-
//!   destination and destination-to-source keys. The transcript hash covers the complete
//!   `Hello` payload and the `HelloReply` fields before its proof, hence both nonces, the
//!   versions and the capabilities: a downgrade or a replayed handshake changes it.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use core::fmt;

use crate::digest::constant_time_eq;
use crate::message::{HelloReply, PROOF_LEN};
use crate::wire::TAG_LEN;

const AUTH_KEY_CONTEXT: &str = "tern migration 2026-11 psk authentication key";
const SESSION_KEY_CONTEXT: &str = "tern migration 2026-11 session keys";
const TRANSCRIPT_CONTEXT: &str = "tern migration 2026-11 handshake transcript";
const ENDPOINT_BINDING_CONTEXT: &str = "tern migration 2026-12 endpoint binding";

/// The migration connection's two endpoints (IPv4 address, TCP port), as each side sees
/// them: the source from its socket (its own address and port, and the address it dialed),
/// the destination from its accepted socket. From protocol version 3 both proofs and the
/// session keys cover them, so a handshake redirected to another host that holds the same
/// key fails: that host sees itself at another address than the one the source dialed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// The source hypervisor's address and port.
    pub source: ([u8; 4], u16),
    /// The destination hypervisor's address and port.
    pub destination: ([u8; 4], u16),
}

impl Endpoints {
    fn encode(&self) -> [u8; 12] {
        let mut out = [0u8; 12];
        out[..4].copy_from_slice(&self.source.0);
        out[4..6].copy_from_slice(&self.source.1.to_le_bytes());
        out[6..10].copy_from_slice(&self.destination.0);
        out[10..].copy_from_slice(&self.destination.1.to_le_bytes());
        out
    }
}

/// Version 3: the transcript bound to the connection's endpoints (`None`: a caller that has
/// no endpoints, such as a test link or a host tool on a pipe; both sides must agree).
pub fn bind_endpoints(transcript: &[u8; 32], endpoints: Option<&Endpoints>) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(ENDPOINT_BINDING_CONTEXT);
    h.update(transcript);
    match endpoints {
        Some(e) => {
            h.update(&[1]);
            h.update(&e.encode());
        }
        None => {
            h.update(&[0]);
        }
    }
    *h.finalize().as_bytes()
}

/// The 32-byte pre-shared key both hypervisors are configured with. Never printed.
#[derive(Clone)]
pub struct PreSharedKey([u8; 32]);

impl PreSharedKey {
    /// Wraps key bytes (use 32 random bytes; the proofs are only as strong as the key).
    pub fn new(bytes: [u8; 32]) -> Self {
        PreSharedKey(bytes)
    }

    /// Derives a key from a passphrase-like config string. Prefer random key bytes; this
    /// exists so a config file can hold a printable secret.
    pub fn from_passphrase(passphrase: &[u8]) -> Self {
        PreSharedKey(blake3::derive_key(
            "tern migration 2026-11 passphrase to key",
            passphrase,
        ))
    }

    fn auth_key(&self) -> [u8; 32] {
        blake3::derive_key(AUTH_KEY_CONTEXT, &self.0)
    }
}

impl fmt::Debug for PreSharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreSharedKey(<redacted>)")
    }
}

/// Which side computes or checks a proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The sending hypervisor.
    Source,
    /// The receiving hypervisor.
    Destination,
}

/// Hash of the handshake: the `Hello` payload and the `HelloReply` payload minus its proof.
pub fn transcript_hash(hello_payload: &[u8], reply_payload: &[u8]) -> [u8; 32] {
    let reply_part = &reply_payload[..reply_payload.len().min(HelloReply::TRANSCRIPT_PART_LEN)];
    let mut h = blake3::Hasher::new_derive_key(TRANSCRIPT_CONTEXT);
    h.update(&(hello_payload.len() as u64).to_le_bytes());
    h.update(hello_payload);
    h.update(reply_part);
    *h.finalize().as_bytes()
}

/// The proof that `role` holds the key, bound to this handshake.
pub fn proof(psk: &PreSharedKey, role: Role, transcript: &[u8; 32]) -> [u8; PROOF_LEN] {
    let mut h = blake3::Hasher::new_keyed(&psk.auth_key());
    h.update(match role {
        Role::Source => b"source proof",
        Role::Destination => b"destination proof",
    });
    h.update(transcript);
    *h.finalize().as_bytes()
}

/// Checks a peer's proof in constant time.
pub fn verify_proof(
    psk: &PreSharedKey,
    role: Role,
    transcript: &[u8; 32],
    candidate: &[u8; PROOF_LEN],
) -> bool {
    constant_time_eq(&proof(psk, role, transcript), candidate)
}

/// The two directional keys of a session.
pub struct SessionKeys {
    /// Protects frames from the source to the destination.
    pub source_to_destination: [u8; 32],
    /// Protects frames from the destination to the source.
    pub destination_to_source: [u8; 32],
    /// Keys the page hashes of the page digest (protocol version 3; `page_digest`).
    pub page_digest: [u8; 32],
}

/// Derives the session keys from the key and the transcript (hence both nonces).
pub fn session_keys(psk: &PreSharedKey, transcript: &[u8; 32]) -> SessionKeys {
    let mut h = blake3::Hasher::new_derive_key(SESSION_KEY_CONTEXT);
    h.update(&psk.0);
    h.update(transcript);
    // An XOF: the page-digest key is the next 32 bytes after the two frame keys, which are
    // therefore the same as in version 2.
    let mut okm = [0u8; 96];
    h.finalize_xof().fill(&mut okm);
    let mut keys = SessionKeys {
        source_to_destination: [0; 32],
        destination_to_source: [0; 32],
        page_digest: [0; 32],
    };
    keys.source_to_destination.copy_from_slice(&okm[..32]);
    keys.destination_to_source.copy_from_slice(&okm[32..64]);
    keys.page_digest.copy_from_slice(&okm[64..]);
    keys
}

/// Protection of the frames of one direction.
pub enum FrameProtector {
    /// BLAKE3 keyed-hash tag (with this key); payload in clear.
    Mac([u8; 32]),
    /// ChaCha20-Poly1305: payload encrypted, Poly1305 tag.
    Aead(ChaCha20Poly1305),
}

/// A tag did not verify (corruption, tampering, wrong key, or a replayed/reordered frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadTag;

impl FrameProtector {
    /// Protection with `key`, encrypting if `encrypt`.
    pub fn new(key: &[u8; 32], encrypt: bool) -> Self {
        if encrypt {
            FrameProtector::Aead(ChaCha20Poly1305::new(&Key::from(*key)))
        } else {
            FrameProtector::Mac(*key)
        }
    }

    /// Whether the payload is encrypted.
    pub fn encrypts(&self) -> bool {
        matches!(self, FrameProtector::Aead(_))
    }

    fn nonce(seq: u64) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&seq.to_le_bytes());
        Nonce::from(n)
    }

    fn mac(key: &[u8; 32], header: &[u8], payload: &[u8]) -> [u8; TAG_LEN] {
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(header);
        h.update(payload);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&h.finalize().as_bytes()[..TAG_LEN]);
        tag
    }

    /// Seals a frame: encrypts `payload` in place if needed and returns the tag.
    pub fn seal(&self, seq: u64, header: &[u8], payload: &mut [u8]) -> [u8; TAG_LEN] {
        match self {
            FrameProtector::Mac(h) => Self::mac(h, header, payload),
            FrameProtector::Aead(aead) => {
                // ChaCha20-Poly1305 only fails for payloads above 256 GiB; frames are <= 1 MiB.
                match aead.encrypt_inout_detached(&Self::nonce(seq), header, payload.into()) {
                    Ok(tag) => tag.into(),
                    Err(_) => [0u8; TAG_LEN],
                }
            }
        }
    }

    /// Opens a frame: checks the tag and decrypts `payload` in place if needed.
    pub fn open(
        &self,
        seq: u64,
        header: &[u8],
        payload: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), BadTag> {
        match self {
            FrameProtector::Mac(h) => {
                if constant_time_eq(&Self::mac(h, header, payload), tag) {
                    Ok(())
                } else {
                    Err(BadTag)
                }
            }
            FrameProtector::Aead(aead) => aead
                .decrypt_inout_detached(&Self::nonce(seq), header, payload.into(), &Tag::from(*tag))
                .map_err(|_| BadTag),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_role_key_and_transcript() {
        let psk = PreSharedKey::new([7; 32]);
        let other = PreSharedKey::new([8; 32]);
        let t = transcript_hash(b"hello", &[1u8; 74]);
        let p = proof(&psk, Role::Source, &t);
        assert!(verify_proof(&psk, Role::Source, &t, &p));
        assert!(!verify_proof(&psk, Role::Destination, &t, &p));
        assert!(!verify_proof(&other, Role::Source, &t, &p));
        let t2 = transcript_hash(b"hellp", &[1u8; 74]);
        assert!(!verify_proof(&psk, Role::Source, &t2, &p));
        // The proof inside the reply is not part of the transcript.
        let mut reply = [1u8; 74];
        reply[73] = 9;
        assert_eq!(transcript_hash(b"hello", &reply), t);
        assert_eq!(format!("{psk:?}"), "PreSharedKey(<redacted>)");
    }

    #[test]
    fn seal_open_detects_any_change() {
        for encrypt in [false, true] {
            let p = FrameProtector::new(&[3; 32], encrypt);
            let header = [9u8; 24];
            let mut payload = *b"some guest page data";
            let tag = p.seal(5, &header, &mut payload);
            assert_eq!(encrypt, payload != *b"some guest page data");
            let mut ok = payload;
            assert_eq!(p.open(5, &header, &mut ok, &tag), Ok(()));
            assert_eq!(&ok, b"some guest page data");
            let mut wrong_seq = payload;
            if encrypt {
                assert_eq!(p.open(6, &header, &mut wrong_seq, &tag), Err(BadTag));
            }
            let mut flipped = payload;
            flipped[3] ^= 1;
            assert_eq!(p.open(5, &header, &mut flipped, &tag), Err(BadTag));
            let mut bad_header = header;
            bad_header[0] ^= 1;
            let mut again = payload;
            assert_eq!(p.open(5, &bad_header, &mut again, &tag), Err(BadTag));
        }
    }
}
