//! Page runs for the sealed destination: planned page by page, from the real encoder, or
//! raw; and the model's update when the destination accepts one.

use alloc::vec;
use alloc::vec::Vec;

use lz4_flex::block::{compress, decompress_into};

use crate::negotiation::Capabilities;
use crate::page_codec::PageRunView;
use crate::session::DestinationState;
use crate::wire::{MAX_PAGES_PER_FRAME, MessageType, PAGE_SIZE};

use super::super::script::Script;
use super::Harness;
use crate::message::Message;

/// How one page of a structured run is stored, with the content the destination must hold
/// afterwards (`None`: the page cannot be decoded and the run must be refused).
struct PlannedPage {
    descriptor: u16,
    stored: Vec<u8>,
    expected: Option<Vec<u8>>,
    needs: Capabilities,
}

impl Harness {
    /// Any message type with a fuzzed payload.
    pub(super) fn raw_message(&mut self, s: &mut Script<'_>) {
        let msg_type = MessageType::ALL[s.below(MessageType::ALL.len())];
        let max = if s.one_in(8) { 16 * 1024 } else { 256 };
        let payload = s.blob(max).to_vec();
        let frame = self.src.frame_raw(msg_type, &payload);
        if !self.deliver(s, frame) {
            return;
        }
        if msg_type == MessageType::Pages {
            let Ok(view) = PageRunView::parse(&payload) else {
                panic!("an unparsable run was accepted");
            };
            // Decoded by the session itself: the model takes what memory now holds.
            let first = (view.first_gpa() / PAGE_SIZE as u64) as usize;
            let count = view.page_count();
            self.accept_run(first, count, None);
        } else if let Ok(msg) = Message::decode(msg_type, &payload) {
            self.note_accepted(&msg);
        } else {
            panic!("an undecodable {msg_type} payload was accepted");
        }
    }

    /// The model takes an accepted run: `expected` pages, or (raw runs) what memory holds.
    pub(super) fn accept_run(
        &mut self,
        first: usize,
        count: usize,
        expected: Option<Vec<Vec<u8>>>,
    ) {
        assert!(!self.sealed, "a page run was accepted after a digest");
        assert!(
            first + count <= self.pages,
            "a run beyond memory was accepted"
        );
        self.outcome.runs_accepted += 1;
        for i in 0..count {
            let pfn = first + i;
            let range = pfn * PAGE_SIZE..(pfn + 1) * PAGE_SIZE;
            match &expected {
                Some(pages) => self.model[range.clone()].copy_from_slice(&pages[i]),
                None => {
                    let (model, memory) = (&mut self.model, &self.memory);
                    model[range.clone()].copy_from_slice(&memory[range.clone()]);
                }
            }
            self.covered[pfn] = true;
            if let Some(cache) = self.delta_cache.as_mut() {
                cache.store(pfn, &self.model[range]);
            }
        }
    }

    /// A page's content: mostly compressible patterns, sometimes noise.
    fn page_content(s: &mut Script<'_>) -> Vec<u8> {
        let kind = s.u8();
        let mut page = vec![s.u8(); PAGE_SIZE];
        if kind & 0x80 != 0 {
            let mut x = u64::from(s.u32()) | 1;
            for chunk in page.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
        }
        for _ in 0..kind & 7 {
            let at = usize::from(s.u16()) % PAGE_SIZE;
            page[at] = s.u8();
        }
        page
    }

    fn model_page(&self, pfn: usize) -> Vec<u8> {
        self.model
            .get(pfn * PAGE_SIZE..(pfn + 1) * PAGE_SIZE)
            .map_or_else(|| vec![0; PAGE_SIZE], <[u8]>::to_vec)
    }

