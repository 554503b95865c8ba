package config

import (
	"net/netip"
	"time"
)

// BruteForceStage counts authentication failures (401s of the authenticate phase) per
// client address and per attempted credential, and answers by threat level: a delay
// from Low failures (growing from Medium), a ban from High (growing with each ban),
// the longest ban from Critical (inspect).
type BruteForceStage struct {
	// Window is how long failures count, from the first one. Default 15m.
	Window time.Duration `yaml:"window"`
	// Low, Medium, High and Critical are the failure counts where each level starts;
	// they must increase. Defaults 5, 10, 20, 50.
	Low      int64 `yaml:"low"`
	Medium   int64 `yaml:"medium"`
	High     int64 `yaml:"high"`
	Critical int64 `yaml:"critical"`
	// Delay is the wait at the low level, doubled per failure from Medium up to
	// MaxDelay. Defaults 250ms and 2s.
	Delay    time.Duration `yaml:"delay"`
	MaxDelay time.Duration `yaml:"max_delay"`
	// BanDuration is the first ban; it doubles with each ban within BanMemory, up to
	// MaxBan (also the critical level's ban). Defaults 1m, 1h, 24h.
	BanDuration time.Duration `yaml:"ban_duration"`
	MaxBan      time.Duration `yaml:"max_ban"`
	BanMemory   time.Duration `yaml:"ban_memory"`
	// Status is the banned client's status: 429 (default) or 403.
	Status int `yaml:"status"`
	// Allowlist holds networks never counted, delayed or banned.
	Allowlist []netip.Prefix `yaml:"allowlist"`
	// IPv6Prefix counts an IPv6 client by its network of this many bits (48-128): a
	// client given a /64 can use a fresh address for every guess. Default 64.
	IPv6Prefix int `yaml:"ipv6_prefix"`
	// CountMissing also counts requests without any credential.
	CountMissing bool `yaml:"count_missing"`
}

// maxBruteForceDelay bounds max_delay.
const maxBruteForceDelay = 30 * time.Second

func newBruteForceStage() StageSpec {
	return &BruteForceStage{
		Window: 15 * time.Minute, Low: 5, Medium: 10, High: 20, Critical: 50,
		Delay: 250 * time.Millisecond, MaxDelay: 2 * time.Second,
		BanDuration: time.Minute, MaxBan: time.Hour, BanMemory: 24 * time.Hour,
		Status: 429, IPv6Prefix: 64,
	}
}

// Validate checks that thresholds increase, delays and bans are ordered, and the status.
func (s *BruteForceStage) Validate(v *Validator, path string) {
	positive(v, path, "window", s.Window)
	positive(v, path, "low", s.Low)
	if s.Medium <= s.Low {
		v.Errorf(joinPath(path, "medium"), "medium (%d) must be above low (%d)", s.Medium, s.Low)
	}
	if s.High <= s.Medium {
		v.Errorf(joinPath(path, "high"), "high (%d) must be above medium (%d)", s.High, s.Medium)
	}
	if s.Critical <= s.High {
		v.Errorf(joinPath(path, "critical"), "critical (%d) must be above high (%d)", s.Critical, s.High)
	}
	positive(v, path, "delay", s.Delay)
	switch {
	case s.MaxDelay < s.Delay:
		v.Errorf(joinPath(path, "max_delay"), "max_delay (%v) must not be below delay (%v)", s.MaxDelay, s.Delay)
	case s.MaxDelay > maxBruteForceDelay:
		v.Errorf(joinPath(path, "max_delay"), "max_delay must be at most %v (a delayed request holds a connection)", maxBruteForceDelay)
	}
	positive(v, path, "ban_duration", s.BanDuration)
	if s.MaxBan < s.BanDuration {
		v.Errorf(joinPath(path, "max_ban"), "max_ban (%v) must not be below ban_duration (%v)", s.MaxBan, s.BanDuration)
	}
	positive(v, path, "ban_memory", s.BanMemory)
	if s.Status != 429 && s.Status != 403 {
		v.Errorf(joinPath(path, "status"), "status must be 429 or 403, got %d", s.Status)
	}
	if s.IPv6Prefix < 48 || s.IPv6Prefix > 128 {
		v.Errorf(joinPath(path, "ipv6_prefix"), "ipv6_prefix must be 48 to 128 (bits of an IPv6 client's network), got %d", s.IPv6Prefix)
	}
}
