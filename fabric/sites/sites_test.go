package sites

import (
	"slices"
	"strings"
	"testing"
)

func TestSitesJudge(t *testing.T) {
	leader := func(server, site string) Peer { return Peer{Server: server, Site: site, Leader: true, Current: true} }
	peer := func(server, site string) Peer { return Peer{Server: server, Site: site, Current: true} }
	tests := []struct {
		name string
		in   Stream
		want []string // substrings of the problems, in order; none for a good stream
	}{
		{"one per site", Stream{Replicas: 3, Leader: "a", Peers: []Peer{leader("a", "a"), peer("b", "b"), peer("c", "c")}}, nil},
		{"offline follower still counts", Stream{Replicas: 3, Leader: "a", Peers: []Peer{leader("a", "a"), peer("b", "b"), {Server: "c", Site: "c", Offline: true}}}, nil},
		{"no leader", Stream{Replicas: 3, Peers: []Peer{peer("a", "a"), peer("b", "b"), peer("c", "c")}}, []string{"no leader"}},
		{"two in one site", Stream{Replicas: 3, Leader: "a1", Peers: []Peer{leader("a1", "a"), peer("a2", "a"), peer("c", "c")}}, []string{"two replicas in site a"}},
		{"untagged server", Stream{Replicas: 3, Leader: "a", Peers: []Peer{leader("a", "a"), peer("x", ""), peer("c", "c")}}, []string{"x has no site: tag"}},
		{"R1", Stream{Replicas: 1, Leader: "a", Peers: []Peer{leader("a", "a")}}, []string{"R1"}},
		{"replicas missing", Stream{Replicas: 3, Leader: "a", Peers: []Peer{leader("a", "a"), peer("b", "b")}}, []string{"2 of 3 replicas placed"}},
	}
	for _, tc := range tests {
		got := judge(tc.in)
		if len(got) != len(tc.want) || !slices.EqualFunc(got, tc.want, strings.Contains) {
			t.Errorf("%s: judge = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestSitesSiteOf(t *testing.T) {
	for _, tc := range []struct {
		tags []string
		want string
	}{
		{[]string{"site:b"}, "b"},
		{[]string{"az:1", "SITE:C"}, "c"},
		{nil, ""},
		{[]string{"sites:x"}, ""},
	} {
		if got := siteOf(tc.tags); got != tc.want {
			t.Errorf("siteOf(%q) = %q, want %q", tc.tags, got, tc.want)
		}
	}
}