    fn plan_page(&self, s: &mut Script<'_>, pfn: usize) -> PlannedPage {
        let current = self.model_page(pfn);
        let raw = |content: Vec<u8>| PlannedPage {
            descriptor: PAGE_SIZE as u16,
            stored: content.clone(),
            expected: Some(content),
            needs: Capabilities::NONE,
        };
        let xor = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| x ^ y).collect::<Vec<u8>>();
        let lz4 = |block: Vec<u8>, expected: Vec<u8>, delta: bool| {
            let flag = if delta { 0x8000 } else { 0 };
            let needs = if delta {
                Capabilities::DELTA_PAGES
            } else {
                Capabilities::LZ4_PAGES
            };
            PlannedPage {
                descriptor: flag | block.len() as u16,
                stored: block,
                expected: Some(expected),
                needs,
            }
        };
        match s.below(6) {
            0 => PlannedPage {
                descriptor: 0,
                stored: Vec::new(),
                expected: Some(vec![0; PAGE_SIZE]),
                needs: Capabilities::ZERO_PAGES,
            },
            1 => raw(Self::page_content(s)),
            2 => {
                let target = Self::page_content(s);
                let block = compress(&target);
                if block.len() >= PAGE_SIZE {
                    return raw(target);
                }
                lz4(block, target, false)
            }
            3 | 4 => {
                let target = Self::page_content(s);
                // 3: against the destination's copy; 4: against a base it does not hold.
                let base = if s.u8() & 1 == 0 {
                    current.clone()
                } else {
                    Self::page_content(s)
                };
                let delta = xor(&target, &base);
                let block = compress(&delta);
                if block.len() >= PAGE_SIZE {
                    return raw(target);
                }
                lz4(block, xor(&current, &delta), true)
            }
            _ => {
                let delta = s.u8() & 1 == 1;
                let mut block = s.blob(200).to_vec();
                if block.is_empty() {
                    block.push(s.u8());
                }
                let mut out = vec![0u8; PAGE_SIZE];
                let expected = match decompress_into(&block, &mut out) {
                    Ok(PAGE_SIZE) if delta => Some(xor(&current, &out)),
                    Ok(PAGE_SIZE) => Some(out),
                    _ => None,
                };
                let mut page = lz4(block, Vec::new(), delta);
                page.expected = expected;
                page
            }
        }
    }

    /// A run whose every page's encoding the script picks.
    pub(super) fn planned_run(&mut self, s: &mut Script<'_>) {
        let first = if s.one_in(16) {
            usize::from(s.u16())
        } else {
            s.below(self.pages)
        };
        // Now and then up to a full frame (past the end of memory: refused).
        let count = 1 + if s.one_in(32) {
            s.below(MAX_PAGES_PER_FRAME)
        } else {
            s.below(4)
        };
        let planned: Vec<PlannedPage> = (0..count).map(|i| self.plan_page(s, first + i)).collect();
        let mut payload = Vec::new();
        payload.extend_from_slice(&((first * PAGE_SIZE) as u64).to_le_bytes());
        payload.extend_from_slice(&(count as u16).to_le_bytes());
        payload.extend_from_slice(&0u16.to_le_bytes());
        for p in &planned {
            payload.extend_from_slice(&p.descriptor.to_le_bytes());
        }
        for p in &planned {
            payload.extend_from_slice(&p.stored);
        }
        let needs = planned
            .iter()
            .fold(Capabilities::NONE, |c, p| c.union(p.needs));
        let decodable = planned.iter().all(|p| p.expected.is_some());
        let in_range = first + count <= self.pages;
        let negotiated = self.src.caps.contains(needs);
        let delta_as_event = !self.into_memory && needs.contains(Capabilities::DELTA_PAGES);
        let receiving = self.dst.state() == DestinationState::Receiving && !self.desynced;
        let valid = decodable && in_range && negotiated && !delta_as_event && !self.sealed;
        let frame = self.src.frame_raw(MessageType::Pages, &payload);
        let accepted = self.deliver(s, frame);
        if accepted {
            assert!(decodable, "a run with an undecodable page was accepted");
            assert!(negotiated, "a run in encodings not negotiated was accepted");
            assert!(!delta_as_event, "a delta page decoded without guest memory");
            let expected = planned.into_iter().filter_map(|p| p.expected).collect();
            self.accept_run(first, count, Some(expected));
        } else if receiving && valid {
            panic!("a valid run was refused: {:?}", self.dst.error());
        }
    }

    /// A run from the real encoder, with the delta cache when DELTA_PAGES was negotiated.
    pub(super) fn encoded_run(&mut self, s: &mut Script<'_>) {
        let first = s.below(self.pages);
        let count = 1 + s.below((self.pages - first).min(8));
        let mut pages = Vec::with_capacity(count * PAGE_SIZE);
        for _ in 0..count {
            pages.extend_from_slice(&Self::page_content(s));
        }
        self.send_encoded(s, first, pages);
    }

    pub(super) fn send_encoded(&mut self, s: &mut Script<'_>, first: usize, pages: Vec<u8>) {
        let mut payload = Vec::new();
        let cache = if self.into_memory {
            self.delta_cache.as_mut()
        } else {
            None
        };
        if self
            .encoder
            .encode_run(
                (first * PAGE_SIZE) as u64,
                &pages,
                self.src.caps,
                cache,
                &mut payload,
            )
            .is_err()
        {
            return;
        }
        let receiving = self.dst.state() == DestinationState::Receiving && !self.desynced;
        let frame = self.src.frame_raw(MessageType::Pages, &payload);
        let count = pages.len() / PAGE_SIZE;
        if self.deliver(s, frame) {
            let expected = pages.chunks(PAGE_SIZE).map(<[u8]>::to_vec).collect();
            self.accept_run(first, count, Some(expected));
        } else if receiving && !self.sealed {
            panic!(
                "a run from the real encoder was refused: {:?}",
                self.dst.error()
            );
        }
    }

    /// Every page of memory (runs of up to 64 pages), from the real encoder.
    pub(super) fn all_pages(&mut self, s: &mut Script<'_>) {
        let fill = s.u8();
        let mut pfn = 0;
        while pfn < self.pages {
            let count = (self.pages - pfn).min(MAX_PAGES_PER_FRAME);
            let mut pages = vec![fill; count * PAGE_SIZE];
            if let Some(b) = pages.get_mut(usize::from(s.u16()) % (count * PAGE_SIZE)) {
                *b = s.u8();
            }
            self.send_encoded(s, pfn, pages);
            pfn += count;
        }
    }
}
