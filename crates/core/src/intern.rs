//! String interning for the low-cardinality fields (type, domain, source, agent, …), so each
//! stored event carries 4-byte symbols instead of strings.

use std::sync::Arc;

use rustc_hash::FxHashMap;

/// An interned string. `Sym::NONE` stands for "absent".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Sym(pub u32);

impl Sym {
    pub const NONE: Self = Self(0);
    /// Stands for any new value once the interner is full (see [`Interner::with_budget`]).
    pub const OVERFLOW: Self = Self(1);

    #[must_use]
    pub fn is_none(self) -> bool {
        self == Self::NONE
    }

    #[must_use]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Shown for values that arrived after the interner reached its memory budget.
pub const OVERFLOW_TEXT: &str = "(too many distinct values)";

/// Maps strings to [`Sym`]s and back. Bounded: once `budget_bytes` of text is held, new strings
/// map to [`Sym::OVERFLOW`] so a producer that puts a unique value in every message cannot grow
/// memory without bound.
pub struct Interner {
    map: FxHashMap<Arc<str>, Sym>,
    strings: Vec<Arc<str>>,
    bytes: usize,
    budget_bytes: usize,
}

impl Default for Interner {
    fn default() -> Self {
        Self::with_budget(64 << 20)
    }
}

impl Interner {
    #[must_use]
    pub fn with_budget(budget_bytes: usize) -> Self {
        Self {
            map: FxHashMap::default(),
            strings: vec!["".into(), OVERFLOW_TEXT.into()],
            bytes: 0,
            budget_bytes,
        }
    }

    /// The symbol of `s`, adding it if new. The empty string is [`Sym::NONE`].
    pub fn intern(&mut self, s: &str) -> Sym {
        if s.is_empty() {
            return Sym::NONE;
        }
        if let Some(&sym) = self.map.get(s) {
            return sym;
        }
        let cost = s.len() + 64;
        if self.bytes + cost > self.budget_bytes || self.strings.len() >= u32::MAX as usize {
            return Sym::OVERFLOW;
        }
        self.bytes += cost;
        let sym = Sym(self.strings.len() as u32);
        let arc: Arc<str> = s.into();
        self.strings.push(arc.clone());
        self.map.insert(arc, sym);
        sym
    }

    pub fn intern_opt(&mut self, s: Option<&str>) -> Sym {
        s.map_or(Sym::NONE, |s| self.intern(s))
    }

    /// The symbol of `s` if it was interned.
    #[must_use]
    pub fn lookup(&self, s: &str) -> Option<Sym> {
        if s.is_empty() {
            Some(Sym::NONE)
        } else {
            self.map.get(s).copied()
        }
    }

    #[must_use]
    pub fn resolve(&self, sym: Sym) -> &str {
        self.strings.get(sym.index()).map_or("", |s| s)
    }

    #[must_use]
    pub fn resolve_opt(&self, sym: Sym) -> Option<&str> {
        (!sym.is_none()).then(|| self.resolve(sym))
    }

    /// Number of symbols, including the two reserved ones.
    #[must_use]
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.strings.len() <= 2
    }

    #[must_use]
    pub fn memory_bytes(&self) -> usize {
        self.bytes + self.strings.capacity() * 16 + self.map.capacity() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_and_resolves() {
        let mut i = Interner::default();
        let a = i.intern("agent.thread.prompt");
        assert_eq!(i.intern("agent.thread.prompt"), a);
        assert_ne!(i.intern("llm.response"), a);
        assert_eq!(i.resolve(a), "agent.thread.prompt");
        assert_eq!(i.intern(""), Sym::NONE);
        assert_eq!(i.resolve_opt(Sym::NONE), None);
        assert_eq!(
            i.lookup("llm.response").map(|s| i.resolve(s)),
            Some("llm.response")
        );
        assert_eq!(i.lookup("never"), None);
    }

    #[test]
    fn stops_growing_at_its_budget() {
        let mut i = Interner::with_budget(10_000);
        let syms: Vec<Sym> = (0..1000)
            .map(|n| i.intern(&format!("unique-routing-key-{n}")))
            .collect();
        assert!(syms.contains(&Sym::OVERFLOW));
        assert!(i.memory_bytes() < 20_000 + i.strings.capacity() * 16 + i.map.capacity() * 24);
        assert_eq!(i.resolve(Sym::OVERFLOW), OVERFLOW_TEXT);
        // Known strings still resolve to their symbol.
        assert_eq!(i.intern("unique-routing-key-0"), syms[0]);
    }
}
