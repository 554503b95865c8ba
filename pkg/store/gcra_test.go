package store

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestGCRADecisions(t *testing.T) {
	lim := Limit{Rate: 10, Period: time.Second, Burst: 3} // T = 100ms, tolerance 300ms
	ms := int64(time.Millisecond)
	tests := []struct {
		name      string
		tat, now  int64
		cost      uint64
		allowed   bool
		newTAT    int64
		remaining uint64
		retry     time.Duration
		reset     time.Duration
	}{
		{"idle key admits", 0, 1000 * ms, 1, true, 1100 * ms, 2, 0, 100 * time.Millisecond},
		{"whole burst at once", 0, 1000 * ms, 3, true, 1300 * ms, 0, 0, 300 * time.Millisecond},
		{"over burst refused", 1300 * ms, 1000 * ms, 1, false, 1300 * ms, 0, 100 * time.Millisecond, 300 * time.Millisecond},
		{"refill after T", 1300 * ms, 1100 * ms, 1, true, 1400 * ms, 0, 0, 300 * time.Millisecond},
		{"cost above burst never", 0, 1000 * ms, 4, false, 0, 3, 100 * time.Millisecond, 0},
		{"peek with cost 0", 1200 * ms, 1000 * ms, 0, true, 1200 * ms, 1, 0, 200 * time.Millisecond},
		{"old tat is idle", 5 * ms, 1000 * ms, 1, true, 1100 * ms, 2, 0, 100 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tat, res := GCRA(tc.tat, tc.now, tc.cost, lim)
			if res.Allowed != tc.allowed || tat != tc.newTAT || res.Remaining != tc.remaining ||
				res.RetryAfter != tc.retry || res.ResetAfter != tc.reset {
				t.Fatalf("got allowed=%v tat=%d remaining=%d retry=%v reset=%v", res.Allowed, tat/ms,
					res.Remaining, res.RetryAfter, res.ResetAfter)
			}
			if res.Limit != lim {
				t.Fatalf("limit %+v", res.Limit)
			}
		})
	}
}

func TestLimitValid(t *testing.T) {
	tests := []struct {
		lim  Limit
		want bool
	}{
		{Limit{Rate: 1, Period: time.Second}, true},
		{Limit{Rate: 0, Period: time.Second}, false},
		{Limit{Rate: 1, Period: 0}, false},
		{Limit{Rate: 2, Period: 1}, false},
		{Limit{Rate: 1, Period: 24 * time.Hour, Burst: 1 << 40}, false}, // tolerance overflows
		{Limit{Rate: 1000, Period: time.Second, Burst: 1 << 20}, true},
	}
	for _, tc := range tests {
		if got := tc.lim.Valid(); got != tc.want {
			t.Errorf("%+v: Valid()=%v, want %v", tc.lim, got, tc.want)
		}
	}
}

// TestGCRABound drives GCRA with random arrivals and checks the documented bound: in
// every window of length W, admitted <= Burst + W·Rate/Period; and a client that keeps
// asking gets at least W·Rate/Period - 1 units over a window once its burst is spent.
func TestGCRABound(t *testing.T) {
	limits := []Limit{
		{Rate: 10, Period: time.Second, Burst: 5},
		{Rate: 7, Period: time.Minute},
		{Rate: 3, Period: time.Second, Burst: 1},
		{Rate: 1000, Period: time.Hour, Burst: 50},
	}
	for _, lim := range limits {
		t.Run("exact clock", func(t *testing.T) { checkGCRABound(t, lim, 0) })
		// The Memory store's clock lags the real time by up to ClockTick, and two
		// decisions may see it out of order. Simulated with a random lag of up to a
		// tick of 2.5 emission intervals (ClockTick itself is far below T for these
		// limits, too small to show): the bound widens by one tick's worth of rate.
		t.Run("coarse clock", func(t *testing.T) { checkGCRABound(t, lim, int64(lim.Interval())*5/2) })
	}
}

// checkGCRABound drives GCRA with random arrivals at 3x the rate, each decided at a
// time up to tick before its arrival, and checks the admitted arrivals against
// B + (W+tick)·R/P (upper) and (W−tick)·R/P − 2 (lower) over windows W.
func checkGCRABound(t *testing.T, lim Limit, tick int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	period := int64(lim.Period)
	var admitted []int64
	var tat, now int64 = 0, 1
	// Arrivals at an average of 3x the rate, for 20 periods.
	mean := period / int64(lim.Rate) / 3
	for now < 20*period {
		now += rng.Int64N(2*mean + 1)
		cost := uint64(1 + rng.IntN(int(min(2, lim.EffectiveBurst()))))
		seen := now
		if tick > 0 {
			seen = max(now-rng.Int64N(tick+1), 1)
		}
		var res Result
		tat, res = GCRA(tat, seen, cost, lim)
		if res.Allowed {
			for range cost {
				admitted = append(admitted, now)
			}
		}
	}
	rate := float64(lim.Rate) / float64(period)
	for _, w := range []int64{period / 3, period, 5 * period} {
		upper := float64(lim.EffectiveBurst()) + float64(w+tick)*rate
		// Sliding window over the admission times: the most admitted in any [t, t+w).
		j, most := 0, 0
		for i := range admitted {
			for admitted[i]-admitted[j] >= w {
				j++
			}
			most = max(most, i-j+1)
		}
		if float64(most) > upper {
			t.Errorf("%+v window %v: admitted %d > bound %.1f", lim, time.Duration(w), most, upper)
		}
		// Lower bound over the last complete window of saturated demand.
		end := admitted[len(admitted)-1]
		got := 0
		for _, a := range admitted {
			if a > end-w {
				got++
			}
		}
		lower := float64(w-tick)*rate - 2 // -1 plus a cost-2 straddle
		if float64(got) < lower {
			t.Errorf("%+v window %v: admitted %d < %.1f", lim, time.Duration(w), got, lower)
		}
	}
}

// emission.units (a float reciprocal with an exact correction) equals integer division
// for every dividend, small and large, including where float64 cannot place the
// quotient within one and the fallback divides.
func TestEmissionUnitsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	ts := []int64{1, 2, 3, 7, 1000, 3_600_000, 1_000_000_007, 1 << 40, math.MaxInt64 / 3}
	for range 200 {
		ts = append(ts, 1+rng.Int64N(1<<uint(rng.IntN(62))))
	}
	for _, d := range ts {
		e := newEmission(d)
		ns := []int64{0, 1, d - 1, d, d + 1, 2*d - 1, math.MaxInt64 - 1, math.MaxInt64}
		for range 500 {
			ns = append(ns, rng.Int64N(math.MaxInt64>>uint(rng.IntN(63))))
		}
		for _, n := range ns {
			if n < 0 {
				continue
			}
			if got, want := e.units(n), n/d; got != want {
				t.Fatalf("units(%d) with t=%d: %d, want %d", n, d, got, want)
			}
		}
	}
}
