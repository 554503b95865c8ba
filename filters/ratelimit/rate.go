package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// units maps the accepted period names to durations.
var units = map[string]time.Duration{
	"s": time.Second, "sec": time.Second, "second": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute,
	"h": time.Hour, "hour": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour,
}

// maxRate bounds N so that a rate always has at least one nanosecond per unit.
const maxRate = 1_000_000_000

// ParseRate parses "N/unit" where N is a positive integer and unit is s, min, h or day
// (also sec, second, m, minute, hour, d), e.g. "100/s", "1000/min", "5/h", "10000/day".
// It returns the count and the period.
func ParseRate(s string) (uint64, time.Duration, error) {
	num, unit, ok := strings.Cut(strings.TrimSpace(s), "/")
	if !ok {
		return 0, 0, fmt.Errorf("rate %q: want N/s, N/min, N/h or N/day", s)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if err != nil || n == 0 || n > maxRate {
		return 0, 0, fmt.Errorf("rate %q: count must be an integer from 1 to %d", s, maxRate)
	}
	per, ok := units[strings.TrimSpace(unit)]
	if !ok {
		return 0, 0, fmt.Errorf("rate %q: unknown unit %q (want s, min, h or day)", s, unit)
	}
	return n, per, nil
}
