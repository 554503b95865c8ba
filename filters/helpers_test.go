package filters

import (
	"fmt"
	"net/netip"

	"github.com/portcullis/portcullis/filters/apikey"
)

func hashOf(key string) string { return apikey.HashKey(key) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
