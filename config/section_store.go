package config

import (
	"strings"
	"time"
)

// Store modes of store.valkey.mode.
const (
	StoreModeStandalone = "standalone"
	StoreModeCluster    = "cluster"
	StoreModeSentinel   = "sentinel"
)

// DefaultMemoryMaxKeys is the default of store.memory.max_keys (pkg/store's
// DefaultMaxKeys; config does not import it).
const DefaultMemoryMaxKeys = 1 << 20

// maxReplicas bounds store.replicas (the local fallback admits 1/replicas of a limit).
const maxReplicas = 10000

// Store configures where shared state lives (rate limits, brute-force counts and
// bans, replay sets). Without valkey addresses it is in memory, private to this
// process. The store is created once per process: changing this section takes effect
// at the next restart.
type Store struct {
	Valkey ValkeyStore `yaml:"valkey"`
	// Replicas is how many sidecars share the Valkey store. While Valkey is unreachable,
	// a limit with on_store_error: local admits 1/Replicas of its rate here. Default 1.
	Replicas int         `yaml:"replicas"`
	Memory   MemoryStore `yaml:"memory"`
}

// Shared reports whether a Valkey store is configured.
func (s *Store) Shared() bool { return len(s.Valkey.Addresses) > 0 }

// Validate checks the replica count.
func (s *Store) Validate(v *Validator, path string) {
	if s.Replicas < 1 || s.Replicas > maxReplicas {
		v.Errorf(joinPath(path, "replicas"), "replicas must be from 1 to %d, got %d", maxReplicas, s.Replicas)
	}
}

// MemoryStore configures the in-memory store (also the local fallback of a Valkey store).
type MemoryStore struct {
	// MaxKeys bounds the keys held (limits, counters, bans, replay entries); at most
	// 64 bytes each. Default 1048576.
	MaxKeys int `yaml:"max_keys"`
}

// Validate checks the key bound.
func (m *MemoryStore) Validate(v *Validator, path string) {
	if m.MaxKeys < 1 || m.MaxKeys > 1<<30 {
		v.Errorf(joinPath(path, "max_keys"), "max_keys must be from 1 to %d, got %d", 1<<30, m.MaxKeys)
	}
}

// ValkeyStore is a Valkey or Redis 7+ deployment shared by the replicas.
type ValkeyStore struct {
	// Mode is standalone (default), cluster or sentinel.
	Mode string `yaml:"mode"`
	// Addresses are host:port: the server (standalone, exactly one), seed nodes
	// (cluster) or sentinels (sentinel). Empty: no Valkey, the store is in memory.
	Addresses []string `yaml:"addresses"`
	// MasterSet names the primary in sentinel mode.
	MasterSet string `yaml:"master_set"`
	// Username and Password authenticate (AUTH); Password is a secret reference.
	Username string `yaml:"username"`
	Password Secret `yaml:"password"`
	// SentinelUsername and SentinelPassword authenticate to the sentinels.
	SentinelUsername string    `yaml:"sentinel_username"`
	SentinelPassword Secret    `yaml:"sentinel_password"`
	TLS              ValkeyTLS `yaml:"tls"`
	// DB selects the database (standalone and sentinel only).
	DB int `yaml:"db"`
	// KeyPrefix starts every key; default "portcullis:". No braces.
	KeyPrefix string `yaml:"key_prefix"`
	// Timeout bounds every call; then the limit's on_store_error applies. Default 50ms.
	Timeout time.Duration `yaml:"timeout"`
	// DialTimeout bounds connecting. Default 1s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// BanCacheTTL caches ban lookups client-side (server-assisted invalidation); 0 off.
	BanCacheTTL time.Duration `yaml:"ban_cache_ttl"`
}

// ValkeyTLS configures TLS to the servers and sentinels.
type ValkeyTLS struct {
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs to trust; default the system pool. A relative
	// path is relative to the document's directory.
	CAFile string `yaml:"ca_file"`
	// ServerName overrides the name verified in the server certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification (tests only).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Validate checks the addresses against the mode, and the bounds.
func (s *ValkeyStore) Validate(v *Validator, path string) {
	addrs := joinPath(path, "addresses")
	if !oneOf(s.Mode, StoreModeStandalone, StoreModeCluster, StoreModeSentinel) {
		v.Errorf(joinPath(path, "mode"), "invalid mode %q: expected standalone, cluster or sentinel", s.Mode)
	}
	if len(s.Addresses) == 0 {
		if v.Has(path) {
			v.Errorf(addrs, "at least one address is required (leave store.valkey out for the in-memory store)")
		}
		return
	}
	for i, a := range s.Addresses {
		if msg := checkAddress(a); msg != "" {
			v.Errorf(indexPath(addrs, i), "%s", msg)
		}
	}
	switch s.Mode {
	case StoreModeStandalone:
		if len(s.Addresses) != 1 {
			v.Errorf(addrs, "standalone mode takes exactly one address, got %d", len(s.Addresses))
		}
	case StoreModeCluster:
		if s.DB != 0 {
			v.Errorf(joinPath(path, "db"), "cluster mode has no databases; remove db")
		}
	case StoreModeSentinel:
		if s.MasterSet == "" {
			v.Errorf(joinPath(path, "master_set"), "sentinel mode needs master_set")
		}
	}
	if s.DB < 0 {
		v.Errorf(joinPath(path, "db"), "db must not be negative")
	}
	if strings.ContainsAny(s.KeyPrefix, "{} ") {
		v.Errorf(joinPath(path, "key_prefix"), "invalid key_prefix %q: no braces or spaces (braces are cluster hash tags)", s.KeyPrefix)
	}
	positive(v, path, "timeout", s.Timeout)
	positive(v, path, "dial_timeout", s.DialTimeout)
}

// Validate requires TLS to be enabled for its other keys to mean anything.
func (t *ValkeyTLS) Validate(v *Validator, path string) {
	if !t.Enabled && (t.CAFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		v.Errorf(joinPath(path, "enabled"), "tls settings are given but enabled is false")
	}
}

func defaultStore() Store {
	return Store{
		Valkey: ValkeyStore{Mode: StoreModeStandalone, KeyPrefix: "portcullis:",
			Timeout: 50 * time.Millisecond, DialTimeout: time.Second},
		Replicas: 1,
		Memory:   MemoryStore{MaxKeys: DefaultMemoryMaxKeys},
	}
}
