package main

import (
	"slices"
	"strings"
	"testing"
)

func TestMayflydDRFlags(t *testing.T) {
	t.Parallel()
	o, err := parseFlags([]string{"-nats-url", "nats://a,nats://b", "-nats-auth-url", "nats://x", "-placement-tags", " site:a , ssd ",
		"-placement-cluster", "east", "-token-key-required", "true", "-callout-key", "/k/callout.nk"})
	if err != nil {
		t.Fatal(err)
	}
	d := o.cfg.DR
	if !slices.Equal(d.PlacementTags, []string{"site:a", "ssd"}) || d.PlacementCluster != "east" || !d.TokenKeyRequired ||
		d.NATSAuthURL != "nats://x" || d.CalloutKeyFile != "/k/callout.nk" {
		t.Fatalf("DR config = %+v", d)
	}
	for _, args := range [][]string{
		{"-nats-auth-url", "nats://x"},   // needs -nats-url
		{"-nats-sys-url", "nats://x"},    // needs -nats-url
		{"-token-key-required", "maybe"}, // not a boolean
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("parseFlags(%s) accepted", strings.Join(args, " "))
		}
	}
}
