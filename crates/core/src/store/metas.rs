//! A block's per-event metadata: whole [`EventMeta`]s while the block takes events, 36-byte rows
//! once it is full. The rows keep every field exactly (times as offsets, symbols as indexes into
//! the block's own table); a block they cannot hold — more than 255 distinct symbols, times
//! further apart than `u32`/`i32` microseconds — keeps whole metas. Filters read either through
//! [`Metas::get`].

use crate::event::{BodyKind, EventMeta, NO_TIME, Status};
use crate::intern::Sym;
use crate::time::Micros;

pub(super) enum Metas {
    Whole(Vec<EventMeta>),
    Rows(Rows),
}

/// Sealed metadata: 36 bytes an event instead of 64.
pub(super) struct Rows {
    /// The earliest receive time in the block; rows count from it.
    base_us: Micros,
    /// The block's distinct symbols; rows hold indexes into it (a whole table: no bounds to
    /// check when a row is read).
    syms: Box<[Sym; 256]>,
    each: Box<[Row]>,
}

#[derive(Clone, Copy)]
struct Row {
    /// Microseconds after [`Rows::base_us`].
    received: u32,
    /// Microseconds from the receive time to the publish time; [`NO_PUBLISHED`]: none.
    published: i32,
    id_hash: u32,
    corr_hash: u32,
    cause_hash: u32,
    size_bytes: u32,
    /// kind, routing key, domain, source, agent, agent type, session.
    syms: [u8; 7],
    status: Status,
    body_kind: BodyKind,
    flags: u8,
}

const NO_PUBLISHED: i32 = i32::MIN;

