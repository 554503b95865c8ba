package ip_test

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/portcullis/portcullis/filters/ip"
	"github.com/portcullis/portcullis/pkg/engine"
)

func Example() {
	f, err := ip.New(ip.Options{
		Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("10.66.0.0/16")},
	})
	if err != nil {
		panic(err)
	}
	for _, a := range []string{"10.1.2.3", "::ffff:10.1.2.3", "10.66.0.1", "192.0.2.1"} {
		r := &engine.Request{Peer: engine.Peer{IP: netip.MustParseAddr(a)}}
		fmt.Println(a, f.Check(context.Background(), r, &engine.Decision{}))
	}
	// Output:
	// 10.1.2.3 <nil>
	// ::ffff:10.1.2.3 <nil>
	// 10.66.0.1 denied 403 ip.denied
	// 192.0.2.1 denied 403 ip.not_allowed
}
