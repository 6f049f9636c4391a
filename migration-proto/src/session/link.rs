//! What both sessions share: the framed, protected byte pipe in each direction, the output
//! buffer with its backpressure accounting, and the negotiated parameters.

use alloc::vec::Vec;

use crate::crypto::FrameProtector;
use crate::framing::{FrameReader, FrameWriter, PayloadTooLarge};
use crate::message::Message;
use crate::negotiation::Capabilities;
use crate::page_codec::{DeltaCache, PageCounts, PageEncoder, PageRunError};
use crate::wire::MessageType;

use super::Instant;

pub(crate) struct Link {
    pub writer: FrameWriter,
    pub reader: FrameReader,
    tx: Vec<u8>,
    tx_start: usize,
    encoder: PageEncoder,
    /// Negotiated capabilities (empty until the handshake chose them).
    pub caps: Capabilities,
    /// Negotiated version (0 until chosen).
    pub version: u16,
    pub last_rx: Instant,
    pub last_tx: Instant,
    pub keyed: bool,
}

impl Link {
    pub fn new(now: Instant) -> Self {
        Link {
            writer: FrameWriter::new(),
            reader: FrameReader::new(),
            tx: Vec::new(),
            tx_start: 0,
            encoder: PageEncoder::new(),
            caps: Capabilities::NONE,
            version: 0,
            last_rx: now,
            last_tx: now,
            keyed: false,
        }
    }

    /// Switches both directions to tagged (and maybe encrypted) frames.
    pub fn install_keys(&mut self, tx_key: &[u8; 32], rx_key: &[u8; 32]) {
        let encrypt = self.caps.contains(Capabilities::ENCRYPTION);
        self.writer.protect(FrameProtector::new(tx_key, encrypt));
        self.reader.protect(FrameProtector::new(rx_key, encrypt));
        self.keyed = true;
    }

    pub fn send(&mut self, msg: &Message, now: Instant) -> Result<(), PayloadTooLarge> {
        self.writer
            .write_message(msg, self.caps, &mut self.encoder, &mut self.tx)?;
        self.last_tx = now;
        Ok(())
    }

    pub fn send_raw(
        &mut self,
        msg_type: MessageType,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), PayloadTooLarge> {
        self.writer
            .write_with(msg_type, &mut self.tx, |b| b.extend_from_slice(payload))?;
        self.last_tx = now;
        Ok(())
    }

    /// Encodes a page run straight from guest memory into the output buffer. Returns the
    /// encodings used and the payload size.
    pub fn send_pages(
        &mut self,
        first_gpa: u64,
        data: &[u8],
        cache: Option<&mut DeltaCache>,
        now: Instant,
    ) -> Result<(PageCounts, usize), PageRunError> {
        crate::page_codec::check_run_shape(first_gpa, data.len())?;
        let caps = self.caps;
        let encoder = &mut self.encoder;
        let mut counts = PageCounts::default();
        let mut payload = 0;
        let before = self.tx.len();
        let written = self
            .writer
            .write_with(MessageType::Pages, &mut self.tx, |buf| {
                let start = buf.len();
                if let Ok(c) = encoder.encode_run(first_gpa, data, caps, cache, buf) {
                    counts = c;
                }
                payload = buf.len() - start;
            });
        // A run of at most 64 pages encodes to at most ~256 KiB, far below the frame limit.
        if written.is_err() {
            self.tx.truncate(before);
            return Err(PageRunError::TooManyPages(
                data.len() / crate::wire::PAGE_SIZE,
            ));
        }
        self.last_tx = now;
        Ok((counts, payload))
    }

    pub fn pending_output(&self) -> &[u8] {
        &self.tx[self.tx_start..]
    }

    /// Marks `n` bytes as sent. The buffer is compacted only once the sent prefix is at
    /// least as long as what is left: a socket that takes the output in small pieces while
    /// the source keeps it full (up to `output_limit`) would otherwise move the whole
    /// remainder, about four times the bytes sent, at every compaction; this way each byte
    /// is moved at most once, at the cost of the buffer growing to twice what is pending.
    pub fn consume_output(&mut self, n: usize) {
        self.tx_start = (self.tx_start + n).min(self.tx.len());
        let left = self.tx.len() - self.tx_start;
        if left == 0 {
            self.tx.clear();
            self.tx_start = 0;
        } else if self.tx_start >= 256 * 1024 && self.tx_start >= left {
            self.tx.drain(..self.tx_start);
            self.tx_start = 0;
        }
    }

    pub fn buffered_output(&self) -> usize {
        self.tx.len() - self.tx_start
    }
}