impl Metas {
    pub(super) fn with_capacity(n: usize) -> Self {
        Self::Whole(Vec::with_capacity(n))
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Self::Whole(v) => v.len(),
            Self::Rows(r) => r.each.len(),
        }
    }

    /// Adds an event's metadata to a block that still takes events.
    pub(super) fn push(&mut self, meta: EventMeta) {
        match self {
            Self::Whole(v) => v.push(meta),
            Self::Rows(_) => debug_assert!(false, "a sealed block takes no events"),
        }
    }

    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<EventMeta> {
        match self {
            Self::Whole(v) => v.get(i).copied(),
            Self::Rows(r) => r.get(i),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = EventMeta> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Bytes held.
    pub(super) fn memory_bytes(&self) -> usize {
        match self {
            Self::Whole(v) => v.capacity() * size_of::<EventMeta>(),
            Self::Rows(r) => r.each.len() * size_of::<Row>() + size_of::<[Sym; 256]>(),
        }
    }

    /// The block is full: its metadata in rows where they can hold it.
    pub(super) fn seal(&mut self) {
        let Self::Whole(v) = self else {
            return;
        };
        match Rows::pack(v) {
            Some(rows) => *self = Self::Rows(rows),
            None => v.shrink_to_fit(),
        }
    }
}

impl Rows {
    fn pack(metas: &[EventMeta]) -> Option<Self> {
        let base_us = metas.iter().map(|m| m.received_us).min()?;
        let mut syms = Box::new([Sym::NONE; 256]);
        let mut used = 0usize;
        let mut index = rustc_hash::FxHashMap::<Sym, u8>::default();
        let mut slot = |s: Sym| -> Option<u8> {
            if let Some(&i) = index.get(&s) {
                return Some(i);
            }
            let i = u8::try_from(used).ok()?;
            syms[used] = s;
            used += 1;
            index.insert(s, i);
            Some(i)
        };
        // Each column's previous symbol and its index: most events repeat the one before.
        let mut last = [(Sym::NONE, None::<u8>); 7];
        let mut rows = Vec::with_capacity(metas.len());
        for m in metas {
            let received = u32::try_from(m.received_us.checked_sub(base_us)?).ok()?;
            let published = if m.published_us == NO_TIME {
                NO_PUBLISHED
            } else {
                i32::try_from(m.published_us.checked_sub(m.received_us)?)
                    .ok()
                    .filter(|&d| d != NO_PUBLISHED)?
            };
            let mut s = [0u8; 7];
            for ((to, last), sym) in s.iter_mut().zip(&mut last).zip([
                m.kind,
                m.routing_key,
                m.domain,
                m.source,
                m.agent,
                m.agent_type,
                m.session,
            ]) {
                *to = match *last {
                    (prev, Some(i)) if prev == sym => i,
                    _ => {
                        let i = slot(sym)?;
                        *last = (sym, Some(i));
                        i
                    }
                };
            }
            rows.push(Row {
                received,
                published,
                id_hash: m.id_hash,
                corr_hash: m.corr_hash,
                cause_hash: m.cause_hash,
                size_bytes: m.size_bytes,
                syms: s,
                status: m.status,
                body_kind: m.body_kind,
                flags: m.flags,
            });
        }
        Some(Self {
            base_us,
            syms,
            each: rows.into_boxed_slice(),
        })
    }

    #[inline]
    fn get(&self, i: usize) -> Option<EventMeta> {
        let r = self.each.get(i)?;
        let sym = |k: usize| self.syms[usize::from(r.syms[k])];
        let received_us = self.base_us + Micros::from(r.received);
        Some(EventMeta {
            received_us,
            published_us: if r.published == NO_PUBLISHED {
                NO_TIME
            } else {
                received_us + Micros::from(r.published)
            },
            id_hash: r.id_hash,
            corr_hash: r.corr_hash,
            cause_hash: r.cause_hash,
            kind: sym(0),
            routing_key: sym(1),
            domain: sym(2),
            source: sym(3),
            agent: sym(4),
            agent_type: sym(5),
            session: sym(6),
            size_bytes: r.size_bytes,
            status: r.status,
            body_kind: r.body_kind,
            flags: r.flags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(i: u32) -> EventMeta {
        EventMeta {
            received_us: 1_765_000_000_000_000 + Micros::from(i) * 1_700,
            published_us: if i.is_multiple_of(5) {
                NO_TIME
            } else {
                1_765_000_000_000_000 + Micros::from(i) * 1_700 - Micros::from(i % 7) * 90_000
            },
            id_hash: i.wrapping_mul(2_654_435_761),
            corr_hash: i / 3,
            cause_hash: if i.is_multiple_of(2) { 0 } else { i },
            kind: Sym(10 + i % 30),
            routing_key: if i.is_multiple_of(4) {
                Sym(90)
            } else {
                Sym::NONE
            },
            domain: Sym(200 + i % 6),
            source: Sym(300 + i % 9),
            agent: Sym(400 + i % 40),
            agent_type: Sym(500 + i % 3),
            session: Sym(600 + i % 50),
            size_bytes: 300 + i,
            status: if i.is_multiple_of(11) {
                Status::Error
            } else {
                Status::Completed
            },
            body_kind: if i.is_multiple_of(3) {
                BodyKind::CloudEvents
            } else {
                BodyKind::BloodbankV1
            },
            flags: (i % 4) as u8,
        }
    }

    fn sealed(metas: &[EventMeta]) -> Metas {
        let mut m = Metas::with_capacity(metas.len());
        for &x in metas {
            m.push(x);
        }
        m.seal();
        m
    }

    #[test]
    fn a_full_block_reads_back_every_field_in_less_than_two_thirds_of_the_memory() {
        let metas: Vec<EventMeta> = (0..1024).map(meta).collect();
        let whole = metas.len() * size_of::<EventMeta>();
        let m = sealed(&metas);
        assert!(matches!(m, Metas::Rows(_)), "the demo's mix fits in rows");
        assert_eq!(m.len(), 1024);
        for (i, want) in metas.iter().enumerate() {
            assert_eq!(m.get(i).as_ref(), Some(want), "event {i}");
        }
        assert_eq!(m.iter().collect::<Vec<_>>(), metas);
        assert_eq!(m.get(1024), None);
        assert!(
            m.memory_bytes() * 3 < whole * 2,
            "{} bytes sealed against {whole}",
            m.memory_bytes()
        );
    }

    #[test]
    fn blocks_rows_cannot_hold_keep_whole_metas_and_read_the_same() {
        // 300 distinct sessions: more symbols than a row's byte can index.
        let many: Vec<EventMeta> = (0..1024)
            .map(|i| EventMeta {
                session: Sym(10_000 + i % 300),
                ..meta(i)
            })
            .collect();
        // Two events further apart than u32 microseconds (71 minutes).
        let mut slow: Vec<EventMeta> = (0..10).map(meta).collect();
        slow[9].received_us += 5_000_000_000;
        // Published an hour before it was received (an import, a replay).
        let mut early: Vec<EventMeta> = (0..10).map(meta).collect();
        early[3].published_us = early[3].received_us - 3_600_000_000;
        // A publish time exactly at the row's "none" mark.
        let mut edge: Vec<EventMeta> = (0..10).map(meta).collect();
        edge[1].published_us = edge[1].received_us + Micros::from(i32::MIN);
        for metas in [many, slow, early, edge] {
            let m = sealed(&metas);
            assert!(matches!(m, Metas::Whole(_)));
            assert_eq!(m.iter().collect::<Vec<_>>(), metas);
        }
        // Received before 1970: rows count from the earliest, whatever its sign.
        let old: Vec<EventMeta> = (0..10)
            .map(|i| EventMeta {
                received_us: -1_000_000 + Micros::from(i),
                published_us: NO_TIME,
                ..meta(i)
            })
            .collect();
        let m = sealed(&old);
        assert!(matches!(m, Metas::Rows(_)));
        assert_eq!(m.iter().collect::<Vec<_>>(), old);
    }
}
