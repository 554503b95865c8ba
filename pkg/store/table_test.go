package store

import (
	"math/rand/v2"
	"testing"
)

// TestTableMatchesMap runs random inserts, updates and deletes against the table and a
// Go map side by side. Hashes come from a small space with colliding low bits, so probe
// runs are long, wrap around the end, and backward-shift deletion is exercised.
func TestTableMatchesMap(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 42))
		var tab table
		ref := map[uint64]int64{}
		key := func() uint64 {
			// Few distinct low bits (long probe runs), high bits for distinct keys.
			return slotKey(rng.Uint64N(8)<<60 | rng.Uint64N(16))
		}
		for op := range 5000 {
			h := key()
			switch rng.IntN(3) {
			case 0, 1:
				if p := tab.find(h); p != nil {
					p.exp = int64(op)
				} else {
					tab.insert(h, entry{exp: int64(op)})
				}
				ref[h] = int64(op)
			case 2:
				tab.delete(h)
				delete(ref, h)
			}
			if tab.n != len(ref) {
				t.Fatalf("seed %d op %d: %d keys, want %d", seed, op, tab.n, len(ref))
			}
			if (tab.n+0)*4 > len(tab.slots)*3 {
				t.Fatalf("seed %d op %d: load %d/%d above 3/4", seed, op, tab.n, len(tab.slots))
			}
		}
		for h, exp := range ref {
			if p := tab.find(h); p == nil || p.exp != exp {
				t.Fatalf("seed %d: key %x: got %v, want %d", seed, h, p, exp)
			}
		}
		for h := range uint64(16) {
			for hi := range uint64(8) {
				k := slotKey(hi<<60 | h)
				if _, ok := ref[k]; !ok && tab.find(k) != nil {
					t.Fatalf("seed %d: deleted key %x still found", seed, k)
				}
			}
		}
		got := tab.sample(nil, rng.Uint64(), tab.n, len(tab.slots))
		if len(got) != tab.n {
			t.Fatalf("seed %d: a full sample saw %d of %d keys", seed, len(got), tab.n)
		}
	}
}

func TestTableZeroHash(t *testing.T) {
	var tab table
	if tab.find(slotKey(0)) != nil {
		t.Fatal("found a key in an empty table")
	}
	tab.insert(slotKey(0), entry{exp: 7})
	if p := tab.find(slotKey(0)); p == nil || p.exp != 7 {
		t.Fatalf("hash 0 not stored: %v", p)
	}
	tab.delete(slotKey(0))
	if tab.n != 0 || tab.find(slotKey(0)) != nil {
		t.Fatal("hash 0 not deleted")
	}
}
