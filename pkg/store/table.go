package store

// table is one shard's key → entry index: open addressing with linear probing over
// 64-bit key hashes, deletion by backward shift (no tombstones), doubling at 3/4 load.
//
// Why not a Go map: a Take is a lookup and, when admitted, a store of the same key;
// with map[uint64]entry that is two hashed lookups (access, then assign) costing ~50 ns
// of a decision meant to cost under 100 ns. Here a lookup returns a pointer into the
// slots and the update happens in place. Keys are already uniform 64-bit hashes under
// a secret seed (maphash), so they index the slots directly.
//
// Hash 0 marks an empty slot; a key whose hash is 0 is stored as 1, sharing state with
// the key that hashes to 1 (a chance of 2^-64 per key pair, far below the collisions
// that hashing keys already accepts; see Memory).
type table struct {
	slots []slot
	n     int // occupied slots
}

type slot struct {
	h uint64 // 0: empty
	e entry
}

const minTableSlots = 8

// slotKey maps a key hash to the value stored in slot.h (never 0).
func slotKey(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}

// find returns the entry of h, or nil.
func (t *table) find(h uint64) *entry {
	if len(t.slots) == 0 {
		return nil
	}
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.h == h {
			return &s.e
		}
		if s.h == 0 {
			return nil
		}
	}
}

// insert adds h, which must be absent, with entry e, growing the table as needed.
func (t *table) insert(h uint64, e entry) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].h != 0 {
		i = (i + 1) & mask
	}
	t.slots[i] = slot{h: h, e: e}
	t.n++
}

func (t *table) grow() {
	old := t.slots
	t.slots = make([]slot, max(minTableSlots, 2*len(old)))
	t.n = 0
	for _, s := range old {
		if s.h != 0 {
			t.insert(s.h, s.e)
		}
	}
}

// delete removes h if present. Later entries of its probe run shift back into the hole,
// so every remaining key stays reachable from its home slot without tombstones.
func (t *table) delete(h uint64) {
	if len(t.slots) == 0 {
		return
	}
	mask := uint64(len(t.slots) - 1)
	i := h & mask
	for t.slots[i].h != h {
		if t.slots[i].h == 0 {
			return
		}
		i = (i + 1) & mask
	}
	for j := (i + 1) & mask; t.slots[j].h != 0; j = (j + 1) & mask {
		// slots[j] may move into the hole at i only if its home slot is not in the
		// cyclic range (i, j]: otherwise a lookup starting at home would stop at i.
		home := t.slots[j].h & mask
		if (j-home)&mask >= (j-i)&mask {
			t.slots[i] = t.slots[j]
			i = j
		}
	}
	t.slots[i] = slot{}
	t.n--
}

// sample appends to dst the hashes and entries of up to n occupied slots, scanning
// from slot start; after scanning limit slots it stops once it has found two (or n).
//
// Why two, not one: eviction takes the sampled entry closest to idle, and a sample of
// one has no choice. Evicting the first of equals from each window also thins out the
// slots just after a long-lived key, so windows that reach it find it alone more and
// more often; with a one-entry floor a key in steady use was evicted in ~15% of runs
// of TestMemoryEvictionBound's flood (200 trials), with two, never.
func (t *table) sample(dst []slot, start uint64, n, limit int) []slot {
	if t.n == 0 {
		return dst
	}
	mask := uint64(len(t.slots) - 1)
	enough := min(n, 2)
	found := 0
	for k, i := 0, start&mask; found < n; k, i = k+1, (i+1)&mask {
		if k >= limit && found >= enough || k >= len(t.slots) {
			break
		}
		if s := t.slots[i]; s.h != 0 {
			dst = append(dst, s)
			found++
		}
	}
	return dst
}
